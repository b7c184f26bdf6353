//! Offloaded VM ports (`--e1000 offload=on`): once the guest runs its e1000
//! in CSB mode, the VMM hands the data path to the switch daemon, whose
//! forwarding thread walks the guest's rings itself. Frames cross between
//! offloaded guests, pktgen and guests, nothing lost or repeated beyond
//! what the switch counts; the data path survives a hostile guest (which
//! remaps and scribbles its CSB, forcing hand-backs), a daemon restart and
//! a killed VMM.

use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use e2e_tests::{field, live_stats, pktgen_summary, Daemon, Vm, VmToVm};
use serde_json::Value;
use testbed::wait_until;

/// The VMM options of an offloaded VM.
const OFFLOAD: [&str; 4] = ["--e1000", "mitigation=off", "--e1000", "offload=on"];

/// The VMM's offload counters (final or live statistics).
fn offload(stats: &Value, key: &str) -> u64 {
    stats["offload"][key].as_u64().unwrap_or(0)
}

/// The VMM's live statistics, or null until the file is written.
fn stats_now(dir: &Path, label: &str) -> Value {
    live_stats(dir, label).unwrap_or_default()
}

#[test]
fn offloaded_guests_exchange_100000_frames_with_none_lost() -> Result<()> {
    let VmToVm {
        sent,
        got,
        tx_stats,
        rx_stats,
    } = e2e_tests::vm_to_vm(
        "offload",
        0x07,
        100_000,
        &OFFLOAD,
        "txmode=csb burst=64 rate=50000",
        "txmode=csb",
    )?;
    // Both VMMs handed their data path over and took it back at their
    // end, counting what the daemon moved meanwhile from the guest's
    // statistics registers.
    for stats in [&tx_stats, &rx_stats] {
        assert!(offload(stats, "handovers") >= 1, "{stats}");
        assert!(offload(stats, "reclaims") >= 1, "{stats}");
    }
    assert_eq!(tx_stats["tx"]["packets"], 100_000, "{tx_stats}");
    assert_eq!(rx_stats["rx"]["packets"], 100_000, "{rx_stats}");
    eprintln!(
        "offload: sender {} pps, receiver {} pps",
        sent["pps"], got["pps"]
    );
    Ok(())
}

#[test]
fn pktgen_to_an_offloaded_guest_accounts_for_every_frame() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let mut vm = Vm::start(
        &daemon,
        "vm-rx",
        "vale0:vm1",
        "52:54:00:00:07:11",
        &OFFLOAD,
        "rx count=50000 size=60 txmode=csb",
    )?;
    vm.wait_for_serial("guest: rx", Duration::from_secs(30))?;
    let dir = daemon.dir().to_owned();
    wait_until(Duration::from_secs(30), Duration::from_millis(50), || {
        offload(&stats_now(&dir, "vm-rx"), "handovers") >= 1
    })
    .context("the receiving VMM did not hand its data path over")?;
    let mut tx = daemon.pktgen_tx(
        "vale0:gen",
        &[
            "--count",
            "50000",
            "--rate",
            "20000",
            "--dst-mac",
            "52:54:00:00:07:11",
        ],
    )?;
    let tx_sum = pktgen_summary(&mut tx, Duration::from_secs(60))?;
    let vm_port = daemon.settled_counters("vale0:vm1", 50_000)?;
    let (result, _stats) = vm.finish(Duration::from_secs(60))?;
    assert_eq!(field(&tx_sum, "packets"), 50_000);
    assert_eq!(field(&result, "corrupt"), 0, "{result}");
    assert_eq!(field(&result, "duplicates"), 0, "{result}");
    assert_eq!(
        field(&result, "unique") + vm_port.drops(),
        50_000,
        "every frame reached the guest or was dropped and counted by the switch: {result} {vm_port:?}"
    );
    Ok(())
}

