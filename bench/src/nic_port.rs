//! A NIC port end to end: a `vswitch daemon` process running inside a
//! namespace with a veth attached to `vale0`, and `pktgen` processes on
//! switch ports.
//!
//! ```text
//!  tx: pktgen tx (vale0:gen) -> daemon -> AF_XDP on n0 -> veth -> AF_PACKET rx on p0
//!  rx: AF_PACKET tx on p0 -> veth -> XDP -> AF_XDP on n0 -> daemon -> pktgen rx (vale0:sink)
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;
use switch_user::pktgen::mac_for_port;
use testbed::{wait_until, Daemon, Mac, Netns, Proc};

use crate::af_packet::{self, ReceiverConfig, SenderConfig, TxMethod};
use crate::cpu_cost::CpuWindow;
use crate::pktgen_summary::summary;
use crate::procs::CpuMeter;
use crate::report::Case;

/// The switch port pktgen sends from.
const GEN_PORT: &str = "vale0:gen";
/// The switch port pktgen receives on.
const SINK_PORT: &str = "vale0:sink";

/// The daemon, started in a namespace, with one NIC attached.
pub struct NicSwitch {
    daemon: Daemon,
    nic_port: String,
}

impl NicSwitch {
    /// Starts the daemon from `bin_dir` inside `ns` and attaches `iface`.
    pub fn start(bin_dir: &Path, ns: &Netns, iface: &str) -> Result<NicSwitch> {
        NicSwitch::start_with(bin_dir, ns, iface, &[], &[])
    }

    /// [`NicSwitch::start`] with `daemon_args` for the daemon and
    /// `attach_args` after `attach vale0 IFACE`.
    pub fn start_with(
        bin_dir: &Path,
        ns: &Netns,
        iface: &str,
        daemon_args: &[&str],
        attach_args: &[&str],
    ) -> Result<NicSwitch> {
        let daemon = Daemon::builder()
            .binary(bin_dir.join("vswitch"))
            .netns(ns)
            .args(daemon_args)
            .start()?;
        let switch = NicSwitch {
            daemon,
            nic_port: format!("vale0:{iface}"),
        };
        switch.attach_with(iface, attach_args)?;
        Ok(switch)
    }

    /// Attaches one more interface of the daemon's namespace to `vale0`.
    pub fn attach(&self, iface: &str) -> Result<()> {
        self.attach_with(iface, &[])
    }

    /// [`NicSwitch::attach`] with `extra` options.
    pub fn attach_with(&self, iface: &str, extra: &[&str]) -> Result<()> {
        let mut args = vec!["attach", "vale0", iface];
        args.extend_from_slice(extra);
        let out = self.run(&args)?;
        ensure!(
            out.status.success(),
            "attach {iface}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    /// Whether `vale0` has learned `mac` (from `vswitch fdb`).
    pub fn learned(&self, mac: Mac) -> Result<bool> {
        let out = self.run(&["fdb", "vale0"])?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .to_lowercase()
            .contains(&mac.to_string().to_lowercase()))
    }

    fn run(&self, args: &[&str]) -> Result<Output> {
        Ok(self.daemon.cli(args)?)
    }

    fn spawn(&self, label: &str, args: &[&str]) -> Result<Proc> {
        Ok(self.daemon.spawn(label, args)?)
    }

    /// The daemon's control socket (for VMMs that connect to `vale0`).
    pub fn socket(&self) -> &Path {
        self.daemon.socket()
    }

    /// The NIC's port name (`vale0:IFACE`).
    pub fn nic_port(&self) -> &str {
        &self.nic_port
    }

    /// The counters and extra counters of `port`, flattened into one map.
    pub fn counters(&self, port: &str) -> Result<BTreeMap<String, u64>> {
        let out = self.run(&["stats", port, "--json"])?;
        let stats: Value = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("stats {port}: {}", String::from_utf8_lossy(&out.stderr)))?;
        let mut map = BTreeMap::new();
        if let Some(counters) = stats["ports"][0]["counters"].as_object() {
            for (k, v) in counters {
                map.insert(k.clone(), v.as_u64().unwrap_or(0));
            }
        }
        for pair in stats["ports"][0]["extra"].as_array().into_iter().flatten() {
            if let (Some(k), Some(v)) = (pair[0].as_str(), pair[1].as_u64()) {
                map.insert(k.to_owned(), v);
            }
        }
        Ok(map)
    }

