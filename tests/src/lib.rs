//! The end-to-end test harness: a real `vswitch daemon` process with its own
//! socket in a temporary directory, the CLI run as a process, and in-test
//! port clients. Everything started here is ended by PID when dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use switch_port::client::{PortClient, PortConfig};
use switch_port::control::client::Connection;
use switch_port::protocol::{CounterSnapshot, Request, Response};
use testbed::{unique_temp_dir, wait_until, Capture, Netns, Proc, TempDir};

pub mod access;
pub mod nic;

/// Where the project's binaries are: `$E2E_BIN_DIR`, else the workspace's
/// `target/release` (when it has them), else `target/debug`.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("E2E_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    let release = target.join("release");
    if release.join("vswitch").exists() {
        release
    } else {
        target.join("debug")
    }
}

/// Path of the `vswitch` binary.
pub fn vswitch_bin() -> PathBuf {
    bin_dir().join("vswitch")
}

/// A daemon started for one test.
pub struct Daemon {
    /// The daemon process.
    pub proc: Proc,
    socket: PathBuf,
    dir: TempDir,
}

impl Daemon {
    /// Starts `vswitch daemon` with `args` on a fresh socket and waits until
    /// it answers.
    pub fn start(args: &[&str]) -> Result<Daemon> {
        let dir = unique_temp_dir("vsw-e2e")?;
        let socket = dir.path().join("vswitch.sock");
        let mut cmd = Command::new(vswitch_bin());
        cmd.arg("daemon").arg("--socket").arg(&socket).args(args);
        cmd.env("RUST_LOG", "info");
        let proc = Proc::spawn("daemon", cmd, Capture::Files(dir.path().to_owned()))
            .with_context(|| format!("starting {}", vswitch_bin().display()))?;
        let daemon = Daemon { proc, socket, dir };
        wait_until(Duration::from_secs(10), Duration::from_millis(10), || {
            Connection::connect(&daemon.socket).is_ok()
        })
        .with_context(|| format!("daemon did not come up; log:\n{}", daemon.log()))?;
        Ok(daemon)
    }

    /// Starts `vswitch daemon` with `args` inside the network namespace
    /// `ns` on a fresh socket and waits until it answers. NICs it attaches
    /// and TAPs it creates are those of `ns`; the socket is a file, so the
    /// CLI and clients reach it from any namespace. `ip netns exec` execs
    /// the daemon, so the process's PID is the daemon's.
    pub fn start_in(ns: &Netns, args: &[&str]) -> Result<Daemon> {
        let dir = unique_temp_dir("vsw-e2e")?;
        let socket = dir.path().join("vswitch.sock");
        let mut cmd = ns.command(vswitch_bin());
        cmd.arg("daemon").arg("--socket").arg(&socket).args(args);
        cmd.env("RUST_LOG", "info");
        let proc = Proc::spawn("daemon", cmd, Capture::Files(dir.path().to_owned()))
            .with_context(|| format!("starting {} in {}", vswitch_bin().display(), ns.name()))?;
        let daemon = Daemon { proc, socket, dir };
        wait_until(Duration::from_secs(10), Duration::from_millis(10), || {
            Connection::connect(&daemon.socket).is_ok()
        })
        .with_context(|| format!("daemon did not come up; log:\n{}", daemon.log()))?;
        Ok(daemon)
    }

