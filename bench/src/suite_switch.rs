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
//! - **Scaling** ([`crate::switch_scale`]): the core with 1 source and
//!   {1, 8, 64, 254} destination ports x {1, 1,000, 100,000, the table's
//!   size} destination addresses, as a table, JSON cases (`core_scale`) and
//!   an SVG plot per frame size (`switch-scale-<frames>.svg` beside the
//!   JSON). `--sweep quick` runs it at 64 bytes, `full` also at 1514 bytes
//!   and IMIX; `--sweep-only` skips the other cases but the single-pair core
//!   case, kept for continuity.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use crate::af_packet::{PeerConfig, TxMethod};
use crate::copy_ceiling;
use crate::cpu_cost::CpuWindow;
use crate::equal_path;
use crate::peer_case::{af_packet_case, PairPath};
use crate::plot::{self, Series};
use crate::repeat::repeat;
use crate::report::{Case, Report};
use crate::switch_core::{self, Pattern, Traffic};
use crate::switch_e2e;
use crate::switch_scale::{self, Frames, ScaleCase};
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
    /// The JSON output (the sweep's plots are written beside it).
    #[arg(long, default_value = "target/bench/switch.json")]
    out: PathBuf,
    /// The core's scaling sweep: `quick` (64-byte frames), `full` (64, 1514
    /// and IMIX) or `none`.
    #[arg(long, value_enum, default_value_t = Sweep::Quick)]
    sweep: Sweep,
    /// Run only the sweep and the single-pair core case.
    #[arg(long)]
    sweep_only: bool,
    /// Addresses the learning table holds in the sweep (its last address
    /// count fills it).
    #[arg(long, default_value_t = 1_000_000)]
    fdb_size: usize,
    /// Destination ports of the sweep.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64,254")]
    sweep_destinations: Vec<usize>,
    /// Destination address counts of the sweep (`fill` = the table's size
    /// less the source's entry).
    #[arg(long, value_delimiter = ',', default_value = "1,1000,100000,fill")]
    sweep_addresses: Vec<String>,
}

/// How much of the scaling sweep to run.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Sweep {
    /// No sweep.
    None,
    /// 64-byte frames only.
    Quick,
    /// 64 and 1514 bytes and IMIX.
    Full,
}

/// Destination address counts of the sweep from `--sweep-addresses` for a
/// table of `fdb_size`: `fill` fills the table (one entry is the source's).
fn sweep_addresses(given: &[String], fdb_size: usize) -> Result<Vec<usize>> {
    let mut counts = Vec::new();
    for m in given {
        let m = match m.as_str() {
            "fill" => fdb_size.saturating_sub(1),
            n => n.parse().map_err(|_| {
                anyhow::anyhow!("--sweep-addresses: {n:?} is not a count or `fill`")
            })?,
        };
        anyhow::ensure!(
            m >= 1 && m < fdb_size,
            "--sweep-addresses: {m} must be in 1..{fdb_size} (--fdb-size)"
        );
        if !counts.contains(&m) {
            counts.push(m);
        }
    }
    Ok(counts)
}

/// Runs the sweep for each frame mix: cases into `report`, a table into
/// `notes`, a plot beside `out`.
fn sweep(
    args: &SwitchArgs,
    duration: Duration,
    repeats: usize,
    report: &mut Report,
    notes: &mut Vec<String>,
) -> Result<()> {
    let mixes = match args.sweep {
        Sweep::None => return Ok(()),
        Sweep::Quick => vec![Frames::Fixed(64)],
        Sweep::Full => vec![Frames::Fixed(64), Frames::Fixed(1514), Frames::Imix],
    };
    let addresses = sweep_addresses(&args.sweep_addresses, args.fdb_size)?;
    let destinations = &args.sweep_destinations;
    anyhow::ensure!(
        destinations.iter().all(|d| (1..=1000).contains(d)),
        "--sweep-destinations must be in 1..=1000"
    );
    for frames in mixes {
        let mut table = vec![vec![0.0; destinations.len()]; addresses.len()];
        let mut per_core = table.clone();
        for (a, &m) in addresses.iter().enumerate() {
            for (d, &destinations) in destinations.iter().enumerate() {
                let case = ScaleCase {
                    destinations,
                    addresses: m,
                    fdb_size: args.fdb_size,
                    frames,
                };
                let c = repeat(repeats, || {
                    let r = switch_scale::run(case, duration)?;
                    Ok(Case::new(
                        format!("scale {destinations} dst x {m} addr {}", frames.name()),
                        "core_scale",
                        frames.mean_size(),
                        r.core.input_mpps * 1e6,
                    )
                    .with_cpu(r.core.cpu_ns_per_packet)
                    .with("frames", frames.name())
                    .with("destinations", destinations)
                    .with("addresses", m)
                    .with("fdb_size", args.fdb_size)
                    .with("refused", r.refused)
                    .with("flooded", r.flooded)
                    .with("mpps_per_core", r.mpps_per_core)
                    .with("threads", 1))
                })?;
                table[a][d] = c.mpps;
                per_core[a][d] = c.extra["mpps_per_core"].as_f64().unwrap_or(0.0);
                report.push(c);
            }
        }
        for (what, values) in [
            ("Mpps", &table),
            ("Mpps per core-second of the forwarding thread", &per_core),
        ] {
            notes.push(format!(
                "scaling, {} frames, {what} (1 source, 1 core; rows: destination addresses, \
                 columns: destination ports; table of {} addresses):",
                frames.name(),
                args.fdb_size
            ));
            let mut head = format!("{:>12}", "addresses");
            for d in destinations {
                head.push_str(&format!(" {d:>8}"));
            }
            notes.push(head);
            for (a, &m) in addresses.iter().enumerate() {
                let mut line = format!("{m:>12}");
                for v in &values[a] {
                    line.push_str(&format!(" {v:>8.2}"));
                }
                notes.push(line);
            }
        }
        let series: Vec<Series> = addresses
            .iter()
            .zip(&table)
            .map(|(&m, row)| Series {
                label: format!("{m} addresses"),
                points: destinations
                    .iter()
                    .zip(row)
                    .map(|(&d, &v)| (d as f64, v))
                    .collect(),
            })
            .collect();
        let path = args
            .out
            .with_file_name(format!("switch-scale-{}.svg", frames.name()));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        plot::line_chart(
            &path,
            &format!("Forwarding core, one source, {} frames", frames.name()),
            "destination ports",
            "Mpps (one core)",
            &series,
        )?;
        notes.push(format!("plot: {}", path.display()));
    }
    Ok(())
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
    anyhow::ensure!(args.fdb_size >= 4, "--fdb-size must be at least 4");
    if args.sweep_only {
        for &size in &args.sizes {
            report.push(repeat(repeats, || {
                core_case(Pattern::Unicast1to1, Traffic::OneFlow, size, duration)
            })?);
        }
        sweep(args, duration, repeats, &mut report, &mut notes)?;
        return report.finish(&args.out, &notes, repeats);
    }
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

    sweep(args, duration, repeats, &mut report, &mut notes)?;

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
