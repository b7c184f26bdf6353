//! The daemon's counters in the Prometheus text format, from the same stats
//! answer `vswitch stats --json` prints (so the two always agree).
//!
//! Names: `vswitch_` prefix, `_total` counters, base units (`_bytes_total`,
//! `_seconds_total`); labels `switch`, `port` (the name inside its switch),
//! `kind` (shm, nic, host), `reason` (drops, refusals). docs/observability.md
//! lists every metric.

use std::collections::BTreeMap;

use metrics_text::writer::{sanitize_name, Kind, Writer};
use switch_port::protocol::{
    AccessCounters, CounterSnapshot, PortKind, PortStats, Response, SwitchStats, ThreadStats,
};

/// What one scrape shows: the fields of a stats answer.
#[derive(Clone, Debug, Default)]
pub struct Scrape {
    /// Seconds since the daemon started.
    pub uptime_secs: f64,
    /// Every port's counters.
    pub ports: Vec<PortStats>,
    /// Control-socket refusals.
    pub access: AccessCounters,
    /// Every switch's forwarding-table counters.
    pub switches: Vec<SwitchStats>,
    /// Every forwarding thread's counters.
    pub threads: Vec<ThreadStats>,
}

impl Scrape {
    /// The scrape in a stats answer (`None` for another answer).
    pub fn from_response(response: Response) -> Option<Scrape> {
        match response {
            Response::Stats {
                uptime_secs,
                ports,
                access,
                switches,
                threads,
            } => Some(Scrape {
                uptime_secs,
                ports,
                access,
                switches,
                threads,
            }),
            _ => None,
        }
    }
}

/// The lower-case name of a port kind (the `kind` label).
pub fn kind_name(kind: PortKind) -> &'static str {
    match kind {
        PortKind::Shm => "shm",
        PortKind::Nic => "nic",
        PortKind::Host => "host",
        PortKind::Tunnel => "tunnel",
    }
}

