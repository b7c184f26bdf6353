//! Every e1000 configuration of the benchmark moves 100,000 frames from one
//! VM to another with none lost: plain, interrupt moderation, moderation with
//! send combining, CSB, and CSB with batched publication.

use std::time::Duration;

use anyhow::Result;
use e2e_tests::{field, Daemon, Vm};

const FRAMES: u64 = 100_000;

fn vm_to_vm(name: &str, e1000: &[&str], sender: &str, receiver: &str) -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let mut vmm_args = Vec::new();
    for opt in e1000 {
        vmm_args.extend(["--e1000", opt]);
    }
    let mut rx = Vm::start(
        &daemon,
        &format!("{name}-rx"),
        "vale0:rx",
        "52:54:00:00:05:01",
        &vmm_args,
        &format!("rx count={FRAMES} {receiver}"),
    )?;
    rx.wait_for_serial("guest: rx", Duration::from_secs(30))?;
    let mut tx = Vm::start(
        &daemon,
        &format!("{name}-tx"),
        "vale0:tx",
        "52:54:00:00:05:02",
        &vmm_args,
        &format!("tx count={FRAMES} dst=52:54:00:00:05:01 {sender}"),
    )?;
    let (sent, tx_stats) = tx.finish(Duration::from_secs(300))?;
    let (got, rx_stats) = rx.finish(Duration::from_secs(60))?;
    assert_eq!(field(&sent, "frames"), FRAMES, "{name}: {sent}");
    assert_eq!(field(&got, "unique"), FRAMES, "{name}: receiver {got}");
    assert_eq!(field(&got, "lost"), 0, "{name}: {got}");
    assert_eq!(field(&got, "corrupt"), 0, "{name}: {got}");
    assert_eq!(field(&got, "duplicates"), 0, "{name}: {got}");
    eprintln!(
        "{name}: sender {} pps, receiver {} pps; exits tx {} rx {}",
        sent["pps"], got["pps"], tx_stats["exits"]["total"], rx_stats["exits"]["total"]
    );
    Ok(())
}

#[test]
fn plain() -> Result<()> {
    vm_to_vm("plain", &["mitigation=off"], "txmode=plain", "txmode=plain")
}

#[test]
fn mitigation() -> Result<()> {
    vm_to_vm(
        "mitigation",
        &["mitigation=on"],
        "txmode=plain",
        "txmode=plain",
    )
}

#[test]
fn mitigation_and_combining() -> Result<()> {
    // Paced to what a receiving guest sustains on a shared 2-core machine:
    // the switch drops (and counts) what a full ring cannot take.
    vm_to_vm(
        "combining",
        &["mitigation=on"],
        "txmode=combine rate=50000",
        "txmode=plain",
    )
}

#[test]
fn csb() -> Result<()> {
    vm_to_vm(
        "csb",
        &["mitigation=off"],
        "txmode=csb burst=1 rate=50000",
        "txmode=csb",
    )
}

#[test]
fn csb_batched() -> Result<()> {
    vm_to_vm(
        "csb+batch",
        &["mitigation=off"],
        "txmode=csb burst=64 rate=50000",
        "txmode=csb",
    )
}