    /// The control socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The temporary directory of this test.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        self.proc.read_stderr().unwrap_or_default()
    }

    /// A `vswitch` command pointed at this daemon.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(vswitch_bin());
        cmd.args(args).arg("--socket").arg(&self.socket);
        cmd
    }

    /// Runs the CLI to completion (bounded by `timeout`).
    pub fn cli(&self, args: &[&str]) -> Result<Output> {
        run_bounded(self.command(args), Duration::from_secs(60))
    }

    /// Runs the CLI, requires success and parses its stdout as JSON.
    pub fn cli_json(&self, args: &[&str]) -> Result<Value> {
        let out = self.cli(args)?;
        if !out.status.success() {
            bail!(
                "vswitch {args:?} failed: {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "vswitch {args:?} printed no JSON: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Starts a long-running `vswitch` process (pktgen) with output in files.
    pub fn spawn(&self, label: &str, args: &[&str]) -> Result<Proc> {
        Ok(Proc::spawn(
            label,
            self.command(args),
            Capture::Files(self.dir.path().to_owned()),
        )?)
    }

    /// Starts `vswitch pktgen PORT --mode rx --json -q` with `extra`
    /// options and waits until its port exists.
    pub fn pktgen_rx(&self, port: &str, extra: &[&str]) -> Result<Proc> {
        let mut args = vec!["pktgen", port, "--mode", "rx", "--json", "-q"];
        args.extend_from_slice(extra);
        let proc = self.spawn(&format!("rx-{}", port.replace(':', "-")), &args)?;
        self.wait_port(port, true)?;
        Ok(proc)
    }

    /// Starts `vswitch pktgen PORT --mode tx --json -q` with `extra` options.
    pub fn pktgen_tx(&self, port: &str, extra: &[&str]) -> Result<Proc> {
        let mut args = vec!["pktgen", port, "--mode", "tx", "--json", "-q"];
        args.extend_from_slice(extra);
        self.spawn(&format!("tx-{}", port.replace(':', "-")), &args)
    }

    /// Opens a port in this process.
    pub fn open(&self, port: &str) -> Result<PortClient> {
        Ok(PortClient::open(&self.socket, port, PortConfig::default())?)
    }

    /// A control connection.
    pub fn connect(&self) -> Result<Connection> {
        Ok(Connection::connect(&self.socket)?)
    }

    /// Counters of one port.
    pub fn counters(&self, port: &str) -> Result<CounterSnapshot> {
        let mut conn = self.connect()?;
        match conn.call(&Request::Stats {
            port: Some(port.parse()?),
        })? {
            (Response::Stats { ports, .. }, _) if ports.len() == 1 => Ok(ports[0].counters),
            other => bail!("unexpected stats answer {other:?}"),
        }
    }

    /// Counters of `port` once every one of `total` frames sent towards it
    /// has been delivered or dropped (or after 10 s: the last reading).
    pub fn settled_counters(&self, port: &str, total: u64) -> Result<CounterSnapshot> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let c = self.counters(port)?;
            if c.tx_packets + c.drops() >= total || std::time::Instant::now() > deadline {
                return Ok(c);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Names of the ports that exist now.
    pub fn port_names(&self) -> Result<Vec<String>> {
        let mut conn = self.connect()?;
        match conn.call(&Request::List {})? {
            (Response::List { switches }, _) => Ok(switches
                .into_iter()
                .flat_map(|s| s.ports.into_iter().map(|p| p.name.to_string()))
                .collect()),
            other => bail!("unexpected list answer {other:?}"),
        }
    }

    /// Waits until `port` exists (or not, with `present = false`).
    pub fn wait_port(&self, port: &str, present: bool) -> Result<()> {
        wait_until(Duration::from_secs(10), Duration::from_millis(5), || {
            self.port_names()
                .map(|n| n.iter().any(|p| p == port) == present)
                .unwrap_or(false)
        })
        .with_context(|| {
            format!(
                "port {port} did not {}",
                if present { "appear" } else { "go away" }
            )
        })?;
        Ok(())
    }
}

/// Runs a command to completion, killing it (by PID) after `timeout`.
pub fn run_bounded(cmd: Command, timeout: Duration) -> Result<Output> {
    let mut proc = Proc::spawn("cli", cmd, Capture::Pipes)?;
    let mut stdout = proc.take_stdout().context("no stdout")?;
    let mut stderr = proc.take_stderr().context("no stderr")?;
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut buf);
        buf
    });
    let status = proc
        .wait_timeout(timeout)?
        .with_context(|| format!("command did not finish within {timeout:?}"))?;
    Ok(Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    })
}

