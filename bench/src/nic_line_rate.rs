//! `bench nic`'s line-rate cases: every receive case is driven by the
//! line-rate source ([`bench::line_source`]) instead of an AF_PACKET
//! sender, and every transmit case ends in a counting XDP sink
//! ([`bench::xdp_sink`]) instead of an AF_PACKET receiver, so the port is
//! measured, not the socket at the other end.
//!
//! ```text
//!  ns peer: p0 <-veth-> n0 :ns switch
//!
//!  source ceiling  source on p0 -> XDP drop on n0 (what the source offers)
//!  raw_afxdp   rx  source on p0 -> XDP -> one XskQueue on n0 (counting loop)
//!  nic_port    rx  source on p0 -> NIC port n0 -> daemon -> pktgen rx
//!  raw_afxdp   tx  one XskQueue on n0 -> veth -> XDP count on p0
//!  nic_port    tx  pktgen tx -> daemon -> NIC port n0 -> veth -> XDP count on p0
//!
//!  equal paths (crate::linux_bridge's namespaces):
//!  linux_bridge    source on tx0 -> veth -> br0 -> veth -> XDP count on rx0
//!  nic_port        source on tx0 -> veth -> NIC port -> vswitch -> NIC port -> veth -> XDP count
//! ```
//!
//! The source's thread is pinned to CPU 0; with a veth, the receiving
//! side's XDP program runs in the NAPI of the sending CPU, as a NIC's
//! interrupt would pin it, and the port's thread gets the other CPU.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use bench::line_source::{FrameSpec, LineSource, Mechanism, SendStats};
use bench::xdp_sink::{SinkVerdict, XdpSink};
use testbed::{Mac, Netns};

use crate::cpu_cost::CpuWindow;
use crate::equal_path::switch_in_place_of_bridge;
use crate::linux_bridge::{BridgeTopology, RX_MAC, TX_MAC};
use crate::nic_port::{nic_case, NicSwitch};
use crate::raw_afxdp;
use crate::repeat::repeat;
use crate::report::{Case, Report};
use crate::veth_pair::{VethPair, PEER_IF, PEER_MAC, SWITCH_IF, SWITCH_MAC};

/// The source into an XDP drop program: what the source can offer.
pub const SOURCE: &str = "line-rate source -> veth -> XDP drop";
/// Raw AF_XDP receive.
pub const RAW_RX: &str = "line-rate -> veth -> XDP -> 1 XSK loop";
/// Our NIC port receiving into a shared-memory port.
pub const NIC_RX: &str = "line-rate -> veth -> NIC port -> pktgen rx";
/// Raw AF_XDP transmit.
pub const RAW_TX: &str = "1 XSK loop -> veth -> XDP count";
/// Our NIC port transmitting from a shared-memory port.
pub const NIC_TX: &str = "pktgen tx -> NIC port -> veth -> XDP count";
/// The Linux bridge between two veths.
pub const BRIDGE: &str = "line-rate -> veth -> Linux bridge -> veth -> XDP count";
/// vswitch with two NIC ports on the same veths.
pub const SWITCH: &str =
    "line-rate -> veth -> NIC port -> vswitch -> NIC port -> veth -> XDP count";

/// Flows (source MACs) the source spreads its frames over.
const FLOWS: u16 = 4;
/// The CPU the source runs on.
const SOURCE_CPU: usize = 0;

/// Runs the source on `ifname` in `ns` for `duration`.
fn send_in(
    ns: &Netns,
    ifname: &str,
    spec: FrameSpec,
    mechanism: Mechanism,
    duration: Duration,
) -> Result<SendStats> {
    send_on(ns, ifname, spec, mechanism, duration, SOURCE_CPU)
}

