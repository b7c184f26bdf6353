//! `capture` and `mirror`.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use switch_port::control::client::Connection;
use switch_port::names::{PortName, SwitchName};
use switch_port::protocol::capture::{DIR_RX, KIND_FRAME};
use switch_port::protocol::{Request, Response, TapDirection};
use switch_user::capture::pcapng::{CaptureWriter, Format};
use switch_user::capture::records::RecordSplitter;
use switch_user::pktgen::stop;

/// Arguments of `vswitch capture`.
#[derive(clap::Args)]
pub struct CaptureArgs {
    /// The port, SWITCH:PORT.
    port: PortName,
    /// Where to write the capture; `-` for standard output (e.g. into `tcpdump -r -`).
    #[arg(
        short = 'w',
        long = "write",
        value_name = "FILE|-",
        default_value = "-"
    )]
    write: PathBuf,
    /// Stop after this many frames.
    #[arg(short = 'c', long, value_name = "COUNT")]
    count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "S")]
    duration: Option<f64>,
    /// Which frames: rx (received from the port), tx (delivered to it) or both.
    #[arg(long, default_value = "both")]
    dir: TapDirection,
    /// Bytes kept of each frame (1..65535).
    #[arg(long, value_name = "N")]
    snaplen: Option<u32>,
    /// File format.
    #[arg(long, value_enum, default_value_t = Format::Pcapng)]
    format: Format,
}

/// Why a capture ended.
enum Ending {
    Count,
    Duration,
    Signal(&'static str),
    ReaderClosed,
    DaemonClosed,
}

/// What a read from the daemon gave.
#[derive(Debug, PartialEq, Eq)]
enum Filled {
    /// Bytes.
    Some,
    /// Nothing within the socket's read timeout (or nothing now).
    Nothing,
    /// End of stream: the daemon ended the capture.
    Closed,
}

/// Reads what the daemon sent into `records`, waiting at most the socket's
/// read timeout.
fn fill(conn: &mut &UnixStream, records: &mut RecordSplitter) -> io::Result<Filled> {
    let mut chunk = [0u8; 64 * 1024];
    match conn.read(&mut chunk) {
        Ok(0) => Ok(Filled::Closed),
        Ok(n) => {
            records.extend(&chunk[..n]);
            Ok(Filled::Some)
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
            ) =>
        {
            Ok(Filled::Nothing)
        }
        Err(e) => Err(e),
    }
}

/// Frames written so far, and the daemon's dropped count.
struct Progress {
    count: Option<u64>,
    captured: u64,
    dropped: u64,
}

impl Progress {
    /// Writes the whole records in `records` to `writer` (up to the count)
    /// and flushes; returns why the capture ends, if it does.
    fn write<W: Write>(
        &mut self,
        records: &mut RecordSplitter,
        writer: &mut CaptureWriter<W>,
        file: &str,
    ) -> Result<Option<Ending>> {
        let written = (|| -> io::Result<()> {
            while let Some((h, data)) = records
                .next_record()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?
            {
                self.dropped = self.dropped.max(h.dropped);
                if h.kind == KIND_FRAME && self.count.is_none_or(|c| self.captured < c) {
                    writer.packet(h.ts_ns, h.orig_len, data, h.dir == DIR_RX)?;
                    self.captured += 1;
                }
            }
            writer.flush()
        })();
        match written {
            Ok(()) if self.count.is_some_and(|c| self.captured >= c) => Ok(Some(Ending::Count)),
            Ok(()) => Ok(None),
            Err(e) if is_broken_pipe(&e) => Ok(Some(Ending::ReaderClosed)),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                Err(e).context("reading the capture from the daemon")
            }
            Err(e) => Err(e).with_context(|| format!("writing {file}")),
        }
    }
}

fn is_broken_pipe(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
}

