//! A guest VM under the project's `vmm` or under QEMU, with its serial
//! console in a file, and what it left when it ended.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use crate::{
    check_guest_image, unique_temp_dir, vmm_bin, wait_until, Capture, Error, Netns, Proc, Result,
    TempDir,
};

/// The QEMU binary [`Vm::qemu`] runs.
pub const QEMU_BIN: &str = "qemu-system-x86_64";
/// The firmware QEMU boots the PVH kernel with.
const QEMU_BIOS: &str = "/usr/share/qemu/qboot.rom";
/// The port of QEMU's `isa-debug-exit` device, where the guest writes its
/// exit code (the project's vmm takes the same port).
const DEBUG_EXIT_PORT: &str = "0x501";

/// Which monitor runs the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hypervisor {
    /// The project's `vmm`: its exit code is the guest's.
    Vmm,
    /// QEMU with an `isa-debug-exit` device: it exits with
    /// `guest code * 2 + 1`.
    Qemu,
}

/// How to start a [`Vm`]; made by [`Vm::vmm`] or [`Vm::qemu`].
#[derive(Debug)]
pub struct VmBuilder<'a> {
    hypervisor: Hypervisor,
    binary: PathBuf,
    kernel: PathBuf,
    label: String,
    dir: Option<PathBuf>,
    netns: Option<&'a Netns>,
    mem_mib: Option<u32>,
    net: Option<String>,
    socket: Option<PathBuf>,
    tap: Option<String>,
    mac: Option<String>,
    e1000: Vec<String>,
    stats: bool,
    args: Vec<OsString>,
    guest_args: Vec<String>,
}

impl<'a> VmBuilder<'a> {
    /// Names the VM in errors and in its file names (`<label>.serial`,
    /// `<label>.stderr`, ...); `vm` unless set.
    pub fn label(mut self, label: &str) -> Self {
        self.label = label.to_string();
        self
    }

    /// Keeps the VM's files in `dir` (which outlives the VM) instead of a
    /// fresh temporary directory.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Runs the monitor inside `netns` (QEMU's tap is looked up there).
    pub fn netns(mut self, netns: &'a Netns) -> Self {
        self.netns = Some(netns);
        self
    }

    /// Guest memory in MiB (the monitor's default unless set).
    pub fn mem_mib(mut self, mib: u32) -> Self {
        self.mem_mib = Some(mib);
        self
    }

    /// vmm only: the network backend (`--net`): a switch port
    /// (`vale0:a`, with [`VmBuilder::socket`]) or a test backend (`sink`,
    /// `pong`).
    pub fn net(mut self, backend: &str) -> Self {
        self.net = Some(backend.to_string());
        self
    }

    /// vmm only: the daemon's control socket (`--socket`).
    pub fn socket(mut self, socket: impl Into<PathBuf>) -> Self {
        self.socket = Some(socket.into());
        self
    }

    /// QEMU only: the e1000's backend is tap `tap` (it must exist).
    pub fn tap(mut self, tap: &str) -> Self {
        self.tap = Some(tap.to_string());
        self
    }

    /// The e1000's MAC address.
    pub fn mac(mut self, mac: &str) -> Self {
        self.mac = Some(mac.to_string());
        self
    }

    /// An e1000 option `key=value` (`mitigation=off`): `--e1000 OPTION` for
    /// the vmm, a property of the `-device e1000` for QEMU.
    pub fn e1000(mut self, option: &str) -> Self {
        self.e1000.push(option.to_string());
        self
    }

    /// vmm only: writes the final statistics as JSON (`--stats-json`) to
    /// `<label>.stats.json`, read into [`VmOutcome::stats`].
    pub fn stats_json(mut self) -> Self {
        self.stats = true;
        self
    }

    /// Adds monitor options as they are.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// The guest's command line, split at whitespace (after `--` for the
    /// vmm, `-append` for QEMU).
    pub fn guest_args(mut self, args: &str) -> Self {
        self.guest_args
            .extend(args.split_whitespace().map(str::to_string));
        self
    }

