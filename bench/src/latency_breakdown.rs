//! Where a ping-pong round trip spends its time, hop by hop, from the
//! VMMs' test-frame timestamps (`vmm --e1000 trace=N`, written in their
//! `--stats-json` under `latency`; docs/latency-breakdown.md).
//!
//! Every host-side timestamp is CLOCK_MONOTONIC, shared by all processes
//! on the machine, so hops between VMMs (and from `vswitch pktgen`, which
//! stamps its pings with the same clock) are measured per round trip,
//! joined by sequence number. The guests' own clocks are not converted:
//! the hop between the pinging guest and its VMM (both ways together) is
//! the guest's RTT p50 minus the p50 of what its VMM saw, a difference of
//! medians, and says so.

use std::collections::HashMap;

use serde_json::{Map, Value};

/// Sequence numbers from here are the guest's warm-up pings (not counted).
const WARMUP_SEQ_BASE: u64 = 1 << 63;

/// One VMM's samples: sequence number -> (CLOCK_MONOTONIC ns at the
/// crossing, the timestamp the frame carried).
#[derive(Debug, Default)]
pub struct Trace {
    tx_ping: HashMap<u64, (u64, u64)>,
    rx_ping: HashMap<u64, (u64, u64)>,
    tx_pong: HashMap<u64, (u64, u64)>,
    rx_pong: HashMap<u64, (u64, u64)>,
}

impl Trace {
    /// The samples in a VMM's final statistics, `None` without tracing.
    pub fn from_stats(stats: &Value) -> Option<Trace> {
        let latency = stats.get("latency")?.as_object()?;
        let list = |key: &str| -> HashMap<u64, (u64, u64)> {
            latency
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|s| Some((s[0].as_u64()?, (s[1].as_u64()?, s[2].as_u64()?))))
                .collect()
        };
        Some(Trace {
            tx_ping: list("tx_ping"),
            rx_ping: list("rx_ping"),
            tx_pong: list("tx_pong"),
            rx_pong: list("rx_pong"),
        })
    }

    /// CLOCK_MONOTONIC of the first ping this VMM took from its guest.
    pub fn first_tx_ping_ns(&self) -> Option<u64> {
        self.tx_ping.values().map(|&(ns, _)| ns).min()
    }
}

/// One hop: p50 and p99 in microseconds over `samples` round trips.
#[derive(Clone, Debug, PartialEq)]
pub struct Hop {
    /// Short key for the JSON (`hop_<key>_p50_us`).
    pub key: &'static str,
    /// What it spans.
    pub what: &'static str,
    /// Median, microseconds.
    pub p50_us: f64,
    /// 99th percentile, microseconds (NaN when derived).
    pub p99_us: f64,
    /// Round trips it was computed over (0: derived from medians).
    pub samples: usize,
}

