//! The VXLAN cases of `bench switch`: frames through an encapsulation and
//! a decapsulation, beside plain forwarding in the same run.
//!
//! - **Ours**: `pktgen tx -> daemon A -> tunnel port -> veth underlay ->
//!   tunnel port -> daemon B -> pktgen rx`, the two daemons in two
//!   namespaces (two "hosts"), shared-memory ports at both ends; once with
//!   the tunnels on the kernel's UDP path (sockets), once with
//!   `--underlay-xdp` (AF_XDP sockets on the underlay veths, copy mode).
//! - **Linux**: AF_PACKET sender -> veth -> bridge + `vxlan` device ->
//!   the same underlay -> `vxlan` device + bridge -> veth -> AF_PACKET
//!   receiver.
//!
//! The underlay's MTU is 3000 (and the tunnels' `--underlay-mtu`), so
//! 1514-byte frames fit after the 50 bytes of VXLAN overhead, and native
//! XDP on the veths takes it (one page per frame).

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use testbed::{wait_until, Daemon, Netns};

use crate::af_packet::{self, PeerConfig};
use crate::cpu_cost::CpuWindow;
use crate::peer_case::{af_packet_case, PairPath};
use crate::pktgen_summary::summary;
use crate::procs::CpuMeter;
use crate::repeat::repeat;
use crate::report::{Case, Report};

/// Our tunnel between two daemons.
pub const OURS: &str = "vxlan: pktgen > vswitch > tunnel > veth > tunnel > vswitch > pktgen";
/// Our tunnel between two daemons with AF_XDP underlays.
pub const OURS_XDP: &str =
    "vxlan: pktgen > vswitch > tunnel (AF_XDP) > veth > tunnel (AF_XDP) > vswitch > pktgen";
/// Linux's vxlan devices on bridges.
pub const LINUX: &str = "vxlan: AF_PACKET > veth > br+vxlan > veth > vxlan+br > veth > AF_PACKET";
const UNDERLAY_MTU: u32 = 3000;
const VNI: &str = "42";
const ADDR: [&str; 2] = ["192.168.78.1", "192.168.78.2"];

/// Two namespaces joined by the underlay veth `ul0` (192.168.78.1 and .2).
struct Underlay {
    hosts: [Netns; 2],
}

fn underlay() -> Result<Underlay> {
    let a = Netns::new(testbed::DEFAULT_PREFIX)?;
    let b = Netns::new(testbed::DEFAULT_PREFIX)?;
    a.add_veth("ul0", "ul0", Some(&b), None)?;
    for (ns, addr) in [(&a, ADDR[0]), (&b, ADDR[1])] {
        ns.disable_ipv6()?;
        ns.set_mtu("ul0", UNDERLAY_MTU)?;
        ns.add_addr("ul0", &format!("{addr}/24"))?;
        ns.set_up("ul0")?;
    }
    wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
        a.is_lower_up("ul0").unwrap_or(false) && b.is_lower_up("ul0").unwrap_or(false)
    })
    .context("the underlay did not come up")?;
    Ok(Underlay { hosts: [a, b] })
}

/// What our tunnel case measured.
struct TunnelResult {
    rx_pps: f64,
    tx_pps: f64,
    lost: u64,
    corrupt: u64,
    cores_used: f64,
    cpu_ns_per_packet: Option<f64>,
}

