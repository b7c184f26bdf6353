//! The shared-memory application path (`pktgen tx -> vswitch -> pktgen
//! rx`) while `vswitch capture` takes every frame of the receiving port
//! (written to /dev/null): beside the same path without a capture, it shows
//! what a capture costs forwarding, and how many frames the capture itself
//! had to drop.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use testbed::wait_until;

use crate::repeat::repeat;
use crate::report::{Case, Report};
use crate::switch_e2e;

/// The case's name.
pub const CAPTURING: &str = "app: pktgen tx -> vswitch -> pktgen rx (shm), rx port captured";

/// Reads "N frames captured, M dropped" from a capture's summary.
fn counts(summary: &str) -> (u64, u64) {
    let number_before = |word: &str| {
        summary
            .split(word)
            .next()
            .and_then(|head| head.split_whitespace().last())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (number_before(" frames captured"), number_before(" dropped"))
}

/// Adds the capturing case for every size to `report`.
pub fn cases(
    bin_dir: &Path,
    sizes: &[usize],
    seconds: f64,
    threads: usize,
    repeats: usize,
    report: &mut Report,
) -> Result<()> {
    for &size in sizes {
        report.push(repeat(repeats, || {
            let r = switch_e2e::run_beside(bin_dir, size, seconds, threads, |daemon| {
                let capture =
                    daemon.spawn("capture", &["capture", "vale0:rx", "-w", "/dev/null"])?;
                wait_until(Duration::from_secs(10), Duration::from_millis(10), || {
                    capture
                        .read_stderr()
                        .unwrap_or_default()
                        .contains("capturing ")
                })
                .context("the capture did not start")?;
                Ok(Some(capture))
            })?;
            let (captured, dropped) = counts(&r.beside_stderr);
            Ok(Case::new(CAPTURING, "app_shm", size, r.rx_pps)
                .with_cpu(r.cpu_ns_per_packet)
                .with("tx_mpps", r.tx_pps / 1e6)
                .with("dropped", r.dropped)
                .with("captured", captured)
                .with("capture_dropped", dropped)
                .with("processes", 4)
                .with("forwarding_threads", threads)
                .with("cores_used", r.cores_used))
        })?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn summary_counts_are_read() {
        let s = "capture of vale0:rx: 1234 frames captured, 56 dropped by the switch (stopped by SIGINT)";
        assert_eq!(super::counts(s), (1234, 56));
    }
}
