//! VMs running the guest image on a switch: guest to pktgen, pktgen to
//! guest, VM to VM ping-pong.

use std::time::Duration;

use anyhow::Result;
use e2e_tests::{field, pktgen_summary, Daemon, Vm};

#[test]
fn a_guest_sends_100000_frames_to_pktgen_all_intact_in_order() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    // A large ring so that a receiver descheduled for a while drops nothing:
    // 16,384 slots are 33 ms of the guest's paced 500,000 frames a second.
    // Unpaced (5.5 Mpps, 3 ms of slots) a receiver preempted on a loaded
    // 2-core machine lost frames about once in ten runs, before and after
    // the port layout change; the switch drops when a ring is full.
    let mut rx = daemon.pktgen_rx(
        "vale0:rx",
        &[
            "--count",
            "100000",
            "--ring-size",
            "16384",
            "--idle-timeout",
            "10",
        ],
    )?;
    let mut vm = Vm::start(
        &daemon,
        "vm-tx",
        "vale0:vm1",
        "52:54:00:00:01:01",
        &[],
        "tx count=100000 txmode=combine size=60 rate=500000",
    )?;
    let (result, stats) = vm.finish(Duration::from_secs(120))?;
    let rx_sum = pktgen_summary(&mut rx, Duration::from_secs(30))?;
    assert_eq!(field(&result, "frames"), 100_000, "{result}");
    assert_eq!(field(&rx_sum, "packets"), 100_000, "{rx_sum}");
    assert_eq!(field(&rx_sum, "lost"), 0, "{rx_sum}");
    assert_eq!(field(&rx_sum, "reordered"), 0, "{rx_sum}");
    assert_eq!(field(&rx_sum, "corrupt"), 0, "{rx_sum}");
    assert_eq!(field(&rx_sum, "duplicates"), 0, "{rx_sum}");
    assert_eq!(stats["tx"]["packets"], 100_000, "{stats}");
    eprintln!("guest tx: {result}");
    Ok(())
}

#[test]
fn pktgen_sends_to_a_guest_and_every_frame_is_accounted_for() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let mut vm = Vm::start(
        &daemon,
        "vm-rx",
        "vale0:vm1",
        "52:54:00:00:01:02",
        &[],
        "rx count=50000 size=60",
    )?;
    vm.wait_for_serial("guest: rx", Duration::from_secs(30))?;
    let mut tx = daemon.pktgen_tx(
        "vale0:gen",
        &[
            "--count",
            "50000",
            "--rate",
            "20000",
            "--dst-mac",
            "52:54:00:00:01:02",
        ],
    )?;
    let tx_sum = pktgen_summary(&mut tx, Duration::from_secs(60))?;
    let vm_port = daemon.settled_counters("vale0:vm1", 50_000)?;
    let (result, stats) = vm.finish(Duration::from_secs(60))?;
    assert_eq!(field(&tx_sum, "packets"), 50_000);
    let received = field(&result, "unique");
    let switch_drops = vm_port.drops();
    let vmm_drops = stats["rx"]["dropped"].as_u64().unwrap_or(0);
    assert_eq!(field(&result, "corrupt"), 0, "{result}");
    assert_eq!(field(&result, "duplicates"), 0, "{result}");
    // Every frame reached the guest, or was dropped and counted on the way.
    assert_eq!(
        received + switch_drops + vmm_drops,
        50_000,
        "guest {result}\nswitch port {vm_port:?}\nvmm {stats}"
    );
    eprintln!("guest rx: {received} received, {switch_drops} dropped at the switch, {vmm_drops} in the VMM");
    Ok(())
}

#[test]
fn two_vms_ping_pong_10000_times() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let mut pong = Vm::start_pong(&daemon, "52:54:00:00:02:01", "pong count=10000")?;
    let mut ping = Vm::start(
        &daemon,
        "vm-ping",
        "vale0:ping",
        "52:54:00:00:02:02",
        &[],
        "ping count=10000 dst=52:54:00:00:02:01",
    )?;
    let (result, stats) = ping.finish(Duration::from_secs(300))?;
    // The pong VM exited cleanly after answering exactly the pings.
    let (pong_result, _) = pong.finish(Duration::from_secs(30))?;
    assert_eq!(field(&pong_result, "frames"), 10000, "{pong_result}");
    // No ping vanished: one whose answer came after its timeout (a loaded
    // 2-core host can stall a VM for longer) counts as lost and as late.
    assert_eq!(
        field(&result, "lost"),
        result["errors"]["late"].as_u64().unwrap_or(0),
        "{result}"
    );
    let rtt = &result["rtt_us"];
    for key in ["min", "p50", "p99", "max"] {
        assert!(
            rtt[key].as_f64().is_some_and(|v| v > 0.0),
            "no {key} in {result}"
        );
    }
    eprintln!(
        "VM-to-VM RTT us: {rtt}; ping VM exits {}",
        stats["exits"]["total"]
    );
    Ok(())
}
