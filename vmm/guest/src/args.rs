//! The guest's command line (the PVH command line):
//! `WORKLOAD [size=BYTES] [count=N] [duration=SECS] [rate=PPS] [dst=MAC]
//!  [burst=N] [txmode=plain|combine|csb] [tsc_khz=N] [ip=A.B.C.D/N] [quiet]`.

use crate::ipv4_echo::{self, Ipv4Net};
use core::fmt;

/// Largest frame the guest sends (no jumbo frames: RX buffers are 2 KiB).
pub const MAX_SIZE: usize = 1514;
/// Largest `burst=`.
pub const MAX_BURST: usize = 256;

/// What the guest runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Send test frames.
    Tx,
    /// Receive and verify test frames.
    Rx,
    /// Send pings and time the pongs.
    Ping,
    /// Answer pings.
    Pong,
    /// Write hostile values to the device, then check it still works.
    Chaos,
    /// Observe what a stock driver relies on and report it (the
    /// conformance comparison with QEMU's e1000).
    Conform,
}

impl Workload {
    /// The name used on the command line and in the result line.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Tx => "tx",
            Workload::Rx => "rx",
            Workload::Ping => "ping",
            Workload::Pong => "pong",
            Workload::Chaos => "chaos",
            Workload::Conform => "conform",
        }
    }
}

/// How the TX path tells the device about new frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxMode {
    /// One TDT write per frame (the stock driver).
    Plain,
    /// Send combining: no TDT write while a TX interrupt is pending; the
    /// interrupt handler writes TDT once for the frames queued meanwhile.
    Combine,
    /// The CSB paravirtual mode (not implemented yet).
    Csb,
}

impl TxMode {
    /// The name used on the command line and in the result line.
    pub fn name(self) -> &'static str {
        match self {
            TxMode::Plain => "plain",
            TxMode::Combine => "combine",
            TxMode::Csb => "csb",
        }
    }
}

/// The parsed command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// The workload.
    pub workload: Workload,
    /// Frame size in bytes without FCS (60..=1514).
    pub size: usize,
    /// Frames to send or expect (pings for `ping`); `None`: the default.
    pub count: Option<u64>,
    /// Run time bound in milliseconds; `None`: the default.
    pub duration_ms: Option<u64>,
    /// Silence after which `rx` and `pong` stop, in milliseconds; `None`:
    /// the default (2 s).
    pub idle_ms: Option<u64>,
    /// Frames (or pings) per second; `None`: as fast as possible.
    pub rate: Option<u64>,
    /// Destination MAC (default broadcast).
    pub dst: [u8; 6],
    /// Frames queued per loop iteration.
    pub burst: usize,
    /// TX publication mode.
    pub txmode: TxMode,
    /// TSC frequency in kHz, if given.
    pub tsc_khz: Option<u64>,
    /// No progress lines, only the result.
    pub quiet: bool,
    /// `pong` only: the address it answers ARP, ICMP echo and UDP on.
    pub ip: Option<Ipv4Net>,
}

/// A command line the guest cannot run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgError<'a> {
    /// No workload word.
    MissingWorkload,
    /// Two workload words, or an unknown one.
    BadWorkload(&'a str),
    /// `key=` that the guest does not know.
    UnknownKey(&'a str),
    /// A value that does not parse or is out of range.
    BadValue(&'a str, &'a str),
    /// `key=` that the workload does not take.
    NotForWorkload(&'a str),
}

impl fmt::Display for ArgError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgError::MissingWorkload => write!(f, "no workload (tx|rx|ping|pong|chaos|conform)"),
            ArgError::BadWorkload(w) => write!(f, "bad or second workload '{w}'"),
            ArgError::UnknownKey(k) => write!(f, "unknown argument '{k}'"),
            ArgError::BadValue(k, v) => write!(f, "bad value '{v}' for {k}="),
            ArgError::NotForWorkload(k) => write!(f, "{k}= is for the pong workload only"),
        }
    }
}

/// The broadcast MAC.
pub const BROADCAST: [u8; 6] = [0xFF; 6];

