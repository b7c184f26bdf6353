//! `bench nic`: a NIC port beside its ceilings on the same veth, and the
//! switch's NIC ports against the Linux bridge on equal paths, in one run.
//! Each case runs `--repeats` times (median, min, max; CPU per packet
//! machine-wide).
//!
//! The line-rate cases ([`crate::nic_line_rate`]) drive every receive case
//! with the eBPF line-rate source and count every transmit case with an XDP
//! sink; with the NIC port attached, the VM cases ([`crate::nic_vm`]: NIC ->
//! VM and VM -> NIC with a CSB guest on the same switch) follow unless
//! `--skip-vm`, and the receive variants ([`crate::nic_rx_variants`]: one
//! queue on one thread against two queues on two threads) come later. The
//! socket-driven cases below (AF_PACKET at both ends, kept for
//! continuity) follow unless `--skip-socket-driven`:
//!
//! ```text
//!  ns peer: p0 <-veth-> n0 :ns switch
//!
//!  af_packet     rx  AF_PACKET tx on p0 -> AF_PACKET rx on n0
//!  raw_afxdp     rx  AF_PACKET tx on p0 -> XDP -> one XskQueue on n0 (counting loop)
//!  raw_afxdp     tx  one XskQueue on n0 -> AF_PACKET rx on p0
//!  nic_port      rx  AF_PACKET tx on p0 -> NIC port n0 -> daemon -> pktgen rx
//!  nic_port      tx  pktgen tx -> daemon -> NIC port n0 -> veth -> AF_PACKET rx on p0
//!
//!  equal paths (crate::equal_path, own namespaces):
//!  linux_bridge  AF_PACKET -> veth -> br0 -> veth -> AF_PACKET
//!  nic_port      AF_PACKET -> veth -> NIC port -> vswitch -> NIC port -> veth -> AF_PACKET
//! ```

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use bench::line_source::Mechanism;

use crate::af_packet::{self, PeerConfig, SenderConfig, TxMethod};
use crate::cpu_cost::CpuWindow;
use crate::equal_path;
use crate::nic_line_rate as line;
use crate::nic_port::{nic_case, NicSwitch};
use crate::nic_rx_variants::{self as variants, rx_variants};
use crate::nic_vm;
use crate::peer_case::{af_packet_case, PairPath};
use crate::raw_afxdp;
use crate::repeat::repeat;
use crate::report::{Case, Report};
use crate::veth_pair::{VethPair, PEER_IF, PEER_MAC, SWITCH_IF, SWITCH_MAC};

const NIC_RX: &str = "AF_PACKET -> veth -> NIC port -> pktgen rx";
const NIC_TX: &str = "pktgen tx -> NIC port -> veth -> AF_PACKET";
const RAW_RX: &str = "AF_PACKET -> veth -> XDP -> 1 XSK loop";
const RAW_TX: &str = "1 XSK loop -> veth -> AF_PACKET";
const AF_PACKET_RX: &str = "AF_PACKET -> veth -> AF_PACKET";

/// Arguments of `bench nic`.
#[derive(clap::Args)]
pub struct NicArgs {
    /// Seconds per run.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Runs per case (the table gives the median, min and max).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Frame sizes (at most 1514: the veth's MTU stays 1500, which the
    /// AF_XDP frame holds).
    #[arg(long, value_delimiter = ',', default_value = "64,1514")]
    sizes: Vec<usize>,
    /// Where the vswitch binary is.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// The JSON output.
    #[arg(long, default_value = "target/bench/nic.json")]
    out: PathBuf,
    /// How the line-rate source makes frames: `auto` takes live XDP frames
    /// where the kernel permits them, else tc clones.
    #[arg(long, value_enum, default_value_t = SourceArg::Auto)]
    source: SourceArg,
    /// Leave out the socket-driven (AF_PACKET) cases.
    #[arg(long)]
    skip_socket_driven: bool,
    /// Leave out the VM cases (NIC -> VM, VM -> NIC).
    #[arg(long)]
    skip_vm: bool,
}