    /// Starts the VM; its serial console goes to `<label>.serial`, the
    /// monitor's stdout and stderr to `<label>.stdout` / `<label>.stderr`.
    pub fn start(self) -> Result<Vm> {
        if !self.kernel.exists() {
            return Err(Error::Missing {
                what: "guest kernel",
                path: self.kernel,
                hint: "`cargo xtask build-guest` builds the guest image",
            });
        }
        check_guest_image(&self.kernel)?;
        let (temp, dir) = match self.dir.clone() {
            Some(dir) => (None, dir),
            None => {
                let temp = unique_temp_dir("vsw-vm")?;
                let dir = temp.path().to_owned();
                (Some(temp), dir)
            }
        };
        let serial = dir.join(format!("{}.serial", self.label));
        let stats = self
            .stats
            .then(|| dir.join(format!("{}.stats.json", self.label)));
        let mut command = match self.netns {
            Some(netns) => netns.command(&self.binary),
            None => Command::new(&self.binary),
        };
        match self.hypervisor {
            Hypervisor::Vmm => self.vmm_args(&mut command, &serial, stats.as_deref()),
            Hypervisor::Qemu => self.qemu_args(&mut command, &serial),
        }
        let proc = Proc::spawn(&self.label, command, Capture::Files(dir))?;
        Ok(Vm {
            proc,
            hypervisor: self.hypervisor,
            label: self.label,
            serial,
            stats,
            _temp: temp,
        })
    }

    /// With `TESTBED_E1000_OFFLOAD=on` in the environment, every VM of our
    /// VMM on a switch port whose CSB extension is not turned off gets
    /// `--e1000 offload=on` (so the VM tests run with the data path
    /// offloaded), unless its options already say.
    fn offload_everywhere(&self) -> bool {
        let says = |a: &str| a.contains("csb=off") || a.contains("offload=");
        std::env::var("TESTBED_E1000_OFFLOAD").is_ok_and(|v| v == "on")
            && self.net.as_deref().is_some_and(|n| n.contains(':'))
            && !self.e1000.iter().any(|a| says(a))
            && !self.args.iter().any(|a| says(&a.to_string_lossy()))
    }

    fn vmm_args(&self, command: &mut Command, serial: &Path, stats: Option<&Path>) {
        command.arg("--kernel").arg(&self.kernel);
        if let Some(mib) = self.mem_mib {
            command.args(["--mem", &mib.to_string()]);
        }
        if let Some(net) = &self.net {
            command.args(["--net", net]);
        }
        if let Some(mac) = &self.mac {
            command.args(["--mac", mac]);
        }
        if let Some(socket) = &self.socket {
            command.arg("--socket").arg(socket);
        }
        command.arg("--serial").arg(serial);
        if let Some(stats) = stats {
            command.arg("--stats-json").arg(stats);
        }
        for option in &self.e1000 {
            command.args(["--e1000", option]);
        }
        if self.offload_everywhere() {
            command.args(["--e1000", "offload=on"]);
        }
        command.args(&self.args).arg("--").args(&self.guest_args);
    }

    fn qemu_args(&self, command: &mut Command, serial: &Path) {
        let mem = format!("{}M", self.mem_mib.unwrap_or(64));
        command.args([
            "-enable-kvm",
            "-m",
            &mem,
            "-display",
            "none",
            "-monitor",
            "none",
            "-no-reboot",
        ]);
        command
            .args(["-bios", QEMU_BIOS, "-kernel"])
            .arg(&self.kernel);
        command.args([
            "-device",
            &format!("isa-debug-exit,iobase={DEBUG_EXIT_PORT},iosize=1"),
        ]);
        command
            .arg("-serial")
            .arg(format!("file:{}", serial.display()));
        command.args(["-append", &self.guest_args.join(" ")]);
        if let Some(tap) = &self.tap {
            command.args([
                "-netdev",
                &format!("tap,id=n0,ifname={tap},script=no,downscript=no"),
            ]);
            let mut device = String::from("e1000,netdev=n0");
            if let Some(mac) = &self.mac {
                device.push_str(&format!(",mac={mac}"));
            }
            for option in &self.e1000 {
                device.push(',');
                device.push_str(option);
            }
            command.args(["-device", &device]);
        }
        command.args(&self.args);
    }
}