/// Parses the command line.
pub fn parse(cmdline: &str) -> Result<Config, ArgError<'_>> {
    let mut workload = None;
    let mut config = Config {
        workload: Workload::Tx,
        size: testframe::MIN_FRAME_LEN,
        count: None,
        duration_ms: None,
        idle_ms: None,
        rate: None,
        dst: BROADCAST,
        burst: 32,
        txmode: TxMode::Plain,
        tsc_khz: None,
        quiet: false,
        ip: None,
    };
    for word in cmdline.split_ascii_whitespace() {
        let Some((key, value)) = word.split_once('=') else {
            match word {
                "quiet" => config.quiet = true,
                _ => {
                    let parsed = match word {
                        "tx" => Workload::Tx,
                        "rx" => Workload::Rx,
                        "ping" => Workload::Ping,
                        "pong" => Workload::Pong,
                        "chaos" => Workload::Chaos,
                        "conform" => Workload::Conform,
                        _ => return Err(ArgError::BadWorkload(word)),
                    };
                    if workload.replace(parsed).is_some() {
                        return Err(ArgError::BadWorkload(word));
                    }
                }
            }
            continue;
        };
        let bad = || ArgError::BadValue(key, value);
        match key {
            "size" => {
                let size = parse_u64(value).ok_or_else(bad)? as usize;
                if !(testframe::MIN_FRAME_LEN..=MAX_SIZE).contains(&size) {
                    return Err(bad());
                }
                config.size = size;
            }
            "count" => config.count = Some(parse_u64(value).filter(|&n| n > 0).ok_or_else(bad)?),
            "duration" => config.duration_ms = Some(parse_millis(value).ok_or_else(bad)?),
            "idle" => {
                config.idle_ms = Some(parse_millis(value).filter(|&ms| ms > 0).ok_or_else(bad)?)
            }
            "rate" => config.rate = Some(parse_u64(value).filter(|&n| n > 0).ok_or_else(bad)?),
            "dst" => config.dst = parse_mac(value).ok_or_else(bad)?,
            "burst" => {
                let burst = parse_u64(value).ok_or_else(bad)? as usize;
                if !(1..=MAX_BURST).contains(&burst) {
                    return Err(bad());
                }
                config.burst = burst;
            }
            "txmode" => {
                config.txmode = match value {
                    "plain" => TxMode::Plain,
                    "combine" => TxMode::Combine,
                    "csb" => TxMode::Csb,
                    _ => return Err(bad()),
                }
            }
            "tsc_khz" => {
                config.tsc_khz = Some(parse_u64(value).filter(|&n| n > 0).ok_or_else(bad)?)
            }
            "ip" => config.ip = Some(ipv4_echo::parse_net(value).map_err(|_| bad())?),
            _ => return Err(ArgError::UnknownKey(key)),
        }
    }
    config.workload = workload.ok_or(ArgError::MissingWorkload)?;
    if config.ip.is_some() && config.workload != Workload::Pong {
        return Err(ArgError::NotForWorkload("ip"));
    }
    Ok(config)
}

fn parse_u64(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.bytes().try_fold(0u64, |n, b| {
        n.checked_mul(10)?.checked_add((b - b'0') as u64)
    })
}

/// Seconds with up to three decimals ("2", "0.5", "1.25") to milliseconds.
fn parse_millis(text: &str) -> Option<u64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 3 || (whole.is_empty() && frac.is_empty()) {
        return None;
    }
    let whole = if whole.is_empty() {
        0
    } else {
        parse_u64(whole)?
    };
    let mut millis = 0;
    for (i, digit) in frac.bytes().enumerate() {
        if !digit.is_ascii_digit() {
            return None;
        }
        millis += (digit - b'0') as u64 * [100, 10, 1][i];
    }
    let total = whole.checked_mul(1000)?.checked_add(millis)?;
    (total > 0).then_some(total)
}