/// `--source`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceArg {
    /// Live frames if permitted, else tc clones.
    Auto,
    /// `BPF_PROG_TEST_RUN` with live frames.
    Live,
    /// tcx `bpf_clone_redirect` fan-out.
    Clone,
}

impl SourceArg {
    /// The mechanism and, where `auto` fell back, the kernel's refusal.
    fn mechanism(self) -> (Mechanism, Option<String>) {
        match self {
            SourceArg::Live => (Mechanism::LiveFrames, None),
            SourceArg::Clone => (Mechanism::TcClone, None),
            SourceArg::Auto => match bench::live_source::probe() {
                Ok(()) => (Mechanism::LiveFrames, None),
                Err(e) => (
                    Mechanism::TcClone,
                    Some(switch_port::error_chain::Chain(&e).to_string()),
                ),
            },
        }
    }
}

/// The raw receive ceiling: the AF_PACKET sender into one XSK loop.
fn raw_rx(bed: &VethPair, size: usize, duration: Duration) -> Result<Case> {
    let receiver = raw_afxdp::spawn_receiver(&bed.switch, SWITCH_IF)?;
    let cpu = CpuWindow::start();
    let tx = af_packet::send_in(
        &bed.peer,
        &SenderConfig {
            ifname: PEER_IF.into(),
            frame_len: size,
            src: PEER_MAC,
            dst: SWITCH_MAC,
            batch: af_packet::DEFAULT_BATCH,
            duration,
            max_packets: u64::MAX,
            method: TxMethod::Sendmmsg,
        },
    )?;
    let busy = cpu.busy_seconds();
    let _ = testbed::wait_until(Duration::from_secs(1), Duration::from_millis(5), || {
        receiver.packets() >= tx.packets
    });
    let rx = receiver.finish()?;
    let pps = rx.packets as f64 / tx.seconds.max(1e-9);
    Ok(Case::new(RAW_RX, "raw_afxdp", size, pps)
        .with_cpu(busy.map(|b| b * 1e9 / rx.packets.max(1) as f64))
        .with("direction", "rx")
        .with("tx_mpps", tx.packets as f64 / tx.seconds.max(1e-9) / 1e6)
        .with("lost", tx.packets.saturating_sub(rx.packets))
        .with("xdp_redirected", rx.redirected)
        .with("fill_ring_empty", rx.fill_ring_empty)
        .with("rx_ring_full", rx.rx_ring_full))
}

/// The raw transmit ceiling: one XSK loop into the peer's AF_PACKET receiver.
fn raw_tx(bed: &VethPair, size: usize, duration: Duration) -> Result<Case> {
    let receiver = af_packet::spawn_receiver(
        &bed.peer,
        af_packet::ReceiverConfig {
            ifname: PEER_IF.into(),
            expect_src: Some(SWITCH_MAC),
            max_duration: duration + Duration::from_secs(20),
        },
    )?;
    let cpu = CpuWindow::start();
    let tx = raw_afxdp::transmit_in(&bed.switch, SWITCH_IF, size, SWITCH_MAC, PEER_MAC, duration)?;
    let busy = cpu.busy_seconds();
    let _ = testbed::wait_until(Duration::from_secs(1), Duration::from_millis(5), || {
        receiver.packets() >= tx.packets
    });
    std::thread::sleep(Duration::from_millis(50));
    let rx = receiver.finish()?;
    let pps = rx.packets as f64 / tx.seconds.max(1e-9);
    Ok(Case::new(RAW_TX, "raw_afxdp", size, pps)
        .with_cpu(busy.map(|b| b * 1e9 / rx.packets.max(1) as f64))
        .with("direction", "tx")
        .with("tx_mpps", tx.packets as f64 / tx.seconds.max(1e-9) / 1e6)
        .with("lost", tx.packets.saturating_sub(rx.packets))
        .with("corrupt", rx.corrupt)
        .with("unfinished", tx.unfinished))
}