    fn wait_port(&self, port: &str) -> Result<()> {
        wait_until(Duration::from_secs(10), Duration::from_millis(10), || {
            self.run(&["list", "--json"])
                .map(|o| String::from_utf8_lossy(&o.stdout).contains(port))
                .unwrap_or(false)
        })
        .with_context(|| format!("port {port} did not appear"))?;
        Ok(())
    }

    /// Stops the daemon (SIGTERM), which detaches the NIC.
    pub fn stop(mut self) -> Result<()> {
        self.daemon.stop()?;
        Ok(())
    }
}

/// What one NIC-port run measured.
#[derive(Clone, Debug)]
pub struct NicResult {
    /// Frames per second that reached the far end intact.
    pub pps: f64,
    /// Frames per second offered by the sender.
    pub offered_pps: f64,
    /// Frames per second the NIC port itself moved: taken from its sockets
    /// into the switch (rx), or put on its sockets' TX rings (tx).
    pub port_pps: f64,
    /// Frames sent and not received.
    pub lost: u64,
    /// Frames that failed verification at the receiver.
    pub corrupt: u64,
    /// Average cores used by the daemon and the pktgen process.
    pub cores: f64,
    /// Busy CPU nanoseconds of the machine per frame that arrived, while
    /// the sender ran.
    pub cpu_ns_per_packet: Option<f64>,
    /// Counter changes of the NIC port (drops, kernel socket drops).
    pub nic_counters: BTreeMap<String, u64>,
}

/// The report case of a NIC-port run `r` (frame `size`, `direction` rx
/// or tx), its non-zero NIC counters included.
pub fn nic_case(name: &str, direction: &str, size: usize, r: &NicResult) -> Case {
    let mut case = Case::new(name, "nic_port", size, r.pps)
        .with_cpu(r.cpu_ns_per_packet)
        .with("direction", direction)
        .with("tx_mpps", r.offered_pps / 1e6)
        .with("port_mpps", r.port_pps / 1e6)
        .with("lost", r.lost)
        .with("corrupt", r.corrupt)
        .with("cores_used", r.cores);
    for (k, v) in &r.nic_counters {
        if *v > 0 {
            case = case.with(k, v);
        }
    }
    case
}

/// What a pktgen tx run reported, with the CPU it and the daemon used.
struct PktgenTx {
    /// pktgen's JSON summary.
    tx: Value,
    /// Frames it sent.
    sent: u64,
    /// Seconds it sent for.
    tx_secs: f64,
    /// Average cores of the daemon and pktgen.
    cores: f64,
    /// Busy CPU seconds of the machine meanwhile.
    busy: Option<f64>,
}

fn delta(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    keys: &[&str],
) -> BTreeMap<String, u64> {
    keys.iter()
        .map(|k| {
            let d = after
                .get(*k)
                .copied()
                .unwrap_or(0)
                .saturating_sub(before.get(*k).copied().unwrap_or(0));
            (k.to_string(), d)
        })
        .collect()
}

/// Counters of the NIC port worth reporting.
const NIC_KEYS: &[&str] = &[
    "drop_ring_full",
    "xsk_fill_ring_empty",
    "xsk_rx_ring_full",
    "xdp_redirect_failures",
];

