//! The packet generator behind `vswitch pktgen`, in the spirit of netmap's
//! pkt-gen: `tx` sends test frames (sequence number and checksum, see the
//! `testframe` crate) as fast as allowed, `rx` receives and verifies them,
//! `ping` measures round trips against a `pong`. Every mode stops on SIGINT
//! or SIGTERM (once [`stop::catch_signals`] is called) and reports what it
//! counted, and fails with [`PktgenError::DaemonGone`] when the daemon goes
//! away.

pub mod pingpong;
pub mod report;
pub mod rx;
pub mod seq;
pub mod stop;
pub mod tx;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use thiserror::Error;

pub use report::Summary;
use stop::{Verdict, Watch};
use switch_port::client::{OpenError, PortClient, PortConfig};
use switch_port::mac::MacAddr;

/// What pktgen does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Send frames.
    Tx,
    /// Receive and verify frames.
    Rx,
    /// Send pings and time the pongs.
    Ping,
    /// Answer pings.
    Pong,
}

impl Mode {
    /// The mode's name.
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Tx => "tx",
            Mode::Rx => "rx",
            Mode::Ping => "ping",
            Mode::Pong => "pong",
        }
    }
}

/// A pktgen run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Control socket.
    pub socket: PathBuf,
    /// Port to open.
    pub port: String,
    /// What to do.
    pub mode: Mode,
    /// Frame size in bytes (60..=9216; the port's buffers must hold it).
    pub size: usize,
    /// Frames per batch (one publish, at most one kick, per batch).
    pub burst: usize,
    /// Frames per second (None: as fast as possible).
    pub rate: Option<f64>,
    /// Stop after this many frames (tx/rx/pong) or pings.
    pub count: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Source MAC of generated frames.
    pub src_mac: MacAddr,
    /// Destination MAC of generated frames.
    pub dst_mac: MacAddr,
    /// rx/pong: stop when nothing arrived for this long after the first frame.
    pub idle_timeout: Duration,
    /// How long to poll before sleeping on the eventfd.
    pub spin: Duration,
    /// Print a rate line every second to stderr.
    pub progress: bool,
    /// Port geometry when the port is created.
    pub port_config: PortConfig,
}

impl Config {
    /// Defaults for `port` and `mode`.
    pub fn new(socket: PathBuf, port: &str, mode: Mode) -> Config {
        Config {
            socket,
            port: port.to_owned(),
            mode,
            size: 60,
            burst: 512,
            rate: None,
            count: None,
            duration: None,
            src_mac: mac_for_port(port),
            dst_mac: MacAddr::BROADCAST,
            idle_timeout: Duration::from_secs(2),
            spin: Duration::from_micros(200),
            progress: true,
            port_config: PortConfig::default(),
        }
    }
}

/// A locally administered MAC derived from a port name (stable across runs).
pub fn mac_for_port(port: &str) -> MacAddr {
    let mut h: u32 = 0x811c_9dc5;
    for b in port.bytes() {
        h = (h ^ b as u32).wrapping_mul(0x0100_0193);
    }
    MacAddr::local(h)
}

/// A pktgen run failed.
#[derive(Debug, Error)]
pub enum PktgenError {
    /// The port could not be opened.
    #[error("cannot open {port}")]
    Open {
        /// The port.
        port: String,
        /// Why.
        source: OpenError,
    },
    /// The frame size is not possible.
    #[error("frame size {size} is not possible: test frames are {min}..={max} bytes and this port's buffers hold {buf}")]
    Size {
        /// Asked.
        size: usize,
        /// Smallest test frame.
        min: usize,
        /// Largest test frame.
        max: usize,
        /// The port's buffer size.
        buf: usize,
    },
    /// Waiting on the switch failed.
    #[error("waiting on the switch failed")]
    Io(#[from] std::io::Error),
    /// The daemon closed the control connection (it stopped, crashed or
    /// restarted): the port is gone.
    #[error("the daemon went away (it closed the control connection) after {packets} frames")]
    DaemonGone {
        /// Frames counted until then.
        packets: u64,
    },
}

/// Whether a mode's loop should stop now: `Ok(true)` after a termination
/// signal (recorded in `summary`), an error when the daemon went away
/// (`counted` frames so far), else `Ok(false)`.
pub(crate) fn should_stop(
    watch: &mut Watch,
    port: &mut PortClient,
    summary: &mut Summary,
    counted: u64,
) -> Result<bool, PktgenError> {
    match watch.check(port) {
        Verdict::Go => Ok(false),
        Verdict::Signal(name) => {
            summary.stopped_by = Some(name.to_owned());
            Ok(true)
        }
        Verdict::DaemonGone => Err(PktgenError::DaemonGone { packets: counted }),
    }
}

/// Paces a sender at `rate` frames per second (or not at all).
pub(crate) struct Pacer {
    start: Instant,
    rate: Option<f64>,
}

impl Pacer {
    pub(crate) fn new(rate: Option<f64>) -> Pacer {
        Pacer {
            start: Instant::now(),
            rate: rate.filter(|r| *r > 0.0),
        }
    }

    /// Waits for the next frame's turn after `sent` frames: sleeps when it is
    /// far (so a paced sender leaves the CPU to others; at most 50 ms at a
    /// time, so a stop request is seen), yields when near.
    pub(crate) fn wait_turn(&self, sent: u64) {
        let Some(rate) = self.rate else { return };
        let due = std::time::Duration::from_secs_f64(sent as f64 / rate);
        let now = self.start.elapsed();
        match due.checked_sub(now) {
            Some(left) if left > std::time::Duration::from_micros(200) => std::thread::sleep(
                (left - std::time::Duration::from_micros(100))
                    .min(std::time::Duration::from_millis(50)),
            ),
            Some(_) => std::thread::yield_now(),
            None => {}
        }
    }

    /// How many frames may be sent now, having sent `sent` so far (at most `want`).
    #[inline]
    pub(crate) fn allowance(&self, sent: u64, want: u64) -> u64 {
        match self.rate {
            None => want,
            Some(rate) => {
                let due = (self.start.elapsed().as_secs_f64() * rate) as u64 + 1;
                due.saturating_sub(sent).min(want)
            }
        }
    }
}

/// Opens the port and runs the configured mode.
pub fn run(config: &Config) -> Result<Summary, PktgenError> {
    let mut port =
        PortClient::open(&config.socket, &config.port, config.port_config).map_err(|source| {
            PktgenError::Open {
                port: config.port.clone(),
                source,
            }
        })?;
    if !(testframe::MIN_FRAME_LEN..=testframe::MAX_FRAME_LEN).contains(&config.size)
        || config.size > port.max_frame()
    {
        return Err(PktgenError::Size {
            size: config.size,
            min: testframe::MIN_FRAME_LEN,
            max: testframe::MAX_FRAME_LEN,
            buf: port.max_frame(),
        });
    }
    let mut summary = match config.mode {
        Mode::Tx => tx::run(&mut port, config)?,
        Mode::Rx => rx::run(&mut port, config)?,
        Mode::Ping => pingpong::ping(&mut port, config)?,
        Mode::Pong => pingpong::pong(&mut port, config)?,
    };
    let stats = port.stats();
    summary.mode = config.mode.name().to_owned();
    summary.port = config.port.clone();
    summary.frame_size = config.size;
    summary.kicks_sent = stats.kicks_sent;
    summary.sleeps = stats.sleeps;
    summary.finish_rates();
    Ok(summary)
}