/// ", the port itself N% of it": the NIC port's own rate (frames moved
/// between its sockets and the switch) against the raw case.
fn port_share(report: &Report, nic: &str, raw: &str, size: usize) -> String {
    let port = report
        .case(nic, size)
        .and_then(|c| c.extra.get("port_mpps"))
        .and_then(|v| v.as_f64());
    match (port, report.mpps(raw, size)) {
        (Some(port), Some(raw)) => format!(
            "; the port itself moved {:.0}% of it",
            100.0 * port / raw.max(1e-9)
        ),
        _ => String::new(),
    }
}

/// ", at N% of its CPU per packet": `a`'s CPU ns per packet against `b`'s.
fn cpu_ratio(report: &Report, a: &str, b: &str, size: usize) -> String {
    let cpu = |name: &str| report.cpu_ns_per_packet(name, size);
    match (cpu(a), cpu(b)) {
        (Some(a), Some(b)) => format!(", at {:.0}% of its CPU per packet", 100.0 * a / b.max(1e-9)),
        _ => String::new(),
    }
}

/// Runs the suite.
pub fn run(args: &NicArgs) -> Result<()> {
    let duration = crate::suite_args::duration(args.seconds)?;
    crate::suite_args::check_sizes(&args.sizes)?;
    let repeats = args.repeats.max(1);
    let mut report = Report::default();
    let mut notes = Vec::new();
    let (mechanism, refusal) = args.source.mechanism();
    notes.push(match refusal {
        None => format!("line-rate source: {}", mechanism.name()),
        Some(why) => format!(
            "line-rate source: {} (the kernel refuses XDP live frames: {why})",
            mechanism.name()
        ),
    });
    let socket = !args.skip_socket_driven;
    let bed = VethPair::new()?;
    let path = PairPath {
        tx_ns: &bed.peer,
        tx_if: PEER_IF,
        rx_ns: &bed.switch,
        rx_if: SWITCH_IF,
    };

    // The veth without anything attached: the line-rate ceilings, then
    // AF_PACKET and the socket-driven raw ceilings.
    line::veth_cases(&bed, &args.sizes, duration, repeats, mechanism, &mut report)?;
    for &size in args.sizes.iter().filter(|_| socket) {
        let config = PeerConfig::new(size, duration);
        report.push(repeat(repeats, || {
            Ok(af_packet_case(AF_PACKET_RX, "af_packet", &path, &config)?.with("direction", "rx"))
        })?);
        report
            .push(repeat(repeats, || raw_rx(&bed, size, duration)).context("raw AF_XDP receive")?);
        report
            .push(repeat(repeats, || raw_tx(&bed, size, duration)).context("raw AF_XDP transmit")?);
    }

    // The same veth attached to the switch.
    let switch = NicSwitch::start(&args.bin_dir, &bed.switch, SWITCH_IF)?;
    line::nic_cases(
        &switch,
        &bed,
        &args.sizes,
        duration,
        repeats,
        mechanism,
        &mut report,
    )?;
    if !args.skip_vm {
        match nic_vm::unavailable(&args.bin_dir) {
            None => nic_vm::vm_cases(
                &switch,
                &bed,
                &args.bin_dir,
                &args.sizes,
                duration,
                repeats,
                mechanism,
                &mut report,
                &mut notes,
            ),
            Some(why) => notes.push(format!("VM cases skipped: {why}")),
        }
    }
    for &size in args.sizes.iter().filter(|_| socket) {
        report.push(
            repeat(repeats, || {
                let r = switch.measure_rx(&bed.peer, PEER_IF, SWITCH_MAC, size, args.seconds)?;
                Ok(nic_case(NIC_RX, "rx", size, &r))
            })
            .context("NIC port receive")?,
        );
        report.push(
            repeat(repeats, || {
                let r = switch.measure_tx(&bed.peer, PEER_IF, size, args.seconds)?;
                Ok(nic_case(NIC_TX, "tx", size, &r))
            })
            .context("NIC port transmit")?,
        );
    }
    switch.stop()?;
    drop(bed);

    rx_variants(
        &args.bin_dir,
        &args.sizes,
        duration,
        repeats,
        mechanism,
        &mut report,
    )?;

    line::equal_paths(
        &args.bin_dir,
        &args.sizes,
        duration,
        repeats,
        mechanism,
        &mut report,
    )?;
    if socket {
        equal_path::run(
            &args.bin_dir,
            &args.sizes,
            duration,
            repeats,
            &mut report,
            &mut notes,
        )?;
    }
    report.cases.sort_by_key(|c| c.frame_size);

    for &size in &args.sizes {
        let ratio = |a: &str, b: &str| {
            report
                .mpps(a, size)
                .zip(report.mpps(b, size))
                .map(|(a, b)| 100.0 * a / b.max(1e-9))
        };
        if let Some(r) = ratio(line::NIC_RX, line::RAW_RX) {
            notes.push(format!(
                "{size} B, line rate: NIC port rx delivers {r:.0}% of raw AF_XDP rx \
                 (target >= 90%){}",
                port_share(&report, line::NIC_RX, line::RAW_RX, size)
            ));
        }
        if let Some(r) = ratio(line::NIC_TX, line::RAW_TX) {
            notes.push(format!(
                "{size} B, line rate: NIC port tx delivers {r:.0}% of raw AF_XDP tx \
                 (target >= 90%){}",
                port_share(&report, line::NIC_TX, line::RAW_TX, size)
            ));
        }
        nic_vm::limit_notes(&report, size, &mut notes);
        if let Some(r) = ratio(line::SWITCH, line::BRIDGE) {
            notes.push(format!(
                "{size} B, line rate, same veths: vswitch with two NIC ports forwards {:.2}x \
                 the Linux bridge (target >= 3x)",
                r / 100.0
            ));
        }
        if let Some(r) = ratio(variants::TWO_QUEUES, variants::ONE_QUEUE) {
            notes.push(format!(
                "{size} B, two sources: NIC port rx on 2 queues / 2 threads delivers {:.2}x \
                 1 queue / 1 thread{}",
                r / 100.0,
                cpu_ratio(&report, variants::TWO_QUEUES, variants::ONE_QUEUE, size)
            ));
        }
        for busy in [
            variants::DEFERRED,
            variants::BUSY_POLL,
            variants::BUSY_POLL_DEFERRED,
        ] {
            if let Some(r) = ratio(busy, variants::ONE_QUEUE) {
                notes.push(format!(
                    "{size} B, two sources: {busy} delivers {:.2}x 1 queue / 1 thread{}",
                    r / 100.0,
                    cpu_ratio(&report, busy, variants::ONE_QUEUE, size)
                ));
            }
        }
        if let Some(r) = ratio(line::RAW_RX, line::SOURCE) {
            notes.push(format!(
                "{size} B, line rate: raw AF_XDP rx takes {r:.0}% of what the source offers"
            ));
        }
        if let Some(r) = ratio(NIC_RX, RAW_RX) {
            notes.push(format!(
                "{size} B: NIC port rx reaches {r:.0}% of the raw AF_XDP rx ceiling end to end \
                 (target >= 90%){}",
                port_share(&report, NIC_RX, RAW_RX, size)
            ));
        }
        if let Some(r) = ratio(NIC_TX, RAW_TX) {
            notes.push(format!(
                "{size} B: NIC port tx reaches {r:.0}% of the raw AF_XDP tx loop{}",
                port_share(&report, NIC_TX, RAW_TX, size)
            ));
        }
        if let Some(r) = ratio(RAW_RX, AF_PACKET_RX) {
            notes.push(format!(
                "{size} B: raw AF_XDP rx is {:.2}x AF_PACKET rx on the same veth",
                r / 100.0
            ));
        }
    }
    report.finish(&args.out, &notes, repeats)
}
