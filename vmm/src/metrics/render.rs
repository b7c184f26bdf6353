//! The VMM's counters in the Prometheus text format, rendered from the same
//! JSON document `--stats-json` writes ([`crate::stats::Stats::to_json`]),
//! so the two agree and a counter added to a stats struct appears in both.
//!
//! Names: `vmm_` prefix. Exits carry labels (`vmm_exits_pio_total{port}`,
//! `vmm_exits_mmio_total{register}`, `vmm_exits_other_total{reason}`),
//! the e1000 model's error counters are `vmm_e1000_errors_total{kind}`, and
//! every other section's counter is `vmm_<section>_<counter>_total` (e.g.
//! `vmm_tx_packets_total`, `vmm_kicks_to_switch_total`; the sections are
//! listed in [`COUNTER_SECTIONS`]). docs/observability.md
//! lists them.

use metrics_text::writer::{sanitize_name, Kind, Writer};
use serde_json::{Map, Value};

/// The sections of the stats JSON whose every field is a counter, rendered
/// as `vmm_<section>_<field>_total`. A new section must be added here (or
/// to [`OTHER_KEYS`]): the tests check that none is forgotten.
pub const COUNTER_SECTIONS: [&str; 9] = [
    "interrupts",
    "kicks",
    "tx",
    "rx",
    "guest_errors",
    "io_thread",
    "csb_worker",
    "link",
    "offload",
];

/// The other top-level keys of the stats JSON: rendered with labels
/// (`exits`, `e1000`), as a gauge (`seconds`), or not at all (`exit_code`,
/// which only the final document has).
pub const OTHER_KEYS: [&str; 4] = ["seconds", "exit_code", "exits", "e1000"];

/// Renders the stats document `doc` in the text format.
pub fn render(doc: &Value) -> String {
    let mut w = Writer::new();
    if let Some(seconds) = doc["seconds"].as_f64() {
        w.single(
            "vmm_uptime_seconds",
            Kind::Gauge,
            "Seconds since the VM was built.",
            seconds,
        );
    }
    let exits = &doc["exits"];
    if let Some(total) = exits["total"].as_u64() {
        w.single(
            "vmm_exits_total",
            Kind::Counter,
            "VM exits from KVM_RUN.",
            total,
        );
    }
    for (key, metric, label, help) in [
        (
            "pio",
            "vmm_exits_pio_total",
            "port",
            "Port I/O exits by port.",
        ),
        (
            "mmio",
            "vmm_exits_mmio_total",
            "register",
            "MMIO exits by target (e1000 register name, or unassigned).",
        ),
        (
            "other",
            "vmm_exits_other_total",
            "reason",
            "Other exits by reason (idle, hlt, intr, ...).",
        ),
    ] {
        labelled(&mut w, metric, label, help, exits[key].as_object());
    }
    labelled(
        &mut w,
        "vmm_e1000_errors_total",
        "kind",
        "Guest errors and refused operations the e1000 model counted.",
        doc["e1000"]["errors"].as_object(),
    );
    for section in COUNTER_SECTIONS {
        let Some(counters) = doc[section].as_object() else {
            continue;
        };
        for (name, value) in counters {
            let Some(n) = value.as_u64() else { continue };
            let metric = format!(
                "vmm_{}_{}_total",
                sanitize_name(section),
                sanitize_name(name)
            );
            let help = format!("The {section}.{name} counter of the stats JSON.");
            w.single(&metric, Kind::Counter, &help, n);
        }
    }
    w.finish()
}

/// A family with one sample per entry of `map` (entry name as `label`).
fn labelled(
    w: &mut Writer,
    metric: &str,
    label: &str,
    help: &str,
    map: Option<&Map<String, Value>>,
) {
    let mut family = w.family(metric, Kind::Counter, help);
    for (name, value) in map.into_iter().flatten() {
        if let Some(n) = value.as_u64() {
            family.sample(&[(label, name)], n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Stats;
    use serde_json::json;

    #[test]
    fn every_counter_of_the_json_is_a_metric() {
        let stats = Stats::new();
        stats.with_exits(|e| {
            e.total += 3;
            *e.pio.entry(0x3f8).or_default() += 2;
            *e.mmio.entry("e1000.TDT").or_default() += 1;
        });
        stats.tx.packets.add(5);
        stats.kicks.to_switch.add(4);
        let doc = stats.to_json(None, json!({"e1000": {"errors": {"mdic_invalid": 1}}}));
        let text = render(&doc);
        for line in [
            "vmm_exits_total 3",
            "vmm_exits_pio_total{port=\"0x3f8\"} 2",
            "vmm_exits_mmio_total{register=\"e1000.TDT\"} 1",
            "vmm_e1000_errors_total{kind=\"mdic_invalid\"} 1",
            "vmm_tx_packets_total 5",
            "vmm_kicks_to_switch_total 4",
            "vmm_csb_worker_polls_total 0",
            "vmm_link_down_total 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        assert!(text.contains("# TYPE vmm_uptime_seconds gauge"));
        assert!(!text.contains("exit_code"), "{text}");
        let doc = stats.to_json(Some(0), json!({"e1000": {"errors": {}}}));
        for key in doc.as_object().unwrap().keys() {
            assert!(
                COUNTER_SECTIONS.contains(&key.as_str()) || OTHER_KEYS.contains(&key.as_str()),
                "the stats JSON's {key:?} is not rendered: add it to COUNTER_SECTIONS or OTHER_KEYS"
            );
        }
    }
}
