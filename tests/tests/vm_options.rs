//! `vmm` options with a real guest on a real daemon: `--irq level` (the
//! e1000's INTx as a level-triggered line) and `--e1000 csb=off` (the
//! device does not offer the CSB extension).

use std::time::Duration;

use anyhow::Result;
use e2e_tests::{Daemon, Vm};

const FRAMES: u64 = 50_000;

/// Guest tx -> guest rx of [`FRAMES`], both VMs with `vmm_args`; every
/// frame arrives. Returns both VMs' final statistics.
fn vm_to_vm(
    name: &str,
    vmm_args: &[&str],
    sender: &str,
    receiver: &str,
) -> Result<(serde_json::Value, serde_json::Value)> {
    let run = e2e_tests::vm_to_vm(name, 0x06, FRAMES, vmm_args, sender, receiver)?;
    Ok((run.tx_stats, run.rx_stats))
}

/// Checks that both VMs took interrupts.
fn interrupts_delivered(tx_stats: &serde_json::Value, rx_stats: &serde_json::Value) {
    for (side, stats) in [("tx", tx_stats), ("rx", rx_stats)] {
        let injected = stats["interrupts"]["injected"].as_u64().unwrap_or(0);
        assert!(injected > 0, "{side}: no interrupts: {stats}");
    }
}

/// `--irq level` with the plain driver and interrupt moderation: all frames
/// move, with interrupts delivered through the level-triggered line.
#[test]
fn irq_level_with_the_plain_driver() -> Result<()> {
    let (tx_stats, rx_stats) = vm_to_vm(
        "irq-level",
        &["--irq", "level", "--e1000", "mitigation=on"],
        "txmode=plain rate=5000",
        "txmode=plain",
    )?;
    interrupts_delivered(&tx_stats, &rx_stats);
    Ok(())
}

/// `--irq level` without moderation, an interrupt per frame at 20 kpps. On
/// a nested-KVM host, where the line is asserted again at each delivery
/// until the guest reads ICR, interrupts arrive while the handler runs;
/// they used to nest without bound and triple-fault the guest (vmm exit
/// 125) after a few thousand frames.
#[test]
fn irq_level_without_moderation_under_an_interrupt_storm() -> Result<()> {
    let (tx_stats, rx_stats) = vm_to_vm(
        "irq-level-storm",
        &["--irq", "level", "--e1000", "mitigation=off"],
        "txmode=plain rate=20000",
        "txmode=plain",
    )?;
    interrupts_delivered(&tx_stats, &rx_stats);
    Ok(())
}

/// `--e1000 csb=off`: a guest sending with combining works as with any
/// e1000, and the CSB machinery never ran; a guest that insists on the CSB
/// stops with a set-up error instead of hanging.
#[test]
fn csb_off_with_a_real_guest() -> Result<()> {
    let (tx_stats, _) = vm_to_vm(
        "csb-off",
        &["--e1000", "csb=off"],
        "txmode=combine rate=50000",
        "txmode=plain",
    )?;
    let worker = &tx_stats["csb_worker"];
    assert_eq!(worker["polls"].as_u64(), Some(0), "{tx_stats}");
    let daemon = Daemon::start(&[])?;
    let mut vm = Vm::start(
        &daemon,
        "csb-insist",
        "vale0:tx",
        "52:54:00:00:06:03",
        &["--e1000", "csb=off"],
        "tx count=10 txmode=csb",
    )?;
    let outcome = vm.vm.finish(Duration::from_secs(60))?;
    // Exit code 2 (the guest's set-up error), the reason in its result line.
    assert_eq!(outcome.code(), Some(2), "{}", outcome.report());
    assert!(
        outcome
            .result_line()
            .is_some_and(|l| l.contains("txmode=csb needs the e1000 CSB extension")),
        "the guest did not say why: {}",
        outcome.report()
    );
    Ok(())
}