impl NicSwitch {
    /// pktgen tx -> switch -> NIC port -> veth -> AF_PACKET receiver on
    /// `peer_if` in `peer`, for `seconds`.
    pub fn measure_tx(
        &self,
        peer: &Netns,
        peer_if: &str,
        frame_len: usize,
        seconds: f64,
    ) -> Result<NicResult> {
        let src = Mac(mac_for_port(GEN_PORT).0);
        let dst = peer.mac(peer_if)?;
        let receiver = af_packet::spawn_receiver(
            peer,
            ReceiverConfig {
                ifname: peer_if.to_owned(),
                expect_src: Some(src),
                max_duration: Duration::from_secs_f64(seconds + 20.0),
            },
        )?;
        let before = self.counters(&self.nic_port)?;
        let PktgenTx {
            tx,
            sent,
            tx_secs,
            cores,
            busy,
        } = self.pktgen_tx(dst, frame_len, seconds)?;
        let _ = wait_until(Duration::from_secs(1), Duration::from_millis(5), || {
            receiver.packets() >= sent
        });
        std::thread::sleep(Duration::from_millis(50));
        let rx = receiver.finish()?;
        let after = self.counters(&self.nic_port)?;
        if tx_secs <= 0.0 || rx.packets == 0 {
            bail!("nothing crossed the NIC port: tx {tx}, rx {rx:?}");
        }
        let port_tx = after["tx_packets"].saturating_sub(before["tx_packets"]);
        Ok(NicResult {
            pps: rx.packets as f64 / tx_secs,
            offered_pps: sent as f64 / tx_secs,
            port_pps: port_tx as f64 / tx_secs,
            lost: sent.saturating_sub(rx.packets),
            corrupt: rx.corrupt,
            cores,
            cpu_ns_per_packet: busy.map(|b| b * 1e9 / rx.packets as f64),
            nic_counters: delta(&before, &after, NIC_KEYS),
        })
    }

    /// Runs pktgen tx on [`GEN_PORT`] for `seconds` (frames of
    /// `frame_len` bytes to `dst`), metering the CPU of it and the daemon.
    fn pktgen_tx(&self, dst: Mac, frame_len: usize, seconds: f64) -> Result<PktgenTx> {
        let size = frame_len.to_string();
        let secs = seconds.to_string();
        let dst_s = dst.to_string();
        let mut gen = self.spawn(
            "gen",
            &[
                "pktgen",
                GEN_PORT,
                "--mode",
                "tx",
                "--size",
                &size,
                "--duration",
                &secs,
                "--dst-mac",
                &dst_s,
                "--json",
                "-q",
            ],
        )?;
        let meter = CpuMeter::start(&[self.daemon.pid(), gen.pid()]);
        let cpu = CpuWindow::start();
        let tx = summary(&mut gen, Duration::from_secs_f64(seconds + 30.0))?;
        let cores = meter.cores();
        let busy = cpu.busy_seconds();
        let sent = tx["packets"].as_u64().unwrap_or(0);
        let tx_secs = tx["seconds"].as_f64().unwrap_or(0.0);
        Ok(PktgenTx {
            tx,
            sent,
            tx_secs,
            cores,
            busy,
        })
    }

    /// pktgen tx -> switch -> NIC port -> veth -> a counter at the far end
    /// (`received()`: frames counted so far, such as an XDP sink's), frames
    /// addressed to `dst`, for `seconds`. The counter does not verify
    /// frames: `corrupt` stays 0.
    pub fn measure_tx_counted(
        &self,
        dst: Mac,
        frame_len: usize,
        seconds: f64,
        received: impl Fn() -> Result<u64>,
    ) -> Result<NicResult> {
        let before = self.counters(&self.nic_port)?;
        let start_count = received()?;
        let PktgenTx {
            tx,
            sent,
            tx_secs,
            cores,
            busy,
        } = self.pktgen_tx(dst, frame_len, seconds)?;
        let count = || received().map(|n| n.saturating_sub(start_count));
        let _ = wait_until(Duration::from_secs(1), Duration::from_millis(5), || {
            count().unwrap_or(0) >= sent
        });
        let got = count()?;
        let after = self.counters(&self.nic_port)?;
        if tx_secs <= 0.0 || got == 0 {
            bail!("nothing crossed the NIC port: tx {tx}, counted {got}");
        }
        let port_tx = after["tx_packets"].saturating_sub(before["tx_packets"]);
        Ok(NicResult {
            pps: got as f64 / tx_secs,
            offered_pps: sent as f64 / tx_secs,
            port_pps: port_tx as f64 / tx_secs,
            lost: sent.saturating_sub(got),
            corrupt: 0,
            cores,
            cpu_ns_per_packet: busy.map(|b| b * 1e9 / got as f64),
            nic_counters: delta(&before, &after, NIC_KEYS),
        })
    }

