//! `vswitch top`: ports sorted by rate (packets, bits or drops a second),
//! refreshed every interval from the daemon's stats answer, with the
//! forwarding threads' busy share. On a terminal it is a full-screen view
//! (the alternate screen, keys read raw: `q` or Ctrl-C quits, `p`/`b`/`d`
//! sort) that restores the terminal however it ends; otherwise it prints a
//! block of plain lines each interval.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use switch_port::control::client::Connection;
use switch_port::names::PortName;
use switch_port::protocol::CounterSnapshot;
use switch_user::metrics::render::{kind_name, Scrape};

use super::stats::fetch;

/// Arguments of `vswitch top`.
#[derive(clap::Args)]
pub struct TopArgs {
    /// Seconds between refreshes.
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    interval: f64,
    /// Stop after COUNT refreshes (default: until `q`, Ctrl-C or a signal).
    #[arg(long, value_name = "COUNT")]
    count: Option<u64>,
    /// What to sort by (keys `p`, `b`, `d` switch on a terminal).
    #[arg(long, value_enum, default_value_t = SortBy::Packets)]
    sort: SortBy,
}

/// The rate ports are sorted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SortBy {
    /// Packets a second, both directions.
    Packets,
    /// Bits a second, both directions.
    Bits,
    /// Drops a second.
    Drops,
}

/// One port's rates over an interval.
struct Row {
    name: String,
    kind: &'static str,
    rx_pps: f64,
    tx_pps: f64,
    rx_bps: f64,
    tx_bps: f64,
    drops_ps: f64,
}

impl Row {
    fn key(&self, by: SortBy) -> f64 {
        match by {
            SortBy::Packets => self.rx_pps + self.tx_pps,
            SortBy::Bits => self.rx_bps + self.tx_bps,
            SortBy::Drops => self.drops_ps,
        }
    }
}

/// Rates between two samples.
struct Sampler {
    previous: HashMap<PortName, CounterSnapshot>,
    busy: HashMap<u32, u64>,
    at: Instant,
}

/// A screenful: the ports' rates and each thread's busy share.
struct Frame {
    secs: f64,
    rows: Vec<Row>,
    busy: Vec<(u32, f64)>,
}

impl Sampler {
    fn new(first: &Scrape) -> Sampler {
        Sampler {
            previous: first
                .ports
                .iter()
                .map(|p| (p.name.clone(), p.counters))
                .collect(),
            busy: first
                .threads
                .iter()
                .map(|t| (t.thread, t.busy_ns))
                .collect(),
            at: Instant::now(),
        }
    }

    fn next(&mut self, scrape: &Scrape, by: SortBy) -> Frame {
        let secs = self.at.elapsed().as_secs_f64().max(1e-6);
        self.at = Instant::now();
        let rate = |now: u64, before: u64| now.saturating_sub(before) as f64 / secs;
        let mut rows: Vec<Row> = scrape
            .ports
            .iter()
            .map(|p| {
                let c = &p.counters;
                let b = self.previous.get(&p.name).copied().unwrap_or(*c);
                Row {
                    name: p.name.to_string(),
                    kind: kind_name(p.kind),
                    rx_pps: rate(c.rx_packets, b.rx_packets),
                    tx_pps: rate(c.tx_packets, b.tx_packets),
                    rx_bps: rate(c.rx_bytes, b.rx_bytes) * 8.0,
                    tx_bps: rate(c.tx_bytes, b.tx_bytes) * 8.0,
                    drops_ps: rate(c.drops(), b.drops()),
                }
            })
            .collect();
        rows.sort_by(|a, b| b.key(by).total_cmp(&a.key(by)).then(a.name.cmp(&b.name)));
        let busy = scrape
            .threads
            .iter()
            .map(|t| {
                let before = self.busy.get(&t.thread).copied().unwrap_or(t.busy_ns);
                let share = t.busy_ns.saturating_sub(before) as f64 / 1e9 / secs;
                (t.thread, (share * 100.0).min(100.0))
            })
            .collect();
        self.previous = scrape
            .ports
            .iter()
            .map(|p| (p.name.clone(), p.counters))
            .collect();
        self.busy = scrape
            .threads
            .iter()
            .map(|t| (t.thread, t.busy_ns))
            .collect();
        Frame { secs, rows, busy }
    }
}

