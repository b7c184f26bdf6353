//! `bench nic`'s VM cases: a guest under our VMM (its e1000 in the CSB mode
//! with batched sends, `bench vm`'s `csb+batch`) on a port of the switch
//! that has the veth's `n0` attached as a NIC port.
//!
//! ```text
//!  ns peer: p0 <-veth-> n0 :ns switch (NIC port vale0:n0)      vale0:vm <- VMM (csb+batch)
//!
//!  NIC -> VM  source on p0 -> veth -> NIC port -> vswitch -> VM port -> guest rx (counts)
//!  VM -> NIC  guest tx -> VM port -> vswitch -> NIC port -> veth -> XDP count on p0
//! ```
//!
//! Both directions are unicast: the VMM locks its port to the guest's MAC,
//! which pins that address to the VM port, and the peer's MAC is learned on
//! the NIC port from a short burst of the source before the guest sends.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Result};
use bench::line_source::{FrameSpec, Mechanism};
use bench::xdp_sink::SinkVerdict;
use testbed::{unique_temp_dir, Mac};

use crate::cpu_cost::CpuWindow;
use crate::guest_vm::{guest_exits, guest_irqs, GuestVm};
use crate::nic_line_rate::{attach_sink, send_on, spec};
use crate::nic_port::NicSwitch;
use crate::repeat::repeat;
use crate::report::{Case, Report};
use crate::veth_pair::{VethPair, PEER_IF, PEER_MAC, SWITCH_MAC};

/// The source into the NIC port, switched to the guest.
pub const NIC_TO_VM: &str = "line-rate -> veth -> NIC port -> VM (CSB guest rx)";
/// The guest's sends, switched to the NIC port and counted behind it.
pub const VM_TO_NIC: &str = "VM (CSB guest tx) -> NIC port -> veth -> XDP count";

/// The guest's address.
const VM_MAC: Mac = Mac([0x52, 0x54, 0x00, 0x00, 0x0c, 0x01]);
/// The guest's port label (port `vale0:vm`).
const VM_LABEL: &str = "vm";
/// `bench vm`'s `csb+batch`: the VMM's e1000 options and the guest's modes.
const E1000: &[&str] = &["mitigation=off", "csb=on"];
const GUEST_TX: &str = "txmode=csb burst=64";
const GUEST_RX: &str = "txmode=csb";
/// Where the sending guest prints its mode line, just before it sends.
const TX_STARTS: &str = "guest: tx txmode=";
/// The CPU the source runs on (as in the line-rate cases).
const SOURCE_CPU: usize = 0;

/// Why the VM cases cannot run here, if they cannot.
pub fn unavailable(bin_dir: &Path) -> Option<String> {
    let image = testbed::guest_image();
    if !image.exists() {
        return Some(format!(
            "no guest image at {} (cargo xtask build-guest)",
            image.display()
        ));
    }
    if !testbed::have_kvm() {
        return Some("/dev/kvm does not open read-write".to_owned());
    }
    let vmm = bin_dir.join("vmm");
    if !vmm.exists() {
        return Some(format!("no vmm binary at {}", vmm.display()));
    }
    None
}

/// What the guests share.
struct VmBed<'a> {
    switch: &'a NicSwitch,
    bed: &'a VethPair,
    bin_dir: &'a Path,
    image: std::path::PathBuf,
    tsc_khz: u64,
}

impl VmBed<'_> {
    fn start(&self, dir: &Path, args: &str) -> Result<GuestVm> {
        GuestVm::ours(
            self.bin_dir,
            &self.image,
            dir,
            VM_LABEL,
            self.switch.socket(),
            &format!("vale0:{VM_LABEL}"),
            &VM_MAC.to_string(),
            E1000,
            &format!("{args} quiet tsc_khz={}", self.tsc_khz),
        )
    }

    /// A counter of `port` (0 when the port or counter is missing).
    fn counter(&self, port: &str, key: &str) -> u64 {
        self.switch
            .counters(port)
            .ok()
            .and_then(|c| c.get(key).copied())
            .unwrap_or(0)
    }

    /// Whether the switch knows `mac` (pinned or learned).
    fn known(&self, mac: Mac) -> bool {
        self.switch.learned(mac).unwrap_or(false)
    }
}