    /// AF_PACKET sender on `peer_if` in `peer` -> veth -> NIC port ->
    /// switch -> pktgen rx, for `seconds`; frames are addressed to `dst`.
    pub fn measure_rx(
        &self,
        peer: &Netns,
        peer_if: &str,
        dst: Mac,
        frame_len: usize,
        seconds: f64,
    ) -> Result<NicResult> {
        let src = peer.mac(peer_if)?;
        self.measure_rx_from(frame_len, seconds, || {
            let tx = af_packet::send_in(
                peer,
                &SenderConfig {
                    ifname: peer_if.to_owned(),
                    frame_len,
                    src,
                    dst,
                    batch: af_packet::DEFAULT_BATCH,
                    duration: Duration::from_secs_f64(seconds),
                    max_packets: u64::MAX,
                    method: TxMethod::Sendmmsg,
                },
            )?;
            Ok((tx.packets, tx.seconds))
        })
    }

    /// `send` (returning frames sent and seconds of sending) -> veth -> NIC
    /// port -> switch -> pktgen rx.
    pub fn measure_rx_from(
        &self,
        frame_len: usize,
        seconds: f64,
        send: impl FnOnce() -> Result<(u64, f64)>,
    ) -> Result<NicResult> {
        let size = frame_len.to_string();
        let limit = format!("{}", seconds + 20.0);
        let mut sink = self.spawn(
            "sink",
            &[
                "pktgen",
                SINK_PORT,
                "--mode",
                "rx",
                "--size",
                &size,
                "--idle-timeout",
                "1",
                "--duration",
                &limit,
                "--json",
                "-q",
            ],
        )?;
        self.wait_port(SINK_PORT)?;
        let before = self.counters(&self.nic_port)?;
        let meter = CpuMeter::start(&[self.daemon.pid(), sink.pid()]);
        let cpu = CpuWindow::start();
        let (sent, tx_secs) = send()?;
        let cores = meter.cores();
        let busy = cpu.busy_seconds();
        // pktgen may already have gone (idle timeout): no counters then.
        let sink_counters = self.counters(SINK_PORT).unwrap_or_default();
        let rx = summary(&mut sink, Duration::from_secs_f64(seconds + 30.0))?;
        let after = self.counters(&self.nic_port)?;
        // The line-rate source repeats each frame (same sequence number):
        // pktgen counts the repeats as duplicates.
        let received = rx["packets"].as_u64().unwrap_or(0) + rx["duplicates"].as_u64().unwrap_or(0);
        if received == 0 || tx_secs <= 0.0 {
            bail!("nothing crossed the NIC port: sent {sent} in {tx_secs} s, rx {rx}");
        }
        let port_rx = after["rx_packets"].saturating_sub(before["rx_packets"]);
        let mut nic_counters = delta(&before, &after, NIC_KEYS);
        nic_counters.insert(
            "sink_drop_ring_full".into(),
            sink_counters.get("drop_ring_full").copied().unwrap_or(0),
        );
        Ok(NicResult {
            pps: received as f64 / tx_secs,
            offered_pps: sent as f64 / tx_secs,
            port_pps: port_rx as f64 / tx_secs,
            lost: sent.saturating_sub(received),
            corrupt: rx["corrupt"].as_u64().unwrap_or(0),
            cores,
            cpu_ns_per_packet: busy.map(|b| b * 1e9 / received as f64),
            nic_counters,
        })
    }
}