/// Runs the source on `ifname` in `ns` for `duration`, from a thread
/// pinned to `cpu`.
pub fn send_on(
    ns: &Netns,
    ifname: &str,
    spec: FrameSpec,
    mechanism: Mechanism,
    duration: Duration,
    cpu: usize,
) -> Result<SendStats> {
    let ifname = ifname.to_owned();
    ns.run_in(move || -> Result<SendStats> {
        testbed::pin_to_cpu(cpu)?;
        let mut source = LineSource::open(&ifname, &spec, Some(mechanism))
            .with_context(|| format!("line-rate source on {ifname}"))?;
        Ok(source.send_for(duration)?)
    })?
}

/// Attaches a counting XDP sink to `ifname` in `ns`.
pub fn attach_sink(ns: &Netns, ifname: &str, verdict: SinkVerdict) -> Result<XdpSink> {
    let ifname = ifname.to_owned();
    ns.run_in(move || XdpSink::attach(&ifname, verdict))?
        .map_err(|e| anyhow!(e).context("attaching the XDP counting sink"))
}

/// The source's frames: `size` bytes from `src` (spread over the flows) to `dst`.
pub fn spec(size: usize, src: Mac, dst: Mac) -> FrameSpec {
    FrameSpec {
        size,
        dst: dst.0,
        src: src.0,
        flows: FLOWS,
    }
}

/// Counts at `sink` while `run` sends; the case's rate is what arrived.
fn counted_case(
    name: &str,
    kind: &str,
    size: usize,
    sink: &XdpSink,
    run: impl FnOnce() -> Result<(u64, f64)>,
) -> Result<Case> {
    let before = sink.packets()?;
    let cpu = CpuWindow::start();
    let (sent, seconds) = run()?;
    let busy = cpu.busy_seconds();
    let got = sink.arrived_since(before, sent);
    Ok(Case::new(name, kind, size, got as f64 / seconds.max(1e-9))
        .with_cpu(busy.map(|b| b * 1e9 / got.max(1) as f64))
        .with("tx_mpps", sent as f64 / seconds.max(1e-9) / 1e6)
        .with("lost", sent.saturating_sub(got)))
}

/// The source's own ceiling on the bare veth.
fn source_ceiling(bed: &VethPair, size: usize, d: Duration, m: Mechanism) -> Result<Case> {
    let sink = attach_sink(&bed.switch, SWITCH_IF, SinkVerdict::Drop)?;
    counted_case(SOURCE, "xdp_sink", size, &sink, || {
        let s = send_in(&bed.peer, PEER_IF, spec(size, PEER_MAC, SWITCH_MAC), m, d)?;
        Ok((s.frames, s.seconds))
    })
    .map(|c| c.with("direction", "rx"))
}

/// Raw AF_XDP receive: the steering program and one counting XSK loop.
fn raw_rx(bed: &VethPair, size: usize, d: Duration, m: Mechanism) -> Result<Case> {
    let receiver = raw_afxdp::spawn_receiver(&bed.switch, SWITCH_IF)?;
    let cpu = CpuWindow::start();
    let tx = send_in(&bed.peer, PEER_IF, spec(size, PEER_MAC, SWITCH_MAC), m, d)?;
    let busy = cpu.busy_seconds();
    let _ = testbed::wait_until(Duration::from_secs(1), Duration::from_millis(5), || {
        receiver.packets() >= tx.frames
    });
    let rx = receiver.finish()?;
    Ok(
        Case::new(RAW_RX, "raw_afxdp", size, rx.packets as f64 / tx.seconds)
            .with_cpu(busy.map(|b| b * 1e9 / rx.packets.max(1) as f64))
            .with("direction", "rx")
            .with("tx_mpps", tx.pps() / 1e6)
            .with("lost", tx.frames.saturating_sub(rx.packets))
            .with("fill_ring_empty", rx.fill_ring_empty)
            .with("rx_ring_full", rx.rx_ring_full),
    )
}