/// `vswitch capture`.
pub fn capture(socket: &Path, args: CaptureArgs) -> Result<ExitCode> {
    let duration = args
        .duration
        .map(|s| {
            Duration::try_from_secs_f64(s)
                .map_err(|_| anyhow::anyhow!("--duration {s} is not a number of seconds"))
        })
        .transpose()?;
    stop::catch_signals().context("installing the signal handlers")?;
    let mut conn = Connection::connect(socket)?;
    let (response, _) = conn.call(&Request::Capture {
        port: args.port.clone(),
        dir: args.dir,
        snaplen: args.snaplen,
    })?;
    let Response::CaptureStarted { snaplen, .. } = response else {
        bail!("unexpected response from the daemon: {response:?}");
    };
    let out: Box<dyn Write> = if args.write.as_os_str() == "-" {
        Box::new(io::stdout().lock())
    } else {
        Box::new(
            File::create(&args.write)
                .with_context(|| format!("creating {}", args.write.display()))?,
        )
    };
    let file = if args.write.as_os_str() == "-" {
        "standard output".to_owned()
    } else {
        args.write.display().to_string()
    };
    let mut writer = match CaptureWriter::new(
        BufWriter::with_capacity(256 * 1024, out),
        args.format,
        args.port.as_str(),
        snaplen,
    )
    .and_then(|mut w| w.flush().map(|_| w))
    {
        Ok(w) => w,
        Err(e) if is_broken_pipe(&e) => {
            eprintln!("capture of {}: the reader of {file} went away", args.port);
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => return Err(e).with_context(|| format!("writing {file}")),
    };
    eprintln!(
        "capturing {} ({}), snap length {snaplen}, into {file}",
        args.port,
        args.dir.as_str()
    );
    let stream = conn.stream();
    stream.set_read_timeout(Some(Duration::from_millis(100)))?;
    let deadline = duration.map(|d| Instant::now() + d);
    let mut progress = Progress {
        count: args.count,
        captured: 0,
        dropped: 0,
    };
    let mut records = RecordSplitter::default();
    let mut reader = stream;
    let ending = loop {
        let stop = if let Some(signal) = stop::caught() {
            Some(Ending::Signal(signal))
        } else if deadline.is_some_and(|d| Instant::now() >= d) {
            Some(Ending::Duration)
        } else {
            None
        };
        if let Some(stop) = stop {
            // What the daemon sent before the stop still goes to the file.
            reader.set_nonblocking(true)?;
            for _ in 0..64 {
                match fill(&mut reader, &mut records) {
                    Ok(Filled::Some) => {}
                    Ok(_) | Err(_) => break,
                }
            }
            break progress
                .write(&mut records, &mut writer, &file)?
                .unwrap_or(stop);
        }
        let filled =
            fill(&mut reader, &mut records).context("reading the capture from the daemon")?;
        if let Some(end) = progress.write(&mut records, &mut writer, &file)? {
            break end;
        }
        if filled == Filled::Closed {
            break Ending::DaemonClosed;
        }
    };
    let Progress {
        captured, dropped, ..
    } = progress;
    // Closing the connection ends the capture in the daemon.
    drop(conn);
    let why = match ending {
        Ending::Count => "count reached".to_owned(),
        Ending::Duration => "duration reached".to_owned(),
        Ending::Signal(s) => format!("stopped by {s}"),
        Ending::ReaderClosed => format!("the reader of {file} went away"),
        Ending::DaemonClosed => {
            "the daemon ended the capture (the port went away, or the daemon stopped)".to_owned()
        }
    };
    eprintln!(
        "capture of {}: {captured} frames captured, {dropped} dropped by the switch ({why})",
        args.port
    );
    Ok(ExitCode::SUCCESS)
}

/// A port of `switch`, given as `SWITCH:PORT` or just `PORT`.
fn port_of(switch: &SwitchName, s: &str) -> Result<PortName> {
    let name = if s.contains(':') {
        PortName::parse(s)
    } else {
        PortName::join(switch, s)
    };
    name.map_err(|e| anyhow::anyhow!("{s:?}: {e}"))
}

/// Arguments of `vswitch mirror`.
#[derive(clap::Args)]
pub struct MirrorArgs {
    #[command(subcommand)]
    command: MirrorCommand,
}

#[derive(clap::Subcommand)]
enum MirrorCommand {
    /// Copy the traffic of ports to another port (a NIC, the host's TAP, an analyser's port).
    Add {
        /// The switch.
        switch: SwitchName,
        /// A name for the mirror.
        name: String,
        /// The mirrored ports, comma-separated (PORT or SWITCH:PORT).
        #[arg(
            long,
            value_name = "PORT[,PORT]",
            value_delimiter = ',',
            required = true
        )]
        src: Vec<String>,
        /// Which of their frames: rx (received from them), tx (delivered to them) or both.
        #[arg(long, default_value = "both")]
        dir: TapDirection,
        /// Where the copies go.
        #[arg(long, value_name = "PORT")]
        dst: String,
    },
    /// Remove a mirror.
    Del {
        /// The switch.
        switch: SwitchName,
        /// The mirror.
        name: String,
    },
    /// List the mirrors.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// `vswitch mirror`.
pub fn mirror(socket: &Path, args: MirrorArgs) -> Result<ExitCode> {
    let mut conn = Connection::connect(socket)?;
    match args.command {
        MirrorCommand::Add {
            switch,
            name,
            src,
            dir,
            dst,
        } => {
            let src = src
                .iter()
                .map(|s| port_of(&switch, s))
                .collect::<Result<Vec<_>>>()?;
            let dst = port_of(&switch, &dst)?;
            conn.call(&Request::MirrorAdd {
                switch: switch.clone(),
                name: name.clone(),
                src,
                dir,
                dst,
            })?;
            println!("added mirror {name} to {switch}");
        }
        MirrorCommand::Del { switch, name } => {
            conn.call(&Request::MirrorDel {
                switch: switch.clone(),
                name: name.clone(),
            })?;
            println!("deleted mirror {name} of {switch}");
        }
        MirrorCommand::List { json } => {
            let (Response::Mirrors { mirrors }, _) = conn.call(&Request::MirrorList {})? else {
                bail!("unexpected response from the daemon");
            };
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({ "mirrors": mirrors }))?
                );
            } else if mirrors.is_empty() {
                println!("no mirrors");
            } else {
                for m in mirrors {
                    let src: Vec<&str> = m.src.iter().map(|p| p.as_str()).collect();
                    println!(
                        "{} {}: {} ({}) -> {}",
                        m.switch,
                        m.name,
                        src.join(","),
                        m.dir.as_str(),
                        m.dst
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