fn ours(bin_dir: &Path, size: usize, seconds: f64, xdp: bool) -> Result<TunnelResult> {
    let net = underlay()?;
    let mut daemons = Vec::new();
    for (i, ns) in net.hosts.iter().enumerate() {
        let d = Daemon::builder()
            .binary(bin_dir.join("vswitch"))
            .netns(ns)
            .start()?;
        let mtu = UNDERLAY_MTU.to_string();
        let mut args = vec![
            "tunnel",
            "add",
            "vale0",
            "vx",
            "--vni",
            VNI,
            "--local",
            ADDR[i],
            "--remote",
            ADDR[1 - i],
            "--underlay-mtu",
            &mtu,
        ];
        if xdp {
            args.push("--underlay-xdp");
        }
        let out = d.cli(&args)?;
        if !out.status.success() {
            bail!(
                "tunnel add failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        daemons.push(d);
    }
    let size_s = size.to_string();
    let mut rx = daemons[1].spawn(
        "rx",
        &[
            "pktgen",
            "vale0:rx",
            "--mode",
            "rx",
            "--size",
            &size_s,
            "--json",
            "-q",
            "--idle-timeout",
            "1",
        ],
    )?;
    wait_until(Duration::from_secs(10), Duration::from_millis(10), || {
        daemons[1]
            .cli(&["list", "--json"])
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("vale0:rx"))
            .unwrap_or(false)
    })
    .context("the receiver did not open its port")?;
    let secs = format!("{seconds}");
    let mut tx = daemons[0].spawn(
        "tx",
        &[
            "pktgen",
            "vale0:tx",
            "--mode",
            "tx",
            "--size",
            &size_s,
            "--duration",
            &secs,
            "--json",
            "-q",
            "--dst-mac",
            "02:00:00:00:00:01",
        ],
    )?;
    let meter = CpuMeter::start(&[tx.pid(), daemons[0].pid(), daemons[1].pid(), rx.pid()]);
    let cpu = CpuWindow::start();
    let limit = Duration::from_secs_f64(seconds + 30.0);
    let tx_sum = summary(&mut tx, limit)?;
    let cores = meter.cores();
    let busy = cpu.busy_seconds();
    let rx_sum = summary(&mut rx, limit)?;
    for d in &mut daemons {
        d.stop()?;
    }
    drop(daemons);
    drop(net);
    let sent = tx_sum["packets"].as_u64().unwrap_or(0);
    let received = rx_sum["packets"].as_u64().unwrap_or(0);
    let rx_secs = rx_sum["seconds"].as_f64().unwrap_or(0.0);
    if received == 0 || rx_secs <= 0.0 {
        bail!("the receiver got nothing: {rx_sum}");
    }
    Ok(TunnelResult {
        rx_pps: received as f64 / rx_secs,
        tx_pps: sent as f64 / tx_sum["seconds"].as_f64().unwrap_or(1.0),
        lost: sent.saturating_sub(received),
        corrupt: rx_sum["corrupt"].as_u64().unwrap_or(0),
        cores_used: cores,
        cpu_ns_per_packet: busy.map(|b| b * 1e9 / received as f64),
    })
}

/// The Linux path: `tx0` (ns tx) - `tx0p` on br0 with vx0 (underlay host
/// A) - underlay - vx0 on br0 with `rx0p` (host B) - `rx0` (ns rx).
struct LinuxPath {
    net: Underlay,
    tx: Netns,
    rx: Netns,
}

fn linux_path(size: usize) -> Result<LinuxPath> {
    let net = underlay()?;
    let tx = Netns::new(testbed::DEFAULT_PREFIX)?;
    let rx = Netns::new(testbed::DEFAULT_PREFIX)?;
    let mtu = af_packet::mtu_for(size);
    for (i, (host, (end, far, far_ns))) in net
        .hosts
        .iter()
        .zip([("tx0p", "tx0", &tx), ("rx0p", "rx0", &rx)])
        .enumerate()
    {
        far_ns.disable_ipv6()?;
        host.ip([
            "link",
            "add",
            "vx0",
            "type",
            "vxlan",
            "id",
            VNI,
            "local",
            ADDR[i],
            "remote",
            ADDR[1 - i],
            "dstport",
            "4789",
            "dev",
            "ul0",
        ])?;
        host.add_bridge("br0")?;
        host.add_veth(end, far, Some(far_ns), None)?;
        for port in [end, "vx0"] {
            host.set_mtu(port, mtu)?;
            host.enslave(port, "br0")?;
            host.set_up(port)?;
        }
        host.set_up("br0")?;
        far_ns.set_mtu(far, mtu)?;
        far_ns.set_up(far)?;
    }
    wait_until(Duration::from_secs(10), Duration::from_millis(10), || {
        net.hosts.iter().zip(["tx0p", "rx0p"]).all(|(h, end)| {
            [end, "vx0"]
                .iter()
                .all(|p| h.bridge_port_state(p).ok().as_deref() == Some("forwarding"))
        }) && tx.is_lower_up("tx0").unwrap_or(false)
            && rx.is_lower_up("rx0").unwrap_or(false)
    })
    .context("the bridges' ports did not reach the forwarding state")?;
    Ok(LinuxPath { net, tx, rx })
}

/// Adds the VXLAN cases for every size to `report`, and a note comparing
/// them with plain forwarding (`plain`, the shared-memory case of the same
/// run).
pub fn run(
    bin_dir: &Path,
    sizes: &[usize],
    duration: Duration,
    repeats: usize,
    plain: &str,
    report: &mut Report,
    notes: &mut Vec<String>,
) -> Result<()> {
    for &size in sizes {
        for (name, id, xdp) in [(OURS, "vxlan_shm", false), (OURS_XDP, "vxlan_xdp", true)] {
            report.push(repeat(repeats, || {
                let r = ours(bin_dir, size, duration.as_secs_f64(), xdp)?;
                Ok(Case::new(name, id, size, r.rx_pps)
                    .with_cpu(r.cpu_ns_per_packet)
                    .with("tx_mpps", r.tx_pps / 1e6)
                    .with("lost", r.lost)
                    .with("corrupt", r.corrupt)
                    .with("processes", 4)
                    .with("cores_used", r.cores_used))
            })?);
        }
        report.push(repeat(repeats, || {
            let path = linux_path(size)?;
            let case = af_packet_case(
                LINUX,
                "vxlan_linux",
                &PairPath {
                    tx_ns: &path.tx,
                    tx_if: "tx0",
                    rx_ns: &path.rx,
                    rx_if: "rx0",
                },
                &PeerConfig::new(size, duration),
            );
            drop(path.net);
            case
        })?);
        if let (Some(vxlan), Some(plain)) = (report.mpps(OURS, size), report.mpps(plain, size)) {
            notes.push(format!(
                "{size} B: VXLAN encap+decap between two daemons delivers {vxlan:.3} Mpps, \
                 {:.0}% of plain shared-memory forwarding (one daemon, {plain:.3} Mpps); \
                 Linux's vxlan on bridges {:.3} Mpps",
                100.0 * vxlan / plain.max(1e-9),
                report.mpps(LINUX, size).unwrap_or(0.0)
            ));
        }
        if let (Some(xdp), Some(socket), Some(linux)) = (
            report.mpps(OURS_XDP, size),
            report.mpps(OURS, size),
            report.mpps(LINUX, size),
        ) {
            notes.push(format!(
                "{size} B: VXLAN with AF_XDP underlays {xdp:.3} Mpps: {:.2}x Linux's vxlan \
                 ({linux:.3} Mpps), {:.2}x our tunnel on the UDP path ({socket:.3} Mpps){}",
                xdp / linux.max(1e-9),
                xdp / socket.max(1e-9),
                report
                    .mpps(crate::equal_path::SWITCH, size)
                    .map(|l2| format!(
                        ", {:.2}x plain L2 forwarding through two NIC ports on the same veths \
                         ({l2:.3} Mpps)",
                        xdp / l2.max(1e-9)
                    ))
                    .unwrap_or_default()
            ));
        }
    }
    Ok(())
}
