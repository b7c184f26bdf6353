//! The real guest image (vmm/guest, built by `cargo xtask build-guest` into
//! target/guest/guest.elf, or the path in E2E_GUEST_IMAGE or VMM_GUEST_IMAGE) booted by the vmm
//! binary with the test backends: it must find the e1000, run its workload
//! and exit 0, and the VMM's counters must agree with the guest's report.
//! Skipped (with a message) when the image has not been built; under
//! `CI=true` that fails instead.

mod common;

use std::time::Duration;

use common::*;

const TIMEOUT: Duration = Duration::from_secs(120);

/// Runs the guest and returns (serial text, result JSON, stats JSON).
fn run_guest(
    net: &str,
    extra: &[&str],
    guest_args: &[&str],
) -> (String, serde_json::Value, serde_json::Value) {
    let image = guest_image().expect("checked by the caller");
    let dir = scratch("guest");
    let serial = dir.path().join("serial.txt");
    let stats = dir.path().join("stats.json");
    let mut args = vec![
        "--kernel",
        &image,
        "--net",
        net,
        "--serial",
        serial.to_str().unwrap(),
        "--stats-json",
        stats.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args.push("--");
    args.extend_from_slice(guest_args);
    let out = run_vmm(&args, TIMEOUT);
    let text = std::fs::read_to_string(&serial).unwrap_or_default();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "serial:\n{text}\nstderr:\n{stderr}"
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("{\"result\":"))
        .unwrap_or_else(|| panic!("no result line in:\n{text}"));
    let result: serde_json::Value = serde_json::from_str(line).unwrap();
    let stats: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    (text, result, stats)
}

#[test]
fn tx_to_the_sink_in_every_mode() {
    if guest_image().is_none() {
        return;
    }
    for mitigation in ["on", "off"] {
        for txmode in ["plain", "combine"] {
            let option = format!("mitigation={mitigation}");
            let txmode_arg = format!("txmode={txmode}");
            let (serial, result, stats) = run_guest(
                "sink",
                &["--e1000", &option],
                &["tx", "count=2000", "size=60", &txmode_arg],
            );
            assert!(serial.contains("e1000 at 00:03.0"), "{serial}");
            assert_eq!(result["result"], "tx");
            assert_eq!(result["frames"], 2000, "{result}");
            assert_eq!(stats["tx"]["packets"], 2000, "{mitigation} {txmode}");
            assert_eq!(stats["tx"]["bytes"], 2000 * 60);
            assert_eq!(stats["exit_code"], 0);
            let tdt = stats["exits"]["mmio"]["e1000.TDT"].as_u64().unwrap();
            let guest_tdt = result["tdt_writes"].as_u64().unwrap();
            // One exit per TDT write; the driver's reset also writes TDT once.
            assert!(
                (guest_tdt..=guest_tdt + 2).contains(&tdt),
                "{tdt} exits, {guest_tdt} writes"
            );
            eprintln!(
                "mitigation={mitigation} txmode={txmode}: {} pps, {} exits, {} irqs",
                result["pps"], stats["exits"]["total"], stats["interrupts"]["injected"]
            );
        }
    }
}

#[test]
fn ping_against_the_pong_backend() {
    if guest_image().is_none() {
        return;
    }
    let (_, result, stats) = run_guest("pong", &[], &["ping", "count=100"]);
    assert_eq!(result["result"], "ping");
    assert_eq!(result["lost"], 0, "{result}");
    // The guest may send warm-up pings before the measured ones.
    let warmup = result["warmup_pings"].as_u64().unwrap_or(0);
    assert_eq!(stats["rx"]["packets"], 100 + warmup);
    eprintln!("ping via pong backend: rtt {}", result["rtt_us"]);
}

#[test]
fn traced_pings_carry_their_timestamps_in_the_stats() {
    if guest_image().is_none() {
        return;
    }
    let (_, result, stats) = run_guest("pong", &["--e1000", "trace=500"], &["ping", "count=50"]);
    assert_eq!(result["lost"], 0, "{result}");
    let warmup = result["warmup_pings"].as_u64().unwrap_or(0);
    let latency = &stats["latency"];
    assert_eq!(latency["clock"], "monotonic_ns", "{latency}");
    assert_eq!(latency["dropped"], 0);
    let list = |key: &str| latency[key].as_array().cloned().unwrap_or_default();
    let (pings, pongs) = (list("tx_ping"), list("rx_pong"));
    assert_eq!(pings.len() as u64, 50 + warmup, "{latency}");
    assert_eq!(pongs.len(), pings.len(), "{latency}");
    assert!(list("rx_ping").is_empty() && list("tx_pong").is_empty());
    // Every pong comes back after its ping left, on the same clock.
    for ping in &pings {
        let pong = pongs
            .iter()
            .find(|p| p[0] == ping[0])
            .unwrap_or_else(|| panic!("no pong for {ping}"));
        assert!(pong[1].as_u64() >= ping[1].as_u64(), "{ping} {pong}");
        assert_eq!(pong[2], ping[2], "the pong echoes the ping's stamp");
    }
    // The guest's TSC offset puts its stamps on the host's TSC: a ping
    // reaches the VMM after the guest stamped it, and before its pong.
    let offset = latency["guest_tsc_offset"].as_i64().expect("offset read");
    let khz = result["tsc_khz"].as_u64().unwrap() as i128;
    let mut out_ns: Vec<i128> = pings
        .iter()
        .map(|p| {
            let sent = p[2].as_u64().unwrap() as i128 * khz / 1_000_000;
            let taken = p[3].as_u64().unwrap() as i128 + offset as i128;
            (taken - sent) * 1_000_000 / khz
        })
        .collect();
    out_ns.sort_unstable();
    let median_us = out_ns[out_ns.len() / 2] as f64 / 1000.0;
    let max_rtt_us = result["rtt_us"]["max"].as_f64().unwrap();
    assert!(
        (0.0..=max_rtt_us).contains(&median_us),
        "guest -> VMM {median_us} us, RTT max {max_rtt_us} us"
    );
    eprintln!(
        "guest -> VMM p50 {median_us:.1} us, rtt {}",
        result["rtt_us"]
    );
    // Off by default: no samples in the stats.
    let (_, _, plain) = run_guest("pong", &[], &["ping", "count=5"]);
    assert!(plain.get("latency").is_none(), "{plain}");
}
