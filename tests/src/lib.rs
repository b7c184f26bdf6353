//! The end-to-end test harness: a real `vswitch daemon` process (testbed's
//! [`testbed::Daemon`]) with what the tests ask of it through the CLI and
//! the control protocol, and VMs running the guest image on its ports
//! (testbed's [`testbed::Vm`]). Everything started here is ended by PID when
//! dropped.

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use switch_port::client::{PortClient, PortConfig};
use switch_port::control::client::Connection;
use switch_port::protocol::{CounterSnapshot, PortInfo, Request, Response};
use testbed::{wait_until, Netns, Proc};

pub use testbed::{bin_dir, guest_image, run_bounded, vswitch_bin};

pub mod access;
pub mod nic;
pub mod tcp_transfer;
pub mod tunnel;
pub mod udp_echo;

/// How long [`Daemon::settled_counters`] waits for a port's counters to
/// account for every frame sent towards it.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A daemon started for one test: testbed's launcher (its socket, log, CLI
/// and PID are reached through `Deref`) plus the switch's own queries.
pub struct Daemon {
    inner: testbed::Daemon,
}

impl Deref for Daemon {
    type Target = testbed::Daemon;

    fn deref(&self) -> &testbed::Daemon {
        &self.inner
    }
}

impl DerefMut for Daemon {
    fn deref_mut(&mut self) -> &mut testbed::Daemon {
        &mut self.inner
    }
}

impl Daemon {
    /// A daemon started with testbed's builder (for options such as
    /// `state`).
    pub fn wrap(inner: testbed::Daemon) -> Daemon {
        Daemon { inner }
    }

    /// Starts `vswitch daemon` with `args` on a fresh socket and waits until
    /// it answers.
    pub fn start(args: &[&str]) -> Result<Daemon> {
        let inner = testbed::Daemon::builder()
            .args(args)
            .env("RUST_LOG", "info")
            .start()?;
        Ok(Daemon { inner })
    }