/// Parses the JSON summary a `pktgen --json` process printed.
pub fn pktgen_summary(proc: &mut Proc, timeout: Duration) -> Result<Value> {
    let status = proc
        .wait_timeout(timeout)?
        .with_context(|| format!("pktgen {} did not finish within {timeout:?}", proc.label()))?;
    let stdout = proc.read_stdout()?;
    let line = stdout.lines().last().unwrap_or("");
    serde_json::from_str(line).with_context(|| {
        format!(
            "pktgen {} ({status}) printed no JSON summary:\n{stdout}\n{}",
            proc.label(),
            proc.read_stderr().unwrap_or_default()
        )
    })
}

/// Reads a u64 field of a JSON object.
pub fn field(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no integer {key} in {v}"))
}

/// Path of the guest image: `$E2E_GUEST_IMAGE`, else `target/guest/guest.elf`.
pub fn guest_image() -> PathBuf {
    if let Some(p) = std::env::var_os("E2E_GUEST_IMAGE") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/guest/guest.elf")
}

/// A VM running the guest image on a switch port of a test's daemon.
pub struct Vm {
    /// The vmm process.
    pub proc: Proc,
    serial: PathBuf,
    stats: PathBuf,
    label: String,
}

impl Vm {
    /// Starts `vmm` with the guest image on `port` (MAC `mac`), guest
    /// arguments `guest_args` and extra vmm options `vmm_args`.
    pub fn start(
        daemon: &Daemon,
        label: &str,
        port: &str,
        mac: &str,
        vmm_args: &[&str],
        guest_args: &str,
    ) -> Result<Vm> {
        let image = guest_image();
        if !image.exists() {
            bail!(
                "no guest image at {} (run `cargo xtask build-guest`)",
                image.display()
            );
        }
        let serial = daemon.dir().join(format!("{label}.serial"));
        let stats = daemon.dir().join(format!("{label}.stats.json"));
        let mut cmd = Command::new(bin_dir().join("vmm"));
        cmd.arg("--kernel")
            .arg(&image)
            .args(["--mem", "64", "--net", port, "--mac", mac])
            .arg("--socket")
            .arg(daemon.socket())
            .arg("--serial")
            .arg(&serial)
            .arg("--stats-json")
            .arg(&stats)
            .args(vmm_args)
            .arg("--")
            .args(guest_args.split_whitespace());
        let proc = Proc::spawn(label, cmd, Capture::Files(daemon.dir().to_owned()))?;
        Ok(Vm {
            proc,
            serial,
            stats,
            label: label.to_owned(),
        })
    }

    /// What the guest printed so far.
    pub fn serial(&self) -> String {
        std::fs::read_to_string(&self.serial).unwrap_or_default()
    }

    /// Waits until the guest printed `needle` (bounded).
    pub fn wait_for_serial(&self, needle: &str, timeout: Duration) -> Result<()> {
        wait_until(timeout, Duration::from_millis(20), || {
            self.serial().contains(needle)
        })
        .with_context(|| {
            format!(
                "{} never printed {needle:?}; serial:\n{}",
                self.label,
                self.serial()
            )
        })?;
        Ok(())
    }

    /// Waits for the VM to exit and returns the guest's JSON result line and
    /// the VMM's final statistics.
    pub fn finish(&mut self, timeout: Duration) -> Result<(Value, Value)> {
        let status = self.proc.wait_timeout(timeout)?.with_context(|| {
            format!(
                "{} did not finish within {timeout:?}; serial:\n{}",
                self.label,
                self.serial()
            )
        })?;
        let serial = self.serial();
        let result = serial
            .lines()
            .rev()
            .find(|l| l.starts_with("{\"result\""))
            .with_context(|| {
                format!(
                    "{} ({status}) printed no result line; serial:\n{serial}\nvmm stderr:\n{}",
                    self.label,
                    self.proc.read_stderr().unwrap_or_default()
                )
            })?;
        let result: Value =
            serde_json::from_str(result).with_context(|| format!("bad result line {result}"))?;
        let stats: Value = std::fs::read(&self.stats)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        if !status.success() {
            bail!(
                "{} exited with {status}: result {result}\nvmm stderr:\n{}",
                self.label,
                self.proc.read_stderr().unwrap_or_default()
            );
        }
        Ok((result, stats))
    }
}
