//! `bench switch`: every switch case in one run, so ratios compare numbers
//! measured side by side on this shared machine.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use crate::af_packet::PeerConfig;
use crate::report::{Case, Report};
use crate::switch_core::{self, Pattern};
use crate::{copy_ceiling, linux_bridge, switch_e2e};

/// Arguments of `bench switch`.
#[derive(clap::Args)]
pub struct SwitchArgs {
    /// Seconds per case.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Frame sizes.
    #[arg(long, value_delimiter = ',', default_value = "64,1514")]
    sizes: Vec<usize>,
    /// Forwarding threads of the daemon in the end-to-end case.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Where the vswitch binary is.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// The JSON output.
    #[arg(long, default_value = "target/bench/switch.json")]
    out: PathBuf,
}

/// Runs the suite.
pub fn run(args: &SwitchArgs) -> Result<()> {
    let duration = Duration::from_secs_f64(args.seconds);
    let mut report = Report::default();
    for &size in &args.sizes {
        for pattern in [
            Pattern::Unicast1to1,
            Pattern::Broadcast1to4,
            Pattern::Unicast4to1,
        ] {
            let r = switch_core::run(pattern, size, duration)?;
            report.push(
                Case::new(
                    format!("core {}", pattern.name()),
                    "core",
                    size,
                    r.input_mpps * 1e6,
                )
                .with("delivered_mpps", r.output_mpps)
                .with("threads", 1),
            );
        }
    }
    for &size in &args.sizes {
        let r = switch_e2e::run(&args.bin_dir, size, args.seconds, args.threads)?;
        report.push(
            Case::new("pktgen tx -> daemon -> pktgen rx", "e2e", size, r.rx_pps)
                .with("tx_mpps", r.tx_pps / 1e6)
                .with("dropped", r.dropped)
                .with("corrupt", r.corrupt)
                .with("processes", 3)
                .with("forwarding_threads", args.threads)
                .with("cores_used", r.cores_used),
        );
    }
    for &size in &args.sizes {
        let r = linux_bridge::linux_bridge(&PeerConfig::new(size, duration))?;
        report.push(
            Case::new(
                "AF_PACKET -> Linux bridge -> AF_PACKET",
                "linux_bridge",
                size,
                r.mpps * 1e6,
            )
            .with("tx_mpps", r.tx_mpps)
            .with("lost", r.lost)
            .with("corrupt", r.corrupt),
        );
    }
    for &size in &args.sizes {
        let pps = copy_ceiling::run(size, duration);
        report.push(
            Case::new("copy loop (memory ceiling)", "copy_ceiling", size, pps).with("threads", 1),
        );
    }
    let mut notes = Vec::new();
    for &size in &args.sizes {
        if let (Some(ours), Some(bridge)) = (
            report.mpps("pktgen tx -> daemon -> pktgen rx", size),
            report.mpps("AF_PACKET -> Linux bridge -> AF_PACKET", size),
        ) {
            notes.push(format!(
                "{size} B: end to end is {:.1}x the Linux bridge",
                ours / bridge.max(1e-9)
            ));
        }
        if let (Some(core), Some(ceiling)) = (
            report.mpps("core unicast 1->1", size),
            report.mpps("copy loop (memory ceiling)", size),
        ) {
            notes.push(format!(
                "{size} B: the core reaches {:.0}% of the copy ceiling",
                100.0 * core / ceiling.max(1e-9)
            ));
        }
    }
    report.finish(&args.out, &notes)
}