/// NIC -> VM: the source on `p0` sends to the guest for `d`; the rate is
/// what the guest received per second of sending.
fn nic_to_vm(vb: &VmBed, size: usize, d: Duration, m: Mechanism) -> Result<Case> {
    let dir = unique_temp_dir("vsw-bench-nic-vm")?;
    let mut vm = vb.start(
        dir.path(),
        &format!("rx size={size} duration={} {GUEST_RX}", d.as_secs() + 10),
    )?;
    vm.wait_line("guest: rx", Duration::from_secs(60))?;
    let dst_known = vb.known(VM_MAC);
    let vm_port = format!("vale0:{VM_LABEL}");
    let nic_port = vb.switch.nic_port();
    let port_before = vb.counter(nic_port, "rx_packets");
    let ring_full_before = vb.counter(&vm_port, "drop_ring_full");
    let cpu = CpuWindow::start();
    let sent = send_on(
        &vb.bed.peer,
        PEER_IF,
        spec(size, PEER_MAC, VM_MAC),
        m,
        d,
        SOURCE_CPU,
    )?;
    let busy = cpu.busy_seconds();
    let port_rx = vb
        .counter(nic_port, "rx_packets")
        .saturating_sub(port_before);
    let ring_full = vb
        .counter(&vm_port, "drop_ring_full")
        .saturating_sub(ring_full_before);
    let out = vm.finish(d + Duration::from_secs(30))?;
    // The source repeats each frame (one sequence number per run): count
    // every verified frame, not the distinct ones.
    let frames = out.result["frames"].as_u64().unwrap_or(0);
    if frames == 0 || sent.seconds <= 0.0 {
        bail!("the guest received nothing: {}", out.result);
    }
    let per = |n: u64| n as f64 / frames as f64;
    Ok(
        Case::new(NIC_TO_VM, "nic_vm", size, frames as f64 / sent.seconds)
            .with_cpu(busy.map(|b| b * 1e9 / frames as f64))
            .with("direction", "rx")
            .with("config", "csb+batch")
            .with("tx_mpps", sent.pps() / 1e6)
            .with("port_mpps", port_rx as f64 / sent.seconds / 1e6)
            .with(
                "guest_mpps",
                out.result["pps"].as_f64().unwrap_or(0.0) / 1e6,
            )
            .with("lost", sent.frames.saturating_sub(frames))
            .with("vm_port_ring_full", ring_full)
            .with("corrupt", out.result["corrupt"].as_u64().unwrap_or(0))
            .with("exits_per_pkt", per(guest_exits(&out.result)))
            .with("irqs_per_pkt", per(guest_irqs(&out.result)))
            .with("dst_known", dst_known),
    )
}

/// Teaches the switch that the peer's MAC is behind the NIC port: a short
/// burst of the source from `p0` with that address (to the switch's own
/// veth end, which no port has: flooded to nobody while no VM runs).
fn learn_peer(vb: &VmBed, m: Mechanism) -> Result<bool> {
    if vb.known(PEER_MAC) {
        return Ok(true);
    }
    let burst = FrameSpec {
        flows: 1,
        ..spec(testframe::MIN_FRAME_LEN, PEER_MAC, SWITCH_MAC)
    };
    send_on(
        &vb.bed.peer,
        PEER_IF,
        burst,
        m,
        Duration::from_millis(1),
        SOURCE_CPU,
    )?;
    Ok(
        testbed::wait_until(Duration::from_secs(2), Duration::from_millis(10), || {
            vb.known(PEER_MAC)
        })
        .is_ok(),
    )
}

/// VM -> NIC: the guest sends to the peer's MAC for `d`; the rate is what
/// the sink on `p0` counted per second of the guest's sending.
fn vm_to_nic(vb: &VmBed, size: usize, d: Duration, m: Mechanism) -> Result<Case> {
    let sink = attach_sink(&vb.bed.peer, PEER_IF, SinkVerdict::Drop)?;
    let dst_known = learn_peer(vb, m)?;
    // Nothing else reaches the sink: count from before the guest starts,
    // which sends as soon as it printed its mode line.
    let nic_port = vb.switch.nic_port();
    let port_before = vb.counter(nic_port, "tx_packets");
    let before = sink.packets()?;
    let dir = unique_temp_dir("vsw-bench-nic-vm")?;
    let mut vm = vb.start(
        dir.path(),
        &format!(
            "tx size={size} duration={} {GUEST_TX} dst={PEER_MAC}",
            d.as_secs().max(1)
        ),
    )?;
    vm.wait_line(TX_STARTS, Duration::from_secs(60))?;
    let cpu = CpuWindow::start();
    let out = vm.finish(d + Duration::from_secs(60))?;
    let busy = cpu.busy_seconds();
    let sent = out.result["frames"].as_u64().unwrap_or(0);
    let seconds = out.result["seconds"].as_f64().unwrap_or(0.0);
    let got = sink.arrived_since(before, sent);
    let port_tx = vb
        .counter(nic_port, "tx_packets")
        .saturating_sub(port_before);
    if got == 0 || seconds <= 0.0 {
        bail!("nothing reached the sink: guest {}", out.result);
    }
    let per = |n: u64| n as f64 / sent.max(1) as f64;
    Ok(Case::new(VM_TO_NIC, "nic_vm", size, got as f64 / seconds)
        .with_cpu(busy.map(|b| b * 1e9 / got as f64))
        .with("direction", "tx")
        .with("config", "csb+batch")
        .with("tx_mpps", sent as f64 / seconds / 1e6)
        .with("port_mpps", port_tx as f64 / seconds / 1e6)
        .with("lost", sent.saturating_sub(got))
        .with("exits_per_pkt", per(guest_exits(&out.result)))
        .with("irqs_per_pkt", per(guest_irqs(&out.result)))
        .with("dst_known", dst_known))
}