/// Raw AF_XDP transmit into the peer's counting sink.
fn raw_tx(bed: &VethPair, size: usize, d: Duration) -> Result<Case> {
    let sink = attach_sink(&bed.peer, PEER_IF, SinkVerdict::Drop)?;
    counted_case(RAW_TX, "raw_afxdp", size, &sink, || {
        let tx = raw_afxdp::transmit_in(&bed.switch, SWITCH_IF, size, SWITCH_MAC, PEER_MAC, d)?;
        Ok((tx.packets, tx.seconds))
    })
    .map(|c| c.with("direction", "tx"))
}

/// The bare-veth cases (source ceiling, raw AF_XDP both ways), then the
/// NIC port both ways with `switch` attached to `n0`.
pub fn veth_cases(
    bed: &VethPair,
    sizes: &[usize],
    d: Duration,
    repeats: usize,
    m: Mechanism,
    report: &mut Report,
) -> Result<()> {
    for &size in sizes {
        report.push(repeat(repeats, || source_ceiling(bed, size, d, m)).context("source ceiling")?);
        report.push(repeat(repeats, || raw_rx(bed, size, d, m)).context("raw AF_XDP receive")?);
        report.push(repeat(repeats, || raw_tx(bed, size, d)).context("raw AF_XDP transmit")?);
    }
    Ok(())
}

/// Our NIC port both ways on `n0`, attached to `switch`.
pub fn nic_cases(
    switch: &NicSwitch,
    bed: &VethPair,
    sizes: &[usize],
    d: Duration,
    repeats: usize,
    m: Mechanism,
    report: &mut Report,
) -> Result<()> {
    let secs = d.as_secs_f64();
    for &size in sizes {
        report.push(
            repeat(repeats, || {
                let r = switch.measure_rx_from(size, secs, || {
                    let s = send_in(&bed.peer, PEER_IF, spec(size, PEER_MAC, SWITCH_MAC), m, d)?;
                    Ok((s.frames, s.seconds))
                })?;
                Ok(nic_case(NIC_RX, "rx", size, &r))
            })
            .context("NIC port receive (line rate)")?,
        );
        let sink = attach_sink(&bed.peer, PEER_IF, SinkVerdict::Drop)?;
        report.push(
            repeat(repeats, || {
                let r = switch.measure_tx_counted(PEER_MAC, size, secs, || Ok(sink.packets()?))?;
                Ok(nic_case(NIC_TX, "tx", size, &r))
            })
            .context("NIC port transmit (into an XDP sink)")?,
        );
    }
    Ok(())
}

/// The Linux bridge, then vswitch with two NIC ports, between the same
/// veths, driven by the source and counted by a sink on `rx0`.
pub fn equal_paths(
    bin_dir: &Path,
    sizes: &[usize],
    d: Duration,
    repeats: usize,
    m: Mechanism,
    report: &mut Report,
) -> Result<()> {
    let largest = sizes.iter().copied().max().unwrap_or(64);
    let topology = BridgeTopology::new(largest).context("building the bridge topology")?;
    let sink = attach_sink(&topology.rx, "rx0", SinkVerdict::Drop)?;
    // Live frames only enter a veth whose peer runs XDP: a passing program
    // turns them into skbs for the bridge, as a NIC driver does.
    let pass = match m {
        Mechanism::LiveFrames => Some(attach_sink(&topology.bridge, "tx0p", SinkVerdict::Pass)?),
        Mechanism::TcClone => None,
    };
    let measure = |name: &str, kind: &str, size: usize| -> Result<Case> {
        repeat(repeats, || {
            counted_case(name, kind, size, &sink, || {
                let s = send_in(&topology.tx, "tx0", spec(size, TX_MAC, RX_MAC), m, d)?;
                Ok((s.frames, s.seconds))
            })
        })
    };
    for &size in sizes {
        report.push(measure(BRIDGE, "linux_bridge", size)?);
    }
    drop(pass);
    let switch = switch_in_place_of_bridge(bin_dir, &topology)?;
    for &size in sizes {
        report.push(measure(SWITCH, "nic_port", size)?);
    }
    switch.stop()?;
    drop(sink);
    drop(topology);
    Ok(())
}
