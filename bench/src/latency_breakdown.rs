//! Where a ping-pong round trip spends its time, hop by hop, from the
//! VMMs' test-frame timestamps (`vmm --e1000 trace=N`, written in their
//! `--stats-json` under `latency`; docs/latency-breakdown.md).
//!
//! Every host-side timestamp is CLOCK_MONOTONIC, shared by all processes
//! on the machine, so hops between VMMs (and from `vswitch pktgen`, which
//! stamps its pings with the same clock) are measured per round trip,
//! joined by sequence number. The pinging guest stamps its pings with its
//! TSC (in ns at the `tsc_khz=` the benchmark gave it); with the guest's
//! TSC offset its VMM read from KVM (guest TSC = host TSC + offset) and
//! the host TSC at each crossing, the ping's way from guest A to VMM A is
//! measured per round trip too. The pong's way back into guest A is not
//! stamped anywhere: it is the guest's RTT p50 minus the other hops' p50s,
//! a difference of medians, and says so.

use std::collections::HashMap;

use serde_json::{Map, Value};

/// Sequence numbers from here are the guest's warm-up pings (not counted).
const WARMUP_SEQ_BASE: u64 = 1 << 63;

/// One crossing of a VMM's backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Crossing {
    /// CLOCK_MONOTONIC, ns.
    ns: u64,
    /// The timestamp the frame carried (its sender's clock).
    stamp: u64,
    /// The host's TSC.
    tsc: u64,
}

/// One VMM's samples by sequence number.
#[derive(Debug, Default)]
pub struct Trace {
    tx_ping: HashMap<u64, Crossing>,
    rx_ping: HashMap<u64, Crossing>,
    tx_pong: HashMap<u64, Crossing>,
    rx_pong: HashMap<u64, Crossing>,
    /// Guest TSC - host TSC, if the VMM could read it.
    guest_tsc_offset: Option<i64>,
}

impl Trace {
    /// The samples in a VMM's final statistics, `None` without tracing.
    pub fn from_stats(stats: &Value) -> Option<Trace> {
        let latency = stats.get("latency")?.as_object()?;
        let list = |key: &str| -> HashMap<u64, Crossing> {
            latency
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|s| {
                    let crossing = Crossing {
                        ns: s[1].as_u64()?,
                        stamp: s[2].as_u64()?,
                        tsc: s[3].as_u64().unwrap_or(0),
                    };
                    Some((s[0].as_u64()?, crossing))
                })
                .collect()
        };
        Some(Trace {
            tx_ping: list("tx_ping"),
            rx_ping: list("rx_ping"),
            tx_pong: list("tx_pong"),
            rx_pong: list("rx_pong"),
            guest_tsc_offset: latency.get("guest_tsc_offset").and_then(Value::as_i64),
        })
    }

    /// CLOCK_MONOTONIC of the first ping this VMM took from its guest.
    pub fn first_tx_ping_ns(&self) -> Option<u64> {
        self.tx_ping.values().map(|c| c.ns).min()
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
    start: &HashMap<u64, Crossing>,
    end: &HashMap<u64, Crossing>,
    start_of: impl Fn(Crossing) -> u64,
) -> Vec<u64> {
    start
        .iter()
        .filter(|(seq, _)| **seq < WARMUP_SEQ_BASE)
        .filter_map(|(seq, &s)| Some(end.get(seq)?.ns.saturating_sub(start_of(s))))
        .collect()
}

/// Guest A's pings from its stamp (guest TSC in ns at `tsc_khz`) to VMM A
/// taking them (host TSC + offset), in ns; `None` without the offset.
fn guest_to_vmm(a: &Trace, tsc_khz: u64) -> Option<Vec<u64>> {
    let offset = a.guest_tsc_offset?;
    if tsc_khz == 0 {
        return None;
    }
    Some(
        a.tx_ping
            .iter()
            .filter(|(seq, c)| **seq < WARMUP_SEQ_BASE && c.tsc > 0)
            .map(|(_, c)| {
                let sent = (c.stamp as u128 * tsc_khz as u128 / 1_000_000) as i128;
                let taken = c.tsc as i128 + offset as i128;
                let ticks = (taken - sent).max(0) as u128;
                (ticks * 1_000_000 / tsc_khz as u128) as u64
            })
            .collect(),
    )
}