/// `1234567` as `1.23M`.
fn si(value: f64) -> String {
    let (v, unit) = match value {
        v if v >= 1e9 => (v / 1e9, "G"),
        v if v >= 1e6 => (v / 1e6, "M"),
        v if v >= 1e3 => (v / 1e3, "k"),
        v => return format!("{v:.0}"),
    };
    format!("{v:.2}{unit}")
}

fn busy_line(frame: &Frame) -> String {
    let threads: Vec<String> = frame
        .busy
        .iter()
        .map(|(t, pct)| format!("forward-{t} {pct:.1}%"))
        .collect();
    format!(
        "{} port(s), {:.2} s interval; busy: {}",
        frame.rows.len(),
        frame.secs,
        threads.join(", ")
    )
}

/// The plain block printed each interval when stdout is not a terminal.
fn plain(frame: &Frame, out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "{}", busy_line(frame))?;
    writeln!(
        out,
        "{:<28} {:<5} {:>12} {:>12} {:>14} {:>14} {:>10}",
        "port", "kind", "rx_pps", "tx_pps", "rx_bps", "tx_bps", "drops_ps"
    )?;
    for r in &frame.rows {
        writeln!(
            out,
            "{:<28} {:<5} {:>12.0} {:>12.0} {:>14.0} {:>14.0} {:>10.0}",
            r.name, r.kind, r.rx_pps, r.tx_pps, r.rx_bps, r.tx_bps, r.drops_ps
        )?;
    }
    writeln!(out)?;
    out.flush()
}

/// One screen on the terminal (`rows` lines at most).
fn screen(frame: &Frame, by: SortBy, rows: usize, out: &mut impl Write) -> io::Result<()> {
    let sorted = match by {
        SortBy::Packets => "packets/s",
        SortBy::Bits => "bits/s",
        SortBy::Drops => "drops/s",
    };
    // Home, clear; each line ends with "clear to end of line".
    write!(out, "\x1b[H\x1b[2J")?;
    write!(
        out,
        "vswitch top - sorted by {sorted} (p/b/d), q quits\x1b[K\n{}\x1b[K\n\x1b[7m{:<28} {:<5} {:>9} {:>9} {:>10} {:>10} {:>9}\x1b[0m\x1b[K\n",
        busy_line(frame),
        "PORT",
        "KIND",
        "RX pps",
        "TX pps",
        "RX bit/s",
        "TX bit/s",
        "drops/s"
    )?;
    for r in frame.rows.iter().take(rows.saturating_sub(4)) {
        writeln!(
            out,
            "{:<28} {:<5} {:>9} {:>9} {:>10} {:>10} {:>9}\x1b[K",
            r.name,
            r.kind,
            si(r.rx_pps),
            si(r.tx_pps),
            si(r.rx_bps),
            si(r.tx_bps),
            si(r.drops_ps)
        )?;
    }
    out.flush()
}

/// Set by SIGINT, SIGTERM and SIGHUP while the full-screen view runs.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// The terminal in full-screen mode; restored on drop, however `top` ends.
struct RawTerminal {
    saved: libc::termios,
}

impl RawTerminal {
    fn enter() -> io::Result<RawTerminal> {
        // SAFETY: tcgetattr fills a termios we own; zeroed is a valid start.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: as above, on stdin.
        if unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut saved) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut raw = saved;
        // Keys one at a time, no echo; Ctrl-C arrives as a byte (ISIG off)
        // so that it ends the loop like `q` does.
        raw.c_lflag &= !(libc::ICANON | libc::ECHO | libc::ISIG);
        raw.c_cc[libc::VMIN] = 0;
        raw.c_cc[libc::VTIME] = 0;
        // SAFETY: tcsetattr reads a valid termios.
        if unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &raw) } != 0 {
            return Err(io::Error::last_os_error());
        }
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: installs a handler that only stores to an atomic;
            // without SA_RESTART, so the wait for a key returns at once.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(signal, &action, std::ptr::null_mut());
            }
        }
        // The alternate screen, cursor hidden.
        print!("\x1b[?1049h\x1b[?25l");
        io::stdout().flush()?;
        Ok(RawTerminal { saved })
    }

    /// Lines on the screen (24 when unknown).
    fn rows(&self) -> usize {
        // SAFETY: TIOCGWINSZ fills a winsize we own.
        let mut size: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: as above, on stdout.
        let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
        if ok && size.ws_row > 0 {
            usize::from(size.ws_row)
        } else {
            24
        }
    }

    /// Waits up to `timeout` for a key; returns it, if any.
    fn key(&self, timeout: Duration) -> Option<u8> {
        let mut pfd = libc::pollfd {
            fd: libc::STDIN_FILENO,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, ms) } <= 0 {
            return None;
        }
        let mut byte = 0u8;
        // SAFETY: reads at most one byte into `byte`.
        let n = unsafe { libc::read(libc::STDIN_FILENO, (&mut byte as *mut u8).cast(), 1) };
        (n == 1).then_some(byte)
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        print!("\x1b[?25h\x1b[?1049l");
        let _ = io::stdout().flush();
        // SAFETY: restores the settings read at the start.
        unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.saved) };
    }
}

