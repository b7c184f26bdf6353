//! Every e1000 configuration of the benchmark moves 100,000 frames from one
//! VM to another with none lost: plain, interrupt moderation, moderation with
//! send combining, CSB, and CSB with batched publication.

use anyhow::Result;
use e2e_tests::VmToVm;

const FRAMES: u64 = 100_000;

fn vm_to_vm(name: &str, e1000: &[&str], sender: &str, receiver: &str) -> Result<()> {
    let mut vmm_args = Vec::new();
    for opt in e1000 {
        vmm_args.extend(["--e1000", opt]);
    }
    let VmToVm {
        sent,
        got,
        tx_stats,
        rx_stats,
    } = e2e_tests::vm_to_vm(name, 0x05, FRAMES, &vmm_args, sender, receiver)?;
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
