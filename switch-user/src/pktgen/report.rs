//! What pktgen prints: a rate line per interval and a final summary.

use std::time::{Duration, Instant};

use serde::Serialize;

/// RTT percentiles in microseconds.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct RttSummary {
    /// Smallest.
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl RttSummary {
    /// Percentiles of `samples_ns` (sorted in place); `None` when empty.
    pub fn from_ns(samples_ns: &mut [u64]) -> Option<RttSummary> {
        if samples_ns.is_empty() {
            return None;
        }
        samples_ns.sort_unstable();
        let at = |q: f64| {
            let i = ((samples_ns.len() - 1) as f64 * q).round() as usize;
            samples_ns[i] as f64 / 1000.0
        };
        let sum: u128 = samples_ns.iter().map(|&s| s as u128).sum();
        Some(RttSummary {
            min: at(0.0),
            p50: at(0.5),
            p99: at(0.99),
            max: at(1.0),
            mean: sum as f64 / samples_ns.len() as f64 / 1000.0,
        })
    }
}

/// The result of a pktgen run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// tx, rx, ping or pong.
    pub mode: String,
    /// The port used.
    pub port: String,
    /// Frame size in bytes.
    pub frame_size: usize,
    /// Frames sent (tx, ping, pong) or received intact (rx).
    pub packets: u64,
    /// Bytes of those frames.
    pub bytes: u64,
    /// Seconds from the first to the last frame.
    pub seconds: f64,
    /// Millions of frames per second.
    pub mpps: f64,
    /// Gigabits per second of frame bytes (no preamble or FCS).
    pub gbps: f64,
    /// rx: frames missing from the sequence.
    pub lost: u64,
    /// rx: frames that came after a higher sequence number.
    pub reordered: u64,
    /// rx: frames received twice.
    pub duplicates: u64,
    /// rx/ping/pong: frames that failed the checksum or length check.
    pub corrupt: u64,
    /// rx/ping/pong: frames that were not test frames.
    pub foreign: u64,
    /// tx: times the TX ring was full and the sender waited (never a drop).
    pub ring_full_waits: u64,
    /// ping: pings without a pong within the timeout.
    pub ping_timeouts: u64,
    /// ping: RTT percentiles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_us: Option<RttSummary>,
    /// Kicks this process sent to the switch.
    pub kicks_sent: u64,
    /// Times this process slept waiting on the switch.
    pub sleeps: u64,
    /// The signal that stopped the run early (SIGINT, SIGTERM), if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<String>,
}

impl Summary {
    /// Fills the rates from packets, bytes and seconds.
    pub fn finish_rates(&mut self) {
        if self.seconds > 0.0 {
            self.mpps = self.packets as f64 / self.seconds / 1e6;
            self.gbps = self.bytes as f64 * 8.0 / self.seconds / 1e9;
        }
    }

    /// The human-readable summary (pkt-gen style).
    pub fn human(&self) -> String {
        let mut s = format!(
            "{} on {}: {} packets of {} bytes in {:.3} s: {:.3} Mpps, {:.3} Gbit/s",
            self.mode, self.port, self.packets, self.frame_size, self.seconds, self.mpps, self.gbps
        );
        if self.mode == "rx" {
            s += &format!(
                "; lost {}, reordered {}, duplicates {}, corrupt {}, foreign {}",
                self.lost, self.reordered, self.duplicates, self.corrupt, self.foreign
            );
        }
        if self.mode == "tx" {
            s += &format!("; waited for ring space {} times", self.ring_full_waits);
        }
        if let Some(r) = &self.rtt_us {
            s += &format!(
                "; RTT us min {:.1} p50 {:.1} p99 {:.1} max {:.1}; {} timeouts",
                r.min, r.p50, r.p99, r.max, self.ping_timeouts
            );
        }
        if let Some(signal) = &self.stopped_by {
            s += &format!("; stopped by {signal}");
        }
        s
    }
}

/// Prints one rate line per interval to stderr.
pub struct RateLine {
    label: &'static str,
    every: Duration,
    last: Instant,
    last_packets: u64,
    last_bytes: u64,
    enabled: bool,
}

impl RateLine {
    /// A reporter printing every `every` when `enabled`.
    pub fn new(label: &'static str, every: Duration, enabled: bool) -> RateLine {
        RateLine {
            label,
            every,
            last: Instant::now(),
            last_packets: 0,
            last_bytes: 0,
            enabled,
        }
    }

    /// Prints a line if an interval has passed.
    #[inline]
    pub fn tick(&mut self, packets: u64, bytes: u64, extra: &str) {
        if !self.enabled {
            return;
        }
        let elapsed = self.last.elapsed();
        if elapsed < self.every {
            return;
        }
        let secs = elapsed.as_secs_f64();
        let pps = (packets - self.last_packets) as f64 / secs;
        let bps = (bytes - self.last_bytes) as f64 * 8.0 / secs;
        eprintln!(
            "{}: {:>10.3} Mpps {:>8.3} Gbit/s  total {:>12}{}",
            self.label,
            pps / 1e6,
            bps / 1e9,
            packets,
            extra
        );
        self.last = Instant::now();
        self.last_packets = packets;
        self.last_bytes = bytes;
    }
}
