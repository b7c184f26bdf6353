//! `bench switch`: every switch case in one run, so that figures compared
//! are measured side by side on this shared machine. Each case runs
//! `--repeats` times (median, min, max; CPU per packet machine-wide).
//!
//! - **Forwarding core** (in process): mixed traffic of many hosts by
//!   default, and one flow as the labelled best case.
//! - **Equal paths** ([`crate::equal_path`]): the Linux bridge against two
//!   NIC ports of the switch, on the same veths with the same AF_PACKET
//!   sender and receiver. This is the like-with-like comparison.
//! - **What applications get**: `pktgen tx -> daemon -> pktgen rx` over
//!   shared memory, beside the best socket path Linux gives an application
//!   over a veth pair (AF_PACKET with a PACKET_MMAP TX ring or sendmmsg, and
//!   a PACKET_MMAP RX ring). Different paths: reported, not divided.
//! - **VXLAN** ([`crate::vxlan_tunnel`]): the shared-memory path through
//!   two daemons joined by a tunnel over a veth underlay (encap + decap),
//!   beside plain forwarding, and Linux's vxlan devices on bridges.
//! - The copy loop (memory ceiling).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use crate::af_packet::{PeerConfig, TxMethod};
use crate::copy_ceiling;
use crate::cpu_cost::CpuWindow;
use crate::equal_path;
use crate::peer_case::{af_packet_case, PairPath};
use crate::repeat::repeat;
use crate::report::{Case, Report};
use crate::switch_core::{self, Pattern, Traffic};
use crate::switch_e2e;
use crate::veth_pair::{VethPair, PEER_IF, SWITCH_IF};

/// The shared-memory application path.
const E2E: &str = "app: pktgen tx -> vswitch -> pktgen rx (shm)";
/// The best socket paths over a veth pair.
const SOCKET_TX_RING: &str = "app: AF_PACKET tx ring > veth > rx ring";
const SOCKET_SENDMMSG: &str = "app: AF_PACKET sendmmsg > veth > rx ring";
const COPY: &str = "copy loop (memory ceiling)";

/// Arguments of `bench switch`.
#[derive(clap::Args)]
pub struct SwitchArgs {
    /// Seconds per run.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Runs per case (the table gives the median, min and max).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Frame sizes (60..=1514).
    #[arg(long, value_delimiter = ',', default_value = "64,1514")]
    sizes: Vec<usize>,
    /// Source hosts, and destination hosts, of the core's mixed traffic.
    #[arg(long, default_value_t = 1024)]
    hosts: usize,
    /// Forwarding threads of the daemon in the shared-memory case.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Where the vswitch binary is.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// The JSON output.
    #[arg(long, default_value = "target/bench/switch.json")]
    out: PathBuf,
}

fn core_case(pattern: Pattern, traffic: Traffic, size: usize, duration: Duration) -> Result<Case> {
    let r = switch_core::run(pattern, traffic, size, duration)?;
    Ok(Case::new(
        format!("core {} {}", pattern.name(), traffic.name()),
        "core",
        size,
        r.input_mpps * 1e6,
    )
    .with_cpu(r.cpu_ns_per_packet)
    .with("delivered_mpps", r.output_mpps)
    .with("threads", 1))
}

/// Runs the suite.
pub fn run(args: &SwitchArgs) -> Result<()> {
    let duration = crate::suite_args::duration(args.seconds)?;
    crate::suite_args::check_sizes(&args.sizes)?;
    anyhow::ensure!(args.hosts >= 1, "--hosts must be at least 1");
    let repeats = args.repeats.max(1);
    let mut report = Report::default();
    let mut notes = Vec::new();
    let mixed = Traffic::Mixed { hosts: args.hosts };
    for &size in &args.sizes {
        for pattern in [
            Pattern::Unicast1to1,
            Pattern::Unicast4to4,
            Pattern::Unicast4to1,
            Pattern::Broadcast1to4,
        ] {
            report.push(repeat(repeats, || {
                core_case(pattern, mixed, size, duration)
            })?);
        }
        report.push(repeat(repeats, || {
            core_case(Pattern::Unicast1to1, Traffic::OneFlow, size, duration)
        })?);
        for direction in [
            crate::vlan_core::Direction::Push,
            crate::vlan_core::Direction::Pop,
        ] {
            report.push(repeat(repeats, || {
                crate::vlan_core::run(direction, size, duration)
            })?);
        }
    }

    equal_path::run(
        &args.bin_dir,
        &args.sizes,
        duration,
        repeats,
        &mut report,
        &mut notes,
    )?;

    for &size in &args.sizes {
        report.push(repeat(repeats, || {
            let r = switch_e2e::run(&args.bin_dir, size, args.seconds, args.threads)?;
            Ok(Case::new(E2E, "app_shm", size, r.rx_pps)
                .with_cpu(r.cpu_ns_per_packet)
                .with("tx_mpps", r.tx_pps / 1e6)
                .with("dropped", r.dropped)
                .with("corrupt", r.corrupt)
                .with("processes", 3)
                .with("forwarding_threads", args.threads)
                .with("cores_used", r.cores_used))
        })?);
    }
    crate::switch_capture::cases(
        &args.bin_dir,
        &args.sizes,
        args.seconds,
        args.threads,
        repeats,
        &mut report,
    )?;
    crate::vxlan_tunnel::run(
        &args.bin_dir,
        &args.sizes,
        duration,
        repeats,
        E2E,
        &mut report,
        &mut notes,
    )?;
    let bed = VethPair::new()?;
    let path = PairPath {
        tx_ns: &bed.peer,
        tx_if: PEER_IF,
        rx_ns: &bed.switch,
        rx_if: SWITCH_IF,
    };
    for &size in &args.sizes {
        for (name, method) in [
            (SOCKET_TX_RING, TxMethod::TxRing),
            (SOCKET_SENDMMSG, TxMethod::Sendmmsg),
        ] {
            let mut config = PeerConfig::new(size, duration);
            config.method = method;
            report.push(repeat(repeats, || {
                af_packet_case(name, "app_socket", &path, &config)
            })?);
        }
    }
    drop(bed);

    for &size in &args.sizes {
        report.push(repeat(repeats, || {
            let cpu = CpuWindow::start();
            let (pps, frames) = copy_ceiling::run(size, duration);
            Ok(Case::new(COPY, "copy_ceiling", size, pps)
                .with_cpu(cpu.ns_per_packet(frames))
                .with("threads", 1))
        })?);
    }

    for &size in &args.sizes {
        let best_socket = [SOCKET_TX_RING, SOCKET_SENDMMSG]
            .iter()
            .filter_map(|n| report.mpps(n, size))
            .fold(0.0, f64::max);
        if let Some(shm) = report.mpps(E2E, size) {
            notes.push(format!(
                "{size} B, what applications get (different paths, no ratio): shared-memory \
                 ports through vswitch deliver {shm:.3} Mpps; the best AF_PACKET socket path \
                 over one veth pair {best_socket:.3} Mpps"
            ));
        }
        let core = format!("core {} {}", Pattern::Unicast1to1.name(), mixed.name());
        if let (Some(core), Some(ceiling)) = (report.mpps(&core, size), report.mpps(COPY, size)) {
            notes.push(format!(
                "{size} B: the core (mixed traffic, 1->1) reaches {:.0}% of the copy ceiling",
                100.0 * core / ceiling.max(1e-9)
            ));
        }
    }
    report.finish(&args.out, &notes, repeats)
}