/// The `q` quantile (0..=1) of `values` (sorted here), in microseconds.
fn quantile_us(values: &mut [u64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_unstable();
    let i = ((values.len() - 1) as f64 * q).round() as usize;
    values[i] as f64 / 1000.0
}

/// A measured hop over the durations `end - start` (ns, same clock).
fn hop(key: &'static str, what: &'static str, mut spans: Vec<u64>) -> Hop {
    Hop {
        key,
        what,
        samples: spans.len(),
        p50_us: quantile_us(&mut spans, 0.5),
        p99_us: quantile_us(&mut spans, 0.99),
    }
}

/// `end[seq] - start[seq]` for every counted seq both have.
fn spans(
    start: &HashMap<u64, (u64, u64)>,
    end: &HashMap<u64, (u64, u64)>,
    start_of: impl Fn((u64, u64)) -> u64,
) -> Vec<u64> {
    start
        .iter()
        .filter(|(seq, _)| **seq < WARMUP_SEQ_BASE)
        .filter_map(|(seq, &s)| Some(end.get(seq)?.0.saturating_sub(start_of(s))))
        .collect()
}

/// Guest A pings guest B: `a` is the pinging VM's VMM, `b` the answering
/// one's; `rtt_p50_us` what guest A measured.
pub fn vm_to_vm(a: &Trace, b: &Trace, rtt_p50_us: f64) -> Vec<Hop> {
    let at = |(ns, _): (u64, u64)| ns;
    let host_rtt = hop(
        "vmm_a_rtt",
        "VMM A takes the ping .. VMM A delivers the pong",
        spans(&a.tx_ping, &a.rx_pong, at),
    );
    vec![
        Hop {
            key: "guest_a",
            what: "guest A -> VMM A + VMM A -> guest A (RTT p50 - VMM A's p50)",
            p50_us: rtt_p50_us - host_rtt.p50_us,
            p99_us: f64::NAN,
            samples: 0,
        },
        hop(
            "ping_a_to_b",
            "VMM A takes the ping -> switch -> VMM B delivers it",
            spans(&a.tx_ping, &b.rx_ping, at),
        ),
        hop(
            "guest_b",
            "VMM B delivers the ping -> guest B answers -> VMM B takes the pong",
            spans(&b.rx_ping, &b.tx_pong, at),
        ),
        hop(
            "pong_b_to_a",
            "VMM B takes the pong -> switch -> VMM A delivers it",
            spans(&b.tx_pong, &a.rx_pong, at),
        ),
        host_rtt,
    ]
}

/// `vswitch pktgen --mode ping` pings guest B (`b` its VMM); `rtt_p50_us`
/// what pktgen measured. pktgen stamps its pings with CLOCK_MONOTONIC.
pub fn pktgen_to_vm(b: &Trace, rtt_p50_us: f64) -> Vec<Hop> {
    let to_b = hop(
        "ping_to_b",
        "pktgen sends the ping -> switch -> VMM B delivers it",
        spans(&b.rx_ping, &b.rx_ping, |(_, stamp)| stamp),
    );
    let guest = hop(
        "guest_b",
        "VMM B delivers the ping -> guest B answers -> VMM B takes the pong",
        spans(&b.rx_ping, &b.tx_pong, |(ns, _)| ns),
    );
    let back = Hop {
        key: "pong_to_pktgen",
        what: "VMM B takes the pong -> switch -> pktgen sees it (RTT p50 - the others' p50)",
        p50_us: rtt_p50_us - to_b.p50_us - guest.p50_us,
        p99_us: f64::NAN,
        samples: 0,
    };
    vec![to_b, guest, back]
}

/// One line: `label: a 1.2 + b 3.4 + ... us (p50)`.
pub fn summary(label: &str, hops: &[Hop]) -> String {
    let parts: Vec<String> = hops
        .iter()
        .map(|h| format!("{} {:.1}", h.key, h.p50_us))
        .collect();
    format!("{label}: p50 per hop (us): {}", parts.join(", "))
}

/// The hops as JSON extras: `hop_<key>_p50_us` (and `_p99_us` if measured).
pub fn extras(hops: &[Hop]) -> Map<String, Value> {
    let mut map = Map::new();
    for h in hops {
        map.insert(format!("hop_{}_p50_us", h.key), Value::from(h.p50_us));
        if h.samples > 0 {
            map.insert(format!("hop_{}_p99_us", h.key), Value::from(h.p99_us));
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hops_join_by_sequence_number() {
        let warm = WARMUP_SEQ_BASE;
        // Two round trips (seq 0 and 1) and a warm-up one, in ns.
        let a = json!({"latency": {
            "tx_ping": [[0, 1000, 5], [1, 10_000, 6], [warm, 0, 0]],
            "rx_pong": [[0, 9000, 5], [1, 20_000, 6], [warm, 100_000_000, 0]],
            "rx_ping": [], "tx_pong": []}});
        let b = json!({"latency": {
            "rx_ping": [[0, 3000, 5], [1, 12_000, 6]],
            "tx_pong": [[0, 5000, 5], [1, 15_000, 6]],
            "tx_ping": [], "rx_pong": []}});
        let a = Trace::from_stats(&a).unwrap();
        let b = Trace::from_stats(&b).unwrap();
        assert_eq!(a.first_tx_ping_ns(), Some(0));
        let hops = vm_to_vm(&a, &b, 12.0);
        let p50 = |key| hops.iter().find(|h| h.key == key).unwrap().p50_us;
        // Round trips of 8 and 10 us at VMM A: p50 (upper median) 10.
        assert_eq!(p50("vmm_a_rtt"), 10.0);
        assert_eq!(p50("guest_a"), 2.0);
        assert_eq!(p50("ping_a_to_b"), 2.0);
        assert_eq!(p50("guest_b"), 3.0);
        assert_eq!(p50("pong_b_to_a"), 5.0);
        assert_eq!(hops[1].samples, 2);
        assert!(Trace::from_stats(&json!({"exits": {}})).is_none());
        let extras = extras(&hops);
        assert!(extras.contains_key("hop_guest_a_p50_us"));
        assert!(!extras.contains_key("hop_guest_a_p99_us"));
        assert!(summary("csb", &hops).starts_with("csb: p50 per hop (us): guest_a 2.0"));
    }

    #[test]
    fn pktgen_pings_are_timed_from_their_stamp() {
        let b = json!({"latency": {
            "rx_ping": [[0, 3000, 1000]],
            "tx_pong": [[0, 7000, 1000]],
            "tx_ping": [], "rx_pong": []}});
        let b = Trace::from_stats(&b).unwrap();
        let hops = pktgen_to_vm(&b, 10.0);
        assert_eq!(hops[0].p50_us, 2.0);
        assert_eq!(hops[1].p50_us, 4.0);
        assert_eq!(hops[2].p50_us, 4.0);
    }
}
