//! One guest VM running our guest image, under our `vmm` on a switch port or
//! under QEMU with a tap in a network namespace (testbed's launcher), and
//! what it reported.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use testbed::{Netns, Vm};

/// The host TSC frequency in kHz, measured against CLOCK_MONOTONIC (the
/// guest's TSC runs at the host's under KVM without scaling).
pub fn tsc_khz() -> u64 {
    use std::time::Instant;
    // SAFETY: rdtsc has no preconditions on x86_64.
    let t0 = unsafe { core::arch::x86_64::_rdtsc() };
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: as above.
    let t1 = unsafe { core::arch::x86_64::_rdtsc() };
    let ns = start.elapsed().as_nanos() as u64;
    (t1 - t0) * 1_000_000 / ns.max(1)
}

/// A running guest: testbed's [`Vm`] and what the benchmark reads from it.
pub struct GuestVm {
    vm: Vm,
    /// CLOCK_MONOTONIC just before the monitor was started.
    started_ns: u64,
}

/// CLOCK_MONOTONIC in nanoseconds (the clock of the VMMs' traces).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// What a guest reported.
pub struct GuestOutcome {
    /// The guest's JSON result line.
    pub result: Value,
    /// Our VMM's final statistics (empty under QEMU).
    pub vmm_stats: Value,
}

impl GuestVm {
    /// Starts the guest under our VMM on switch port `port`.
    #[allow(clippy::too_many_arguments)]
    pub fn ours(
        bin_dir: &Path,
        image: &Path,
        dir: &Path,
        label: &str,
        socket: &Path,
        port: &str,
        mac: &str,
        e1000: &[&str],
        guest_args: &str,
    ) -> Result<GuestVm> {
        let mut vm = Vm::vmm(bin_dir.join("vmm"), image)
            .label(label)
            .dir(dir)
            .mem_mib(64)
            .net(port)
            .mac(mac)
            .socket(socket)
            .stats_json();
        for option in e1000 {
            vm = vm.e1000(option);
        }
        let started_ns = monotonic_ns();
        let vm = vm.guest_args(guest_args).start()?;
        Ok(GuestVm { vm, started_ns })
    }

    /// Starts the guest under QEMU with an e1000 on tap `tap` of namespace `ns`.
    #[allow(clippy::too_many_arguments)]
    pub fn qemu(
        ns: &Netns,
        image: &Path,
        dir: &Path,
        label: &str,
        tap: &str,
        mac: &str,
        mitigation: bool,
        guest_args: &str,
    ) -> Result<GuestVm> {
        let started_ns = monotonic_ns();
        let vm = Vm::qemu(image)
            .netns(ns)
            .label(label)
            .dir(dir)
            .mem_mib(64)
            .tap(tap)
            .mac(mac)
            .e1000(if mitigation {
                "mitigation=on"
            } else {
                "mitigation=off"
            })
            .guest_args(guest_args)
            .start()?;
        Ok(GuestVm { vm, started_ns })
    }

    /// The monitor's process id.
    pub fn pid(&self) -> u32 {
        self.vm.pid()
    }

    /// CLOCK_MONOTONIC just before the monitor was started.
    pub fn started_ns(&self) -> u64 {
        self.started_ns
    }

    /// Waits until the guest printed `needle`.
    pub fn wait_line(&self, needle: &str, timeout: Duration) -> Result<()> {
        Ok(self.vm.wait_for_serial(needle, timeout)?)
    }

    /// Waits for the guest to exit and returns what it reported.
    pub fn finish(&mut self, timeout: Duration) -> Result<GuestOutcome> {
        let outcome = self.vm.finish(timeout)?;
        let label = self.vm.label();
        if outcome.timed_out() {
            bail!("{label} did not finish in {timeout:?}:\n{}", outcome.serial);
        }
        let line = outcome
            .result_line()
            .with_context(|| format!("{label} printed no result: {}", outcome.report()))?;
        let result: Value = serde_json::from_str(line)?;
        if outcome.guest_code != Some(0) {
            bail!(
                "{label} failed (guest exit {:?}): {result}",
                outcome.guest_code
            );
        }
        let vmm_stats = outcome
            .stats
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default();
        Ok(GuestOutcome { result, vmm_stats })
    }
}

/// Exits the guest caused in its measured part (MMIO and port accesses, and
/// LAPIC EOIs, each a VM exit on KVM), from its own counters.
pub fn guest_exits(result: &Value) -> u64 {
    ["mmio_reads", "mmio_writes", "pio", "eoi_writes"]
        .iter()
        .map(|k| result[k].as_u64().unwrap_or(0))
        .sum()
}

/// Interrupts the guest took in its measured part.
pub fn guest_irqs(result: &Value) -> u64 {
    result["irqs"].as_u64().unwrap_or(0) + result["timer_irqs"].as_u64().unwrap_or(0)
}

/// VM exits our VMM counted for a whole run, without the serial console's
/// (`None` under QEMU).
pub fn vmm_exits(stats: &Value) -> Option<u64> {
    let total = stats["exits"]["total"].as_u64()?;
    let serial: u64 = stats["exits"]["pio"]
        .as_object()
        .map(|pio| {
            pio.iter()
                .filter(|(port, _)| {
                    u16::from_str_radix(port.trim_start_matches("0x"), 16)
                        .is_ok_and(|p| (0x3f8..=0x3ff).contains(&p))
                })
                .filter_map(|(_, n)| n.as_u64())
                .sum()
        })
        .unwrap_or(0);
    Some(total.saturating_sub(serial))
}