    /// Starts `vswitch daemon` with `args` inside the network namespace
    /// `ns` on a fresh socket and waits until it answers. NICs it attaches
    /// and TAPs it creates are those of `ns`; the socket is a file, so the
    /// CLI and clients reach it from any namespace.
    pub fn start_in(ns: &Netns, args: &[&str]) -> Result<Daemon> {
        let inner = testbed::Daemon::builder()
            .netns(ns)
            .args(args)
            .env("RUST_LOG", "info")
            .start()?;
        Ok(Daemon { inner })
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

    /// Starts `vswitch pktgen PORT --mode rx --json -q` with `extra`
    /// options and waits until its port exists.
    pub fn pktgen_rx(&self, port: &str, extra: &[&str]) -> Result<Proc> {
        let mut args = vec!["pktgen", port, "--mode", "rx", "--json", "-q"];
        args.extend_from_slice(extra);
        let proc = self.spawn(&format!("rx-{}", port.replace(':', "-")), &args)?;
        // Waiting for the port to exist is not enough: a persistent port
        // exists before its client attaches, and frames sent to it until
        // then are dropped as `drop_no_client`.
        self.wait_client(port)?;
        Ok(proc)
    }

    /// Starts `vswitch pktgen PORT --mode tx --json -q` with `extra` options.
    pub fn pktgen_tx(&self, port: &str, extra: &[&str]) -> Result<Proc> {
        let mut args = vec!["pktgen", port, "--mode", "tx", "--json", "-q"];
        args.extend_from_slice(extra);
        Ok(self.spawn(&format!("tx-{}", port.replace(':', "-")), &args)?)
    }

    /// Opens a port in this process.
    pub fn open(&self, port: &str) -> Result<PortClient> {
        Ok(PortClient::open(
            self.socket(),
            port,
            PortConfig::default(),
        )?)
    }

    /// A control connection.
    pub fn connect(&self) -> Result<Connection> {
        Ok(Connection::connect(self.socket())?)
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
    /// has been delivered or dropped; an error showing the last reading
    /// when that has not happened within [`SETTLE_TIMEOUT`].
    pub fn settled_counters(&self, port: &str, total: u64) -> Result<CounterSnapshot> {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let c = self.counters(port)?;
            if c.tx_packets + c.drops() >= total {
                return Ok(c);
            }
            if Instant::now() > deadline {
                bail!(
                    "port {port} accounted for {} of {total} frames (delivered + dropped) \
                     within {SETTLE_TIMEOUT:?}: {c:?}",
                    c.tx_packets + c.drops()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every port of every switch now.
    fn ports(&self) -> Result<Vec<PortInfo>> {
        let mut conn = self.connect()?;
        match conn.call(&Request::List {})? {
            (Response::List { switches }, _) => {
                Ok(switches.into_iter().flat_map(|s| s.ports).collect())
            }
            other => bail!("unexpected list answer {other:?}"),
        }
    }

    /// Names of the ports that exist now.
    pub fn port_names(&self) -> Result<Vec<String>> {
        Ok(self
            .ports()?
            .into_iter()
            .map(|p| p.name.to_string())
            .collect())
    }

    /// Waits until whether `port` has a client (an absent port has none)
    /// is `attached`.
    fn wait_attached(&self, port: &str, attached: bool) -> Result<()> {
        wait_until(Duration::from_secs(10), Duration::from_millis(5), || {
            self.ports().is_ok_and(|ports| {
                ports
                    .iter()
                    .any(|p| p.name.to_string() == port && p.clients > 0)
                    == attached
            })
        })?;
        Ok(())
    }

    /// Waits until `port` has a client attached.
    pub fn wait_client(&self, port: &str) -> Result<()> {
        self.wait_attached(port, true)
            .with_context(|| format!("no client attached to port {port}"))
    }

    /// Waits until `port` has no client (or does not exist): the daemon
    /// has seen the last one leave. A client's process may exit well
    /// before that; until then its port cannot be opened, created or
    /// deleted.
    pub fn wait_no_client(&self, port: &str) -> Result<()> {
        self.wait_attached(port, false)
            .with_context(|| format!("port {port} kept its client"))
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

/// Asserts that a receiving pktgen (its summary `rx_sum`) got exactly what
/// the switch delivered to its port (`port`), and that the port accounted
/// for all `sent` frames as delivered or dropped at its full ring.
#[track_caller]
pub fn assert_all_accounted(rx_sum: &Value, port: &CounterSnapshot, sent: u64) {
    assert_eq!(
        field(rx_sum, "packets"),
        port.tx_packets,
        "received {rx_sum}, port {port:?}"
    );
    assert_eq!(
        port.tx_packets + port.drop_ring_full,
        sent,
        "frames unaccounted for at the port: {port:?}"
    );
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

/// A VM running the guest image on a switch port of a test's daemon.
pub struct Vm {
    /// The VM (its monitor process is the vmm).
    pub vm: testbed::Vm,
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
        let vm = testbed::Vm::ours(guest_image())
            .label(label)
            .dir(daemon.dir())
            .mem_mib(64)
            .net(port)
            .mac(mac)
            .socket(daemon.socket())
            .stats_json()
            .args(vmm_args)
            .guest_args(guest_args)
            .start()?;
        Ok(Vm { vm })
    }

    /// Starts the VM `vm-pong` on `vale0:pong` (MAC `mac`, no extra vmm
    /// options) running `guest_args` (a `pong ...` workload) and waits until
    /// the guest is answering.
    pub fn start_pong(daemon: &Daemon, mac: &str, guest_args: &str) -> Result<Vm> {
        let pong = Vm::start(daemon, "vm-pong", "vale0:pong", mac, &[], guest_args)?;
        pong.wait_for_serial("guest: pong", Duration::from_secs(30))?;
        Ok(pong)
    }

    /// What the guest printed so far.
    pub fn serial(&self) -> String {
        self.vm.serial()
    }

    /// Waits until the guest printed `needle` (bounded).
    pub fn wait_for_serial(&self, needle: &str, timeout: Duration) -> Result<()> {
        Ok(self.vm.wait_for_serial(needle, timeout)?)
    }

    /// Waits for the VM to exit and returns the guest's JSON result line and
    /// the VMM's final statistics.
    pub fn finish(&mut self, timeout: Duration) -> Result<(Value, Value)> {
        let outcome = self.vm.finish(timeout)?;
        let label = self.vm.label();
        if outcome.timed_out() {
            bail!(
                "{label} did not finish within {timeout:?}; serial:\n{}",
                outcome.serial
            );
        }
        let result = outcome
            .result_line()
            .with_context(|| format!("{label} printed no result line; {}", outcome.report()))?;
        let result: Value =
            serde_json::from_str(result).with_context(|| format!("bad result line {result}"))?;
        let stats: Value = outcome
            .stats
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default();
        if outcome.code() != Some(0) {
            bail!(
                "{label} exited with {:?}: result {result}\nvmm stderr:\n{}",
                outcome.exit,
                outcome.stderr
            );
        }
        Ok((result, stats))
    }
}

/// The once-a-second statistics (`--stats-json`) of the VM `label` whose
/// files are in `dir`, if written yet.
pub fn live_stats(dir: &Path, label: &str) -> Option<Value> {
    let text = std::fs::read_to_string(dir.join(format!("{label}.stats.json"))).ok()?;
    serde_json::from_str(&text).ok()
}

/// What [`vm_to_vm`] measured: both guests' result lines and both VMMs'
/// final statistics.
pub struct VmToVm {
    /// The sender's result line.
    pub sent: Value,
    /// The receiver's result line.
    pub got: Value,
    /// The sender VMM's final statistics.
    pub tx_stats: Value,
    /// The receiver VMM's final statistics.
    pub rx_stats: Value,
}

/// Guest tx -> guest rx of `frames` on a fresh daemon, both VMs with
/// `vmm_args` and MACs `52:54:00:00:<subnet>:01` (rx) and `:02` (tx); checks
/// that every frame arrived once, intact.
pub fn vm_to_vm(
    name: &str,
    subnet: u8,
    frames: u64,
    vmm_args: &[&str],
    sender: &str,
    receiver: &str,
) -> Result<VmToVm> {
    let daemon = Daemon::start(&[])?;
    let rx_mac = format!("52:54:00:00:{subnet:02x}:01");
    let mut rx = Vm::start(
        &daemon,
        &format!("{name}-rx"),
        "vale0:rx",
        &rx_mac,
        vmm_args,
        &format!("rx count={frames} {receiver}"),
    )?;
    rx.wait_for_serial("guest: rx", Duration::from_secs(30))?;
    let mut tx = Vm::start(
        &daemon,
        &format!("{name}-tx"),
        "vale0:tx",
        &format!("52:54:00:00:{subnet:02x}:02"),
        vmm_args,
        &format!("tx count={frames} dst={rx_mac} {sender}"),
    )?;
    let (sent, tx_stats) = tx.finish(Duration::from_secs(300))?;
    let (got, rx_stats) = rx.finish(Duration::from_secs(60))?;
    assert_eq!(field(&sent, "frames"), frames, "{name}: {sent}");
    assert_eq!(field(&got, "unique"), frames, "{name}: receiver {got}");
    assert_eq!(field(&got, "lost"), 0, "{name}: {got}");
    assert_eq!(field(&got, "corrupt"), 0, "{name}: {got}");
    assert_eq!(field(&got, "duplicates"), 0, "{name}: {got}");
    Ok(VmToVm {
        sent,
        got,
        tx_stats,
        rx_stats,
    })
}
