//! One guest VM running our guest image, under our `vmm` on a switch port or
//! under QEMU with a tap in a network namespace, and what it reported.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use testbed::{wait_until, Capture, Netns, Proc};

/// Where the guest image is.
pub fn guest_image(root: &Path) -> PathBuf {
    root.join("target/guest/guest.elf")
}

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

/// A running guest.
pub struct GuestVm {
    proc: Proc,
    serial: PathBuf,
    stats: Option<PathBuf>,
    qemu: bool,
    label: String,
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
        let serial = dir.join(format!("{label}.serial"));
        let stats = dir.join(format!("{label}.stats.json"));
        let mut cmd = Command::new(bin_dir.join("vmm"));
        cmd.arg("--kernel")
            .arg(image)
            .args(["--mem", "64", "--net", port, "--mac", mac]);
        cmd.arg("--socket")
            .arg(socket)
            .arg("--serial")
            .arg(&serial)
            .arg("--stats-json")
            .arg(&stats);
        for opt in e1000 {
            cmd.args(["--e1000", opt]);
        }
        cmd.arg("--").args(guest_args.split_whitespace());
        Ok(GuestVm {
            proc: Proc::spawn(label, cmd, Capture::Files(dir.to_owned()))?,
            serial,
            stats: Some(stats),
            qemu: false,
            label: label.to_owned(),
        })
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
        let serial = dir.join(format!("{label}.serial"));
        let mut cmd = ns.command("qemu-system-x86_64");
        cmd.args([
            "-enable-kvm",
            "-m",
            "64M",
            "-display",
            "none",
            "-monitor",
            "none",
            "-no-reboot",
        ]);
        cmd.args(["-bios", "/usr/share/qemu/qboot.rom", "-kernel"])
            .arg(image);
        cmd.args(["-device", "isa-debug-exit,iobase=0x501,iosize=1"]);
        cmd.arg("-serial").arg(format!("file:{}", serial.display()));
        cmd.args(["-append", guest_args]);
        cmd.args([
            "-netdev",
            &format!("tap,id=n0,ifname={tap},script=no,downscript=no"),
        ]);
        cmd.args([
            "-device",
            &format!(
                "e1000,netdev=n0,mac={mac},mitigation={}",
                if mitigation { "on" } else { "off" }
            ),
        ]);
        Ok(GuestVm {
            proc: Proc::spawn(label, cmd, Capture::Files(dir.to_owned()))?,
            serial,
            stats: None,
            qemu: true,
            label: label.to_owned(),
        })
    }

    /// What the guest printed so far.
    pub fn serial(&self) -> String {
        std::fs::read_to_string(&self.serial).unwrap_or_default()
    }

    /// Waits until the guest printed `needle`.
    pub fn wait_line(&self, needle: &str, timeout: Duration) -> Result<()> {
        wait_until(timeout, Duration::from_millis(20), || {
            self.serial().contains(needle)
        })
        .with_context(|| {
            format!(
                "{} never printed {needle:?}:\n{}",
                self.label,
                self.serial()
            )
        })?;
        Ok(())
    }

    /// Waits for the guest to exit and returns what it reported.
    pub fn finish(&mut self, timeout: Duration) -> Result<GuestOutcome> {
        let status = self.proc.wait_timeout(timeout)?.with_context(|| {
            format!(
                "{} did not finish in {timeout:?}:\n{}",
                self.label,
                self.serial()
            )
        })?;
        let code = status.code().unwrap_or(-1);
        let guest_code = if self.qemu {
            if code & 1 == 1 {
                code >> 1
            } else {
                -1
            }
        } else {
            code
        };
        let serial = self.serial();
        let line = serial
            .lines()
            .rev()
            .find(|l| l.starts_with("{\"result\""))
            .with_context(|| {
                format!(
                    "{} (exit {code}) printed no result:\n{serial}\n{}",
                    self.label,
                    self.proc.read_stderr().unwrap_or_default()
                )
            })?;
        let result: Value = serde_json::from_str(line)?;
        if guest_code != 0 {
            bail!("{} failed (guest exit {guest_code}): {result}", self.label);
        }
        let vmm_stats = match &self.stats {
            Some(p) => std::fs::read(p)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default(),
            None => Value::Null,
        };
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