fn is_terminal(fd: libc::c_int) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

pub fn run(socket: &Path, args: TopArgs) -> Result<ExitCode> {
    let interval = Duration::from_secs_f64(args.interval.clamp(0.1, 3600.0));
    let mut conn = Connection::connect(socket)?;
    let mut sampler = Sampler::new(&fetch(&mut conn, &None)?);
    let mut by = args.sort;
    let count = args.count.unwrap_or(u64::MAX);
    if !(is_terminal(libc::STDOUT_FILENO) && is_terminal(libc::STDIN_FILENO)) {
        let mut out = io::stdout().lock();
        for _ in 0..count {
            std::thread::sleep(interval);
            let frame = sampler.next(&fetch(&mut conn, &None)?, by);
            if plain(&frame, &mut out).is_err() {
                // The reader went away (a closed pipe).
                break;
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let terminal = RawTerminal::enter()?;
    let mut shown = 0u64;
    let mut last: Option<Frame> = None;
    let mut next = Instant::now() + interval;
    while shown < count && !STOP.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= next {
            let frame = sampler.next(&fetch(&mut conn, &None)?, by);
            screen(&frame, by, terminal.rows(), &mut io::stdout().lock())?;
            last = Some(frame);
            shown += 1;
            next = now + interval;
            continue;
        }
        let Some(key) = terminal.key(next - now) else {
            continue;
        };
        by = match key {
            b'q' | b'Q' | 3 => break,
            b'p' => SortBy::Packets,
            b'b' => SortBy::Bits,
            b'd' => SortBy::Drops,
            _ => continue,
        };
        if let Some(frame) = last.as_mut() {
            frame
                .rows
                .sort_by(|a, b| b.key(by).total_cmp(&a.key(by)).then(a.name.cmp(&b.name)));
            screen(frame, by, terminal.rows(), &mut io::stdout().lock())?;
        }
    }
    drop(terminal);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switch_port::protocol::{PortKind, PortStats, ThreadStats};

    fn scrape(a_rx: u64, b_rx: u64, busy_ns: u64) -> Scrape {
        let port = |name: &str, rx: u64| PortStats {
            name: PortName::parse(name).unwrap(),
            kind: PortKind::Shm,
            counters: CounterSnapshot {
                rx_packets: rx,
                rx_bytes: rx * 100,
                ..Default::default()
            },
            extra: vec![],
        };
        Scrape {
            ports: vec![port("vale0:a", a_rx), port("vale0:b", b_rx)],
            threads: vec![ThreadStats {
                busy_ns,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn rates_sort_and_print() {
        let mut sampler = Sampler::new(&scrape(0, 0, 0));
        let frame = sampler.next(&scrape(10, 1000, 1000), SortBy::Packets);
        assert_eq!(frame.rows[0].name, "vale0:b", "busiest first");
        assert!(frame.rows[0].rx_pps > frame.rows[1].rx_pps);
        assert!((frame.rows[0].rx_bps / frame.rows[0].rx_pps - 800.0).abs() < 1e-6);
        let mut text = Vec::new();
        plain(&frame, &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.starts_with("2 port(s), "), "{text}");
        assert!(text.contains("forward-0 "), "{text}");
        assert!(
            text.lines().nth(2).unwrap().starts_with("vale0:b "),
            "{text}"
        );
        assert_eq!(si(1_234_567.0), "1.23M");
        assert_eq!(si(12.0), "12");
    }
}