/// A running guest VM, ended by its PID on drop.
#[derive(Debug)]
pub struct Vm {
    // Declared first: the monitor is stopped before its directory goes.
    proc: Proc,
    hypervisor: Hypervisor,
    label: String,
    serial: PathBuf,
    stats: Option<PathBuf>,
    _temp: Option<TempDir>,
}

/// How a VM ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmExit {
    /// The monitor exited by itself.
    Exited(ExitStatus),
    /// It was still running after this long and was ended.
    TimedOut(Duration),
}

/// What a VM left when it ended: how, its serial output, the monitor's
/// stderr and (vmm with [`VmBuilder::stats_json`]) its statistics.
#[derive(Clone, Debug)]
pub struct VmOutcome {
    /// The VM's label.
    pub label: String,
    /// How the monitor ended.
    pub exit: VmExit,
    /// The guest's exit code, if it exited through the debug-exit port
    /// (for the vmm: its exit code).
    pub guest_code: Option<i32>,
    /// Everything the guest printed.
    pub serial: String,
    /// What the monitor wrote to stderr.
    pub stderr: String,
    /// The statistics file's text, if one was asked for and written.
    pub stats: Option<String>,
}

impl VmOutcome {
    /// Whether the VM was ended for running too long.
    pub fn timed_out(&self) -> bool {
        matches!(self.exit, VmExit::TimedOut(_))
    }

    /// The monitor's exit code, if it exited by itself with one.
    pub fn code(&self) -> Option<i32> {
        match self.exit {
            VmExit::Exited(status) => status.code(),
            VmExit::TimedOut(_) => None,
        }
    }

    /// The last line of the serial output that starts with `{"result"`
    /// (the project's guest image reports its workload's result so).
    pub fn result_line(&self) -> Option<&str> {
        self.serial
            .lines()
            .rev()
            .find(|line| line.starts_with("{\"result\""))
    }

    /// The serial output and the monitor's stderr, for failure messages.
    pub fn report(&self) -> String {
        format!(
            "{} ({:?}): serial:\n{}\nstderr:\n{}",
            self.label, self.exit, self.serial, self.stderr
        )
    }
}

impl Vm {
    /// A VM under the project's vmm `binary` booting `kernel`.
    pub fn vmm<'a>(binary: impl Into<PathBuf>, kernel: impl Into<PathBuf>) -> VmBuilder<'a> {
        VmBuilder::new(Hypervisor::Vmm, binary.into(), kernel.into())
    }

    /// A VM under [`vmm_bin`] booting `kernel`.
    pub fn ours<'a>(kernel: impl Into<PathBuf>) -> VmBuilder<'a> {
        Vm::vmm(vmm_bin(), kernel)
    }

    /// A VM under QEMU (KVM, 64 MiB unless set, qboot firmware, an
    /// `isa-debug-exit` device) booting `kernel`.
    pub fn qemu<'a>(kernel: impl Into<PathBuf>) -> VmBuilder<'a> {
        VmBuilder::new(Hypervisor::Qemu, QEMU_BIN.into(), kernel.into())
    }

    /// The label given at start.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The monitor's PID.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The monitor process.
    pub fn proc_mut(&mut self) -> &mut Proc {
        &mut self.proc
    }

    /// The file that receives the serial console.
    pub fn serial_path(&self) -> &Path {
        &self.serial
    }

    /// What the guest has printed so far.
    pub fn serial(&self) -> String {
        std::fs::read_to_string(&self.serial).unwrap_or_default()
    }