/// Both VM cases at every size, with `switch` attached to `n0` of `bed`.
/// A case that fails becomes a note (as in `bench vm`): the rest of the
/// suite still runs.
#[allow(clippy::too_many_arguments)]
pub fn vm_cases(
    switch: &NicSwitch,
    bed: &VethPair,
    bin_dir: &Path,
    sizes: &[usize],
    d: Duration,
    repeats: usize,
    m: Mechanism,
    report: &mut Report,
    notes: &mut Vec<String>,
) {
    let vb = VmBed {
        switch,
        bed,
        bin_dir,
        image: testbed::guest_image(),
        tsc_khz: crate::guest_vm::tsc_khz(),
    };
    for &size in sizes {
        type Run = fn(&VmBed, usize, Duration, Mechanism) -> Result<Case>;
        let runs: [(&str, Run); 2] = [(NIC_TO_VM, nic_to_vm), (VM_TO_NIC, vm_to_nic)];
        for (name, run) in runs {
            match repeat(repeats, || run(&vb, size, d, m)) {
                Ok(case) => report.push(case),
                Err(e) => notes.push(format!("{size} B, {name} failed: {e:#}")),
            }
        }
    }
}

/// What limits each direction, from the cases of one size: the guest's
/// side when the NIC port moved more than the VM took (or the VM's port
/// dropped for a full ring), the NIC side otherwise.
pub fn limit_notes(report: &Report, size: usize, notes: &mut Vec<String>) {
    let find = |name: &str| report.case(name, size);
    let extra = |c: &Case, k: &str| c.extra.get(k).and_then(|v| v.as_f64()).unwrap_or(0.0);
    if let Some(c) = find(NIC_TO_VM) {
        let port = extra(c, "port_mpps");
        let ring_full = extra(c, "vm_port_ring_full");
        let by = if ring_full > 0.0 || c.mpps < 0.9 * port {
            "the VM's receive path (the VMM's net worker filling the guest's RX ring, and the \
             guest's vCPU): the NIC port moved more than the VM took"
        } else {
            "the NIC port's receive or the source: the VM took what the port moved"
        };
        notes.push(format!(
            "{size} B, NIC -> VM: the guest received {:.3} Mpps of {:.3} offered, the NIC port \
             moved {port:.3} Mpps into the switch, the VM port dropped {ring_full:.0} for a full \
             ring; limited by {by}",
            c.mpps,
            extra(c, "tx_mpps"),
        ));
    }
    if let Some(c) = find(VM_TO_NIC) {
        let nic_tx = report.mpps(crate::nic_line_rate::NIC_TX, size);
        let by = match nic_tx {
            Some(nic) if c.mpps < 0.9 * nic => format!(
                "the guest's send path (vCPU and the VMM's net worker): the NIC port alone \
                 sent {nic:.3} Mpps from a pktgen port"
            ),
            Some(nic) => format!(
                "the NIC port's send (it sent {nic:.3} Mpps from a pktgen port in this run)"
            ),
            None => {
                "the guest's send path or the NIC port (no NIC port tx case to compare)".to_owned()
            }
        };
        notes.push(format!(
            "{size} B, VM -> NIC: the sink counted {:.3} Mpps of the {:.3} the guest sent; \
             limited by {by}",
            c.mpps,
            extra(c, "tx_mpps"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notes_of(cases: Vec<Case>) -> Vec<String> {
        let report = Report { cases };
        let mut notes = Vec::new();
        limit_notes(&report, 64, &mut notes);
        notes
    }

    #[test]
    fn the_slower_side_is_named() {
        let notes = notes_of(vec![
            Case::new(NIC_TO_VM, "nic_vm", 64, 0.5e6)
                .with("port_mpps", 1.0)
                .with("vm_port_ring_full", 0),
            Case::new(VM_TO_NIC, "nic_vm", 64, 0.7e6).with("tx_mpps", 0.7),
            Case::new(crate::nic_line_rate::NIC_TX, "nic_port", 64, 1.4e6),
        ]);
        assert_eq!(notes.len(), 2);
        assert!(
            notes[0].contains("limited by the VM's receive path"),
            "{}",
            notes[0]
        );
        assert!(
            notes[1].contains("limited by the guest's send path"),
            "{}",
            notes[1]
        );

        let notes = notes_of(vec![
            Case::new(NIC_TO_VM, "nic_vm", 64, 0.99e6)
                .with("port_mpps", 1.0)
                .with("vm_port_ring_full", 0),
            Case::new(VM_TO_NIC, "nic_vm", 64, 1.35e6).with("tx_mpps", 1.4),
            Case::new(crate::nic_line_rate::NIC_TX, "nic_port", 64, 1.4e6),
        ]);
        assert!(
            notes[0].contains("the NIC port's receive or the source"),
            "{}",
            notes[0]
        );
        assert!(
            notes[1].contains("limited by the NIC port's send"),
            "{}",
            notes[1]
        );
        // A full VM ring names the VM even at the port's rate.
        let notes = notes_of(vec![Case::new(NIC_TO_VM, "nic_vm", 64, 1e6)
            .with("port_mpps", 1.0)
            .with("vm_port_ring_full", 5)]);
        assert!(notes[0].contains("the VM's receive path"), "{}", notes[0]);
        assert!(notes_of(Vec::new()).is_empty());
    }
}