#[test]
fn offloaded_ping_pong_survives_a_hostile_guest_a_daemon_restart_and_a_killed_vmm() -> Result<()> {
    let mut daemon = Daemon::start(&[])?;
    let dir = daemon.dir().to_owned();
    let mut pong = Vm::start(
        &daemon,
        "vm-pong",
        "vale0:pong",
        "52:54:00:00:07:21",
        &OFFLOAD,
        "pong txmode=csb idle=8",
    )?;
    pong.wait_for_serial("guest: pong", Duration::from_secs(30))?;
    let mut ping = Vm::start(
        &daemon,
        "vm-ping",
        "vale0:ping",
        "52:54:00:00:07:22",
        &OFFLOAD,
        "ping count=6000 rate=400 dst=52:54:00:00:07:21 txmode=csb",
    )?;
    // A hostile guest on the same switch, offloaded too: it remaps and
    // scribbles its CSB, so its VMM takes the data path back and hands it
    // over again, and must not disturb the others.
    let mut chaos = Vm::start(
        &daemon,
        "vm-chaos",
        "vale0:chaos",
        "52:54:00:00:07:23",
        &OFFLOAD,
        "chaos",
    )?;
    wait_until(Duration::from_secs(30), Duration::from_millis(50), || {
        offload(&stats_now(&dir, "vm-ping"), "handovers") >= 1
            && offload(&stats_now(&dir, "vm-pong"), "handovers") >= 1
    })
    .context("the ping and pong VMMs did not hand their data paths over")?;
    let (chaos_result, chaos_stats) = chaos.finish(Duration::from_secs(120))?;
    eprintln!("chaos: {chaos_result}; offload {}", chaos_stats["offload"]);

    // The daemon dies under offloaded traffic: the VMMs take their data
    // paths back from the CSB, set their links down, re-open their ports
    // on a new daemon and hand over again.
    // (An offloaded VMM's own packet counters miss what the daemon moves:
    // progress is read from the switch's port counters.)
    let before = daemon.counters("vale0:ping")?.tx_packets;
    ensure!(before > 0, "no pong reached the ping VM before the restart");
    daemon.proc_mut().kill(libc::SIGKILL)?;
    ensure!(
        daemon
            .proc_mut()
            .wait_timeout(Duration::from_secs(10))?
            .is_some(),
        "the daemon survived SIGKILL"
    );
    for label in ["vm-ping", "vm-pong"] {
        wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            stats_now(&dir, label)["link"]["down"].as_u64() >= Some(1)
        })
        .with_context(|| format!("{label} did not set its link down"))?;
    }
    let restarted = Daemon::wrap(
        testbed::Daemon::builder()
            .dir(&dir)
            .env("RUST_LOG", "info")
            .start()?,
    );
    // The new daemon counts from 0.
    let pongs = |d: &Daemon| d.counters("vale0:ping").map_or(0, |c| c.tx_packets);
    wait_until(Duration::from_secs(30), Duration::from_millis(50), || {
        let ping = stats_now(&dir, "vm-ping");
        ping["link"]["up"].as_u64() >= Some(1)
            && offload(&ping, "handovers") >= 2
            && pongs(&restarted) >= 20
    })
    .with_context(|| {
        format!(
            "the offloaded ping-pong did not resume; ping VMM {}\ndaemon log:\n{}",
            stats_now(&dir, "vm-ping"),
            restarted.log()
        )
    })?;

    // A third offloaded VM floods a pktgen sink; its VMM is killed
    // mid-flood. The daemon drops its port (and stops touching its memory)
    // and keeps serving the ping-pong.
    let e2e = restarted;
    // The sink's port is locked to the flood's destination, so the switch
    // knows where it is and floods nothing to the ping-pong.
    let created = e2e.cli(&["create", "vale0:sink", "--mac", "52:54:00:00:07:99"])?;
    ensure!(created.status.success(), "create vale0:sink: {created:?}");
    let mut sink = e2e.pktgen_rx("vale0:sink", &["--idle-timeout", "30"])?;
    let mut flood = Vm::start(
        &e2e,
        "vm-flood",
        "vale0:flood",
        "52:54:00:00:07:24",
        &OFFLOAD,
        "tx count=100000000 txmode=csb burst=64 rate=100000 dst=52:54:00:00:07:99",
    )?;
    wait_until(Duration::from_secs(30), Duration::from_millis(50), || {
        offload(&stats_now(&dir, "vm-flood"), "handovers") >= 1
            && e2e
                .counters("vale0:flood")
                .is_ok_and(|c| c.rx_packets >= 10_000)
    })
    .context("the flooding VM did not get going offloaded")?;
    flood.vm.proc_mut().kill(libc::SIGKILL)?;
    e2e.wait_port("vale0:flood", false)?;
    let answered = pongs(&e2e);
    wait_until(Duration::from_secs(30), Duration::from_millis(50), || {
        pongs(&e2e) >= answered + 20
    })
    .context("the ping-pong stopped after the flooding VMM was killed")?;
    sink.kill(libc::SIGTERM)?;

    let (result, stats) = ping.finish(Duration::from_secs(120))?;
    let (_, pong_stats) = pong.finish(Duration::from_secs(30))?;
    for stats in [&stats, &pong_stats] {
        assert!(offload(stats, "handovers") >= 2, "{stats}");
        assert_eq!(stats["link"]["down"], 1, "{stats}");
    }
    assert!(field(&result, "frames") > before, "{result}");
    eprintln!("ping: {result}; offload {}", stats["offload"]);
    Ok(())
}
