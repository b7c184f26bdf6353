//! `vswitch pktgen`.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};

use switch_port::client::PortConfig;
use switch_port::mac::MacAddr;
use switch_user::pktgen::{self, Config, Mode};

/// Arguments of `vswitch pktgen`.
#[derive(clap::Args)]
pub struct PktgenArgs {
    /// The port to open (SWITCH:PORT); it is created if it does not exist.
    port: String,
    /// tx: send; rx: receive and verify; ping: time round trips; pong: answer pings.
    #[arg(long, value_enum)]
    mode: Mode,
    /// Frame size in bytes, without FCS (60..9216).
    #[arg(long, default_value_t = 60)]
    size: usize,
    /// Frames per batch: one publish and at most one kick per batch.
    #[arg(long, default_value_t = 512)]
    burst: usize,
    /// Frames (or pings) per second; as fast as possible when absent.
    #[arg(long)]
    rate: Option<f64>,
    /// Stop after this many frames (tx, rx, pong) or pings (ping; default 10000).
    #[arg(long)]
    count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Source MAC (default: derived from the port name). The port is not
    /// locked to it: pktgen may send as any address (to test port security).
    #[arg(long)]
    src_mac: Option<MacAddr>,
    /// Destination MAC (default: broadcast; for ping, the pong side's MAC gets unicast).
    #[arg(long)]
    dst_mac: Option<MacAddr>,
    /// rx/pong: stop after this many seconds without frames, once frames have arrived.
    #[arg(long, default_value_t = 2.0)]
    idle_timeout: f64,
    /// Microseconds to poll (yielding the CPU between polls) before sleeping on the switch's kick.
    #[arg(long, default_value_t = 200)]
    spin_us: u64,
    /// Slots per ring if this opens a new port.
    #[arg(long)]
    ring_size: Option<u32>,
    /// Bytes per buffer if this opens a new port.
    #[arg(long)]
    buf_size: Option<u32>,
    /// Print the summary as JSON on stdout (also when Ctrl-C or SIGTERM
    /// stops the run: then with "stopped_by").
    #[arg(long)]
    json: bool,
    /// No per-second rate lines.
    #[arg(long, short)]
    quiet: bool,
}

/// Runs pktgen; SIGINT and SIGTERM end the run with its summary (the same
/// signal again ends the process at once).
pub fn run(socket: &Path, args: PktgenArgs) -> Result<ExitCode> {
    pktgen::stop::catch_signals().context("cannot catch SIGINT and SIGTERM")?;
    let mut config = Config::new(socket.to_owned(), &args.port, args.mode);
    config.size = args.size;
    config.burst = args.burst;
    config.rate = args.rate;
    config.count = args.count;
    config.duration = args.duration.map(Duration::from_secs_f64);
    if let Some(m) = args.src_mac {
        config.src_mac = m;
    }
    config.dst_mac = args.dst_mac.unwrap_or(MacAddr::BROADCAST);
    config.idle_timeout = Duration::from_secs_f64(args.idle_timeout.max(0.01));
    config.spin = Duration::from_micros(args.spin_us);
    config.progress = !args.quiet;
    config.port_config = PortConfig {
        ring_size: args.ring_size,
        buf_size: args.buf_size,
        mac: None,
    };
    let summary = pktgen::run(&config)?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!("{}", summary.human());
    }
    let clean = summary.corrupt == 0 && (args.mode != Mode::Ping || summary.ping_timeouts == 0);
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}