/// Guest A pings guest B: `a` is the pinging VM's VMM, `b` the answering
/// one's; `rtt_p50_us` what guest A measured; `tsc_khz` the frequency
/// guest A was told (its stamps are TSC ticks converted with it).
pub fn vm_to_vm(a: &Trace, b: &Trace, rtt_p50_us: f64, tsc_khz: u64) -> Vec<Hop> {
    let at = |c: Crossing| c.ns;
    let host_rtt = hop(
        "vmm_a_rtt",
        "VMM A takes the ping .. VMM A delivers the pong",
        spans(&a.tx_ping, &a.rx_pong, at),
    );
    let both_ways = rtt_p50_us - host_rtt.p50_us;
    // The ping's way out, if the offset gives a plausible one.
    let send = guest_to_vmm(a, tsc_khz)
        .map(|spans| {
            hop(
                "guest_a_send",
                "guest A stamps the ping -> VMM A takes it (guest TSC + offset)",
                spans,
            )
        })
        .filter(|h| h.samples > 0 && h.p50_us >= 0.0 && h.p50_us <= both_ways.max(0.0));
    let mut hops = vec![send.clone().unwrap_or(Hop {
        key: "guest_a",
        what: "guest A -> VMM A + VMM A -> guest A (RTT p50 - VMM A's p50)",
        p50_us: both_ways,
        p99_us: f64::NAN,
        samples: 0,
    })];
    hops.extend([
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
    ]);
    if let Some(send) = &send {
        hops.push(Hop {
            key: "guest_a_return",
            what: "VMM A delivers the pong -> guest A sees it (RTT p50 - VMM A's p50 - guest_a_send p50)",
            p50_us: both_ways - send.p50_us,
            p99_us: f64::NAN,
            samples: 0,
        });
    }
    hops.push(host_rtt);
    hops
}

/// `vswitch pktgen --mode ping` pings guest B (`b` its VMM); `rtt_p50_us`
/// what pktgen measured. pktgen stamps its pings with CLOCK_MONOTONIC.
pub fn pktgen_to_vm(b: &Trace, rtt_p50_us: f64) -> Vec<Hop> {
    let to_b = hop(
        "ping_to_b",
        "pktgen sends the ping -> switch -> VMM B delivers it",
        spans(&b.rx_ping, &b.rx_ping, |c| c.stamp),
    );
    let guest = hop(
        "guest_b",
        "VMM B delivers the ping -> guest B answers -> VMM B takes the pong",
        spans(&b.rx_ping, &b.tx_pong, |c| c.ns),
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
        let hops = vm_to_vm(&a, &b, 12.0, 1_000_000);
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
    fn the_guest_tsc_offset_times_the_way_out_of_the_guest() {
        // 1 GHz: ticks are ns. Guest TSC = host TSC + 500. Guest A stamps
        // its ping at guest 1500 (host 1000); VMM A takes it at host 4000.
        let a = json!({"latency": {"guest_tsc_offset": 500,
            "tx_ping": [[0, 4000, 1500, 4000]],
            "rx_pong": [[0, 14_000, 1500, 14_000]],
            "rx_ping": [], "tx_pong": []}});
        let b = json!({"latency": {
            "rx_ping": [[0, 6000, 1500, 6000]],
            "tx_pong": [[0, 9000, 1500, 9000]],
            "tx_ping": [], "rx_pong": []}});
        let a = Trace::from_stats(&a).unwrap();
        let b = Trace::from_stats(&b).unwrap();
        let hops = vm_to_vm(&a, &b, 20.0, 1_000_000);
        let keys: Vec<&str> = hops.iter().map(|h| h.key).collect();
        assert_eq!(
            keys,
            [
                "guest_a_send",
                "ping_a_to_b",
                "guest_b",
                "pong_b_to_a",
                "guest_a_return",
                "vmm_a_rtt"
            ]
        );
        // Out: host 1000 -> 4000: 3 us; back: 20 - 10 (VMM A's) - 3.
        assert_eq!(hops[0].p50_us, 3.0);
        assert_eq!(hops[4].p50_us, 7.0);
        // An implausible offset falls back to both ways together.
        let mut a = a;
        a.guest_tsc_offset = Some(i64::MAX / 2);
        assert_eq!(vm_to_vm(&a, &b, 20.0, 1_000_000)[0].key, "guest_a");
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