/// `aa:bb:cc:dd:ee:ff` (or with `-`).
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split([':', '-']);
    for byte in mac.iter_mut() {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_command_line() {
        assert_eq!(parse("pong idle=10").unwrap().idle_ms, Some(10_000));
        assert_eq!(parse("pong idle=0"), Err(ArgError::BadValue("idle", "0")));
        let c = parse("tx size=128 count=1000 duration=2.5 rate=5000 dst=02:00:00:00:00:02 burst=64 txmode=combine tsc_khz=2300000 quiet").unwrap();
        assert_eq!(c.workload, Workload::Tx);
        assert_eq!(c.size, 128);
        assert_eq!(c.count, Some(1000));
        assert_eq!(c.duration_ms, Some(2500));
        assert_eq!(c.rate, Some(5000));
        assert_eq!(c.dst, [2, 0, 0, 0, 0, 2]);
        assert_eq!(c.burst, 64);
        assert_eq!(c.txmode, TxMode::Combine);
        assert_eq!(c.tsc_khz, Some(2_300_000));
        assert!(c.quiet);
    }

    #[test]
    fn defaults_and_order() {
        let c = parse("  count=5 rx ").unwrap();
        assert_eq!(c.workload, Workload::Rx);
        assert_eq!(c.size, 60);
        assert_eq!(c.dst, BROADCAST);
        assert_eq!(c.txmode, TxMode::Plain);
        assert!(!c.quiet);
    }

    #[test]
    fn errors() {
        assert_eq!(parse(""), Err(ArgError::MissingWorkload));
        assert_eq!(parse("tx rx"), Err(ArgError::BadWorkload("rx")));
        assert_eq!(parse("fly"), Err(ArgError::BadWorkload("fly")));
        assert_eq!(parse("tx speed=3"), Err(ArgError::UnknownKey("speed")));
        assert_eq!(parse("tx size=59"), Err(ArgError::BadValue("size", "59")));
        assert_eq!(
            parse("tx size=1515"),
            Err(ArgError::BadValue("size", "1515"))
        );
        assert_eq!(parse("tx count=0"), Err(ArgError::BadValue("count", "0")));
        assert_eq!(parse("tx count=-1"), Err(ArgError::BadValue("count", "-1")));
        assert_eq!(parse("tx burst=0"), Err(ArgError::BadValue("burst", "0")));
        assert_eq!(
            parse("tx dst=02:00:00:00:00"),
            Err(ArgError::BadValue("dst", "02:00:00:00:00"))
        );
        assert_eq!(
            parse("tx duration=1.2345"),
            Err(ArgError::BadValue("duration", "1.2345"))
        );
        assert_eq!(
            parse("tx txmode=fast"),
            Err(ArgError::BadValue("txmode", "fast"))
        );
        assert_eq!(
            parse("tx count=99999999999999999999999"),
            Err(ArgError::BadValue("count", "99999999999999999999999"))
        );
    }

    #[test]
    fn addresses() {
        let c = parse("pong ip=192.0.2.10/24").unwrap();
        assert_eq!(
            c.ip,
            Some(Ipv4Net {
                addr: [192, 0, 2, 10],
                prefix: 24
            })
        );
        assert_eq!(parse("pong").unwrap().ip, None);
        assert_eq!(
            parse("pong ip=192.0.2.0/24"),
            Err(ArgError::BadValue("ip", "192.0.2.0/24"))
        );
        assert_eq!(
            parse("pong ip=192.0.2.10"),
            Err(ArgError::BadValue("ip", "192.0.2.10"))
        );
        assert_eq!(
            parse("rx ip=192.0.2.10/24"),
            Err(ArgError::NotForWorkload("ip"))
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_millis("1"), Some(1000));
        assert_eq!(parse_millis("0.5"), Some(500));
        assert_eq!(parse_millis(".25"), Some(250));
        assert_eq!(parse_millis("0"), None);
        assert_eq!(parse_millis("x"), None);
    }

    #[test]
    fn mac_round_trip() {
        let mac = parse_mac("52-54-00-12-34-5A").unwrap();
        assert_eq!(format!("{}", Mac(mac)), "52:54:00:12:34:5a");
    }
}