    /// Waits until the guest has printed `needle`, at most `timeout`; fails
    /// at once when the monitor exits without it.
    pub fn wait_for_serial(&self, needle: &str, timeout: Duration) -> Result<()> {
        let mut exited = false;
        wait_until(timeout, Duration::from_millis(20), || {
            // Read the serial after the exit check: what the guest printed
            // before its monitor exited is all there.
            exited = self.proc.has_exited();
            self.serial().contains(needle) || exited
        })
        .map_err(|_| Error::SerialTimeout {
            what: self.label.clone(),
            needle: needle.to_string(),
            timeout,
            serial: self.serial(),
        })?;
        if exited && !self.serial().contains(needle) {
            return Err(Error::ExitedBeforeSerial {
                what: self.label.clone(),
                needle: needle.to_string(),
                serial: self.serial(),
            });
        }
        Ok(())
    }

    /// Waits at most `timeout` for the VM to end (ending it past that) and
    /// returns what it left.
    pub fn finish(&mut self, timeout: Duration) -> Result<VmOutcome> {
        let exit = match self.proc.wait_timeout(timeout)? {
            Some(status) => VmExit::Exited(status),
            None => {
                self.proc.stop()?;
                VmExit::TimedOut(timeout)
            }
        };
        let guest_code = match exit {
            VmExit::TimedOut(_) => None,
            VmExit::Exited(status) => guest_code(self.hypervisor, status),
        };
        Ok(VmOutcome {
            label: self.label.clone(),
            exit,
            guest_code,
            serial: self.serial(),
            stderr: self.proc.read_stderr().unwrap_or_default(),
            stats: self
                .stats
                .as_ref()
                .and_then(|path| std::fs::read_to_string(path).ok()),
        })
    }
}

impl<'a> VmBuilder<'a> {
    fn new(hypervisor: Hypervisor, binary: PathBuf, kernel: PathBuf) -> VmBuilder<'a> {
        VmBuilder {
            hypervisor,
            binary,
            kernel,
            label: "vm".to_string(),
            dir: None,
            netns: None,
            mem_mib: None,
            net: None,
            socket: None,
            tap: None,
            mac: None,
            e1000: Vec::new(),
            stats: false,
            args: Vec::new(),
            guest_args: Vec::new(),
        }
    }
}

/// The guest's exit code from the monitor's exit status.
fn guest_code(hypervisor: Hypervisor, status: ExitStatus) -> Option<i32> {
    let code = status.code()?;
    match hypervisor {
        Hypervisor::Vmm => Some(code),
        // isa-debug-exit: the guest writes v, QEMU exits with v * 2 + 1.
        Hypervisor::Qemu => (code & 1 == 1).then_some(code >> 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn guest_codes() {
        let exited = |code: i32| ExitStatus::from_raw(code << 8);
        assert_eq!(guest_code(Hypervisor::Vmm, exited(0)), Some(0));
        assert_eq!(guest_code(Hypervisor::Vmm, exited(3)), Some(3));
        assert_eq!(guest_code(Hypervisor::Qemu, exited(1)), Some(0));
        assert_eq!(guest_code(Hypervisor::Qemu, exited(7)), Some(3));
        assert_eq!(guest_code(Hypervisor::Qemu, exited(0)), None);
        assert_eq!(guest_code(Hypervisor::Vmm, ExitStatus::from_raw(9)), None);
    }

    #[test]
    fn a_missing_kernel_is_reported() {
        let err = Vm::vmm("/bin/true", "/nonexistent/guest.elf")
            .start()
            .unwrap_err();
        assert!(matches!(err, Error::Missing { .. }), "{err}");
    }

    #[test]
    fn outcome_finds_the_last_result_line() {
        let outcome = VmOutcome {
            label: "t".into(),
            exit: VmExit::TimedOut(Duration::from_secs(1)),
            guest_code: None,
            serial: "boot\n{\"result\":1}\nx\n{\"result\":2}\n".into(),
            stderr: String::new(),
            stats: None,
        };
        assert_eq!(outcome.result_line(), Some("{\"result\":2}"));
        assert!(outcome.timed_out());
        assert_eq!(outcome.code(), None);
    }
}