/// The drop reasons of a port's counters: (`reason` label, count).
pub fn drop_reasons(c: &CounterSnapshot) -> [(&'static str, u64); 11] {
    [
        ("runt", c.drop_runt),
        ("bad_slot", c.drop_bad_slot),
        ("too_long", c.drop_too_long),
        ("ring_full", c.drop_ring_full),
        ("same_port", c.drop_same_port),
        ("filtered", c.drop_filtered),
        ("no_destination", c.drop_no_destination),
        ("no_client", c.drop_no_client),
        ("spoofed", c.spoofed),
        ("storm", c.drop_storm),
        ("vlan", c.drop_vlan),
    ]
}

type PortValue = fn(&CounterSnapshot) -> u64;

/// The per-port counters with one sample per port: (name, help, value).
const PORT_COUNTERS: [(&str, &str, PortValue); 8] = [
    (
        "vswitch_port_rx_packets_total",
        "Frames the switch received from the port.",
        |c| c.rx_packets,
    ),
    (
        "vswitch_port_rx_bytes_total",
        "Bytes the switch received from the port.",
        |c| c.rx_bytes,
    ),
    (
        "vswitch_port_tx_packets_total",
        "Frames the switch sent to the port.",
        |c| c.tx_packets,
    ),
    (
        "vswitch_port_tx_bytes_total",
        "Bytes the switch sent to the port.",
        |c| c.tx_bytes,
    ),
    (
        "vswitch_port_kicks_sent_total",
        "Kicks (eventfd writes) sent to the port's client.",
        |c| c.kicks_sent,
    ),
    (
        "vswitch_port_kicks_suppressed_total",
        "Kicks not sent because the port's client was polling.",
        |c| c.kicks_suppressed,
    ),
    (
        "vswitch_port_kicks_stalled_total",
        "Kicks the port's client made block, interrupted by the daemon (it stops kicking that client).",
        |c| c.kicks_stalled,
    ),
    (
        "vswitch_port_bad_indices_total",
        "Ring or buffer indices the port's client wrote out of range.",
        |c| c.bad_index,
    ),
];

type SwitchValue = fn(&SwitchStats) -> u64;

/// The per-switch forwarding-table metrics: (name, kind, help, value).
const SWITCH_METRICS: [(&str, Kind, &str, SwitchValue); 5] = [
    (
        "vswitch_fdb_entries",
        Kind::Gauge,
        "Addresses in the switch's forwarding table.",
        |s| s.fdb.entries,
    ),
    (
        "vswitch_fdb_capacity",
        Kind::Gauge,
        "Addresses the switch's forwarding table holds at most.",
        |s| s.fdb.capacity,
    ),
    (
        "vswitch_fdb_learned_total",
        Kind::Counter,
        "Addresses learned (new forwarding-table entries).",
        |s| s.fdb.learned,
    ),
    (
        "vswitch_fdb_moves_total",
        Kind::Counter,
        "Addresses that moved to another port.",
        |s| s.fdb.moved,
    ),
    (
        "vswitch_fdb_aged_total",
        Kind::Counter,
        "Forwarding-table entries removed by ageing.",
        |s| s.fdb.aged,
    ),
];

type ThreadValue = fn(&ThreadStats) -> u64;

/// The per-thread counters besides busy time: (name, help, value).
const THREAD_COUNTERS: [(&str, &str, ThreadValue); 3] = [
    (
        "vswitch_thread_frames_total",
        "Frames the forwarding thread read from its ports.",
        |t| t.frames,
    ),
    (
        "vswitch_thread_batches_total",
        "Poll rounds of the forwarding thread that moved frames.",
        |t| t.batches,
    ),
    (
        "vswitch_thread_sleeps_total",
        "Times the forwarding thread slept waiting for a kick.",
        |t| t.sleeps,
    ),
];

/// Renders `scrape` in the text format.
pub fn render(scrape: &Scrape) -> String {
    let mut w = Writer::new();
    w.single(
        "vswitch_uptime_seconds",
        Kind::Gauge,
        "Seconds since the daemon started.",
        scrape.uptime_secs,
    );
    let ports: Vec<(String, &str, &str, &PortStats)> = scrape
        .ports
        .iter()
        .map(|p| {
            (
                p.name.switch().to_string(),
                p.name.port(),
                kind_name(p.kind),
                p,
            )
        })
        .collect();
    for (name, help, value) in PORT_COUNTERS {
        let mut f = w.family(name, Kind::Counter, help);
        for (switch, port, kind, p) in &ports {
            f.sample(
                &[("switch", switch), ("port", port), ("kind", kind)],
                value(&p.counters),
            );
        }
    }
    {
        let mut f = w.family(
            "vswitch_port_drops_total",
            Kind::Counter,
            "Frames dropped at the port, by reason (see docs/observability.md).",
        );
        for (switch, port, kind, p) in &ports {
            for (reason, n) in drop_reasons(&p.counters) {
                f.sample(
                    &[
                        ("switch", switch),
                        ("port", port),
                        ("kind", kind),
                        ("reason", reason),
                    ],
                    n,
                );
            }
        }
    }
    render_extra(&mut w, &ports);
    for (name, kind, help, value) in SWITCH_METRICS {
        let mut f = w.family(name, kind, help);
        for s in &scrape.switches {
            f.sample(&[("switch", s.switch.as_str())], value(s));
        }
    }
    {
        let mut f = w.family(
            "vswitch_fdb_refusals_total",
            Kind::Counter,
            "Addresses not learned: the table (or its bucket) was full, or the port had its --max-macs.",
        );
        for s in &scrape.switches {
            let switch = s.switch.as_str();
            f.sample(
                &[("switch", switch), ("reason", "table_full")],
                s.fdb.refused,
            );
            f.sample(
                &[("switch", switch), ("reason", "port_limit")],
                s.fdb.port_limited,
            );
        }
    }
    let threads: Vec<(String, &ThreadStats)> = scrape
        .threads
        .iter()
        .map(|t| (t.thread.to_string(), t))
        .collect();
    {
        let mut f = w.family(
            "vswitch_thread_busy_seconds_total",
            Kind::Counter,
            "Seconds the forwarding thread spent in poll rounds that moved frames.",
        );
        for (index, t) in &threads {
            f.sample(&[("thread", index)], t.busy_ns as f64 / 1e9);
        }
    }
    for (name, help, value) in THREAD_COUNTERS {
        let mut f = w.family(name, Kind::Counter, help);
        for (index, t) in &threads {
            f.sample(&[("thread", index)], value(t));
        }
    }
    let a = &scrape.access;
    w.family(
        "vswitch_control_refusals_total",
        Kind::Counter,
        "Control-socket requests and connections refused, by reason.",
    )
    .sample(&[("reason", "denied")], a.denied)
    .sample(&[("reason", "over_limit")], a.over_limit)
    .sample(&[("reason", "connections_refused")], a.connections_refused)
    .sample(&[("reason", "timed_out")], a.timed_out);
    w.finish()
}

/// The extra counters of NIC, host and tunnel ports (XDP program, AF_XDP
/// sockets, TAP, VXLAN), as `vswitch_<kind>_<name>_total` (the gauges of
/// [`is_gauge`] without `_total`): one family per kind and name, whatever
/// the ports report.
fn render_extra(w: &mut Writer, ports: &[(String, &str, &str, &PortStats)]) {
    type Samples = Vec<(usize, u64)>;
    let mut families: BTreeMap<String, (Kind, Samples)> = BTreeMap::new();
    for (i, (_, _, kind, p)) in ports.iter().enumerate() {
        for (name, value) in &p.extra {
            let (metric_kind, suffix) = if is_gauge(name) {
                (Kind::Gauge, "")
            } else {
                (Kind::Counter, "_total")
            };
            let metric = format!("vswitch_{kind}_{}{suffix}", sanitize_name(name));
            let family = families.entry(metric).or_insert((metric_kind, Vec::new()));
            family.1.push((i, *value));
        }
    }
    for (metric, (kind, samples)) in &families {
        let help = match kind {
            Kind::Gauge => "Port gauge (see docs/observability.md).",
            Kind::Counter => {
                "NIC, host or tunnel port counter, summed over queues (see docs/observability.md)."
            }
        };
        let mut f = w.family(metric, *kind, help);
        for &(i, value) in samples {
            let (switch, port, kind, _) = &ports[i];
            f.sample(&[("switch", switch), ("port", port), ("kind", kind)], value);
        }
    }
}

/// Whether an extra counter is a gauge (a current value, not a count of
/// events): a NIC's queue counts, a tunnel's VNI and its learned VTEP entries.
fn is_gauge(name: &str) -> bool {
    name.ends_with("_queues")
        || name.ends_with("_max_frame")
        || name == "vxlan_vni"
        || name == "vteps_learned"
}

#[cfg(test)]
mod tests {
    use super::*;
    use switch_port::names::{PortName, SwitchName};
    use switch_port::protocol::LookupStats;

    #[test]
    fn every_counter_appears_once_per_port() {
        let counters = CounterSnapshot {
            rx_packets: 10,
            rx_bytes: 600,
            drop_ring_full: 3,
            ..Default::default()
        };
        let scrape = Scrape {
            uptime_secs: 2.5,
            ports: vec![
                PortStats {
                    name: PortName::parse("vale0:a").unwrap(),
                    kind: PortKind::Shm,
                    counters,
                    extra: vec![],
                },
                PortStats {
                    name: PortName::parse("vale1:eth0").unwrap(),
                    kind: PortKind::Nic,
                    counters: CounterSnapshot::default(),
                    extra: vec![("xdp_passed".into(), 7), ("xsk_queues".into(), 2)],
                },
            ],
            access: AccessCounters::default(),
            switches: vec![SwitchStats {
                switch: SwitchName::parse("vale0").unwrap(),
                fdb: LookupStats {
                    entries: 1,
                    learned: 4,
                    refused: 1,
                    ..Default::default()
                },
            }],
            threads: vec![ThreadStats {
                thread: 0,
                busy_ns: 1_500_000_000,
                ..Default::default()
            }],
        };
        let text = render(&scrape);
        for line in [
            "vswitch_uptime_seconds 2.5",
            "vswitch_port_rx_packets_total{switch=\"vale0\",port=\"a\",kind=\"shm\"} 10",
            "vswitch_port_rx_bytes_total{switch=\"vale0\",port=\"a\",kind=\"shm\"} 600",
            "vswitch_port_drops_total{switch=\"vale0\",port=\"a\",kind=\"shm\",reason=\"ring_full\"} 3",
            "vswitch_nic_xdp_passed_total{switch=\"vale1\",port=\"eth0\",kind=\"nic\"} 7",
            "vswitch_nic_xsk_queues{switch=\"vale1\",port=\"eth0\",kind=\"nic\"} 2",
            "vswitch_fdb_learned_total{switch=\"vale0\"} 4",
            "vswitch_fdb_refusals_total{switch=\"vale0\",reason=\"table_full\"} 1",
            "vswitch_thread_busy_seconds_total{thread=\"0\"} 1.5",
            "vswitch_control_refusals_total{reason=\"timed_out\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        let helps = text.lines().filter(|l| l.starts_with("# HELP ")).count();
        assert_eq!(types, helps);
        let mut names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        let all = names.len();
        names.dedup();
        assert_eq!(names.len(), all, "a family twice");
    }
}
