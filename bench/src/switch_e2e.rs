//! End to end through the daemon: a `pktgen tx` process -> `vswitch daemon`
//! -> a `pktgen rx` process, all real processes on this machine.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use testbed::{wait_until, Daemon, Proc};

use crate::cpu_cost::CpuWindow;
use crate::pktgen_summary::summary;
use crate::procs::CpuMeter;

/// What an end-to-end run measured.
#[derive(Clone, Debug)]
pub struct E2eResult {
    /// Frames per second the receiver got intact.
    pub rx_pps: f64,
    /// Frames per second the sender published.
    pub tx_pps: f64,
    /// Frames the switch dropped at the receiver's full ring.
    pub dropped: u64,
    /// Frames lost or corrupt as seen by the receiver.
    pub corrupt: u64,
    /// Average cores used by sender, daemon and receiver together.
    pub cores_used: f64,
    /// Busy CPU nanoseconds of the machine per received frame, while the
    /// sender ran.
    pub cpu_ns_per_packet: Option<f64>,
    /// What the process started beside wrote to stderr.
    pub beside_stderr: String,
}

/// Runs `seconds` of `size`-byte frames through a daemon with `threads`
/// forwarding threads.
pub fn run(bin_dir: &Path, size: usize, seconds: f64, threads: usize) -> Result<E2eResult> {
    run_beside(bin_dir, size, seconds, threads, |_| Ok(None))
}

/// Like [`run`], with the process `beside` starts (once the receiver's port
/// exists) running through the measurement, then stopped by SIGINT; its
/// stderr comes with the result.
pub fn run_beside(
    bin_dir: &Path,
    size: usize,
    seconds: f64,
    threads: usize,
    beside: impl FnOnce(&Daemon) -> Result<Option<Proc>>,
) -> Result<E2eResult> {
    let threads = threads.to_string();
    let mut daemon = Daemon::builder()
        .binary(bin_dir.join("vswitch"))
        .args(["--threads", &threads])
        .start()?;
    let size_s = size.to_string();
    let mut rx = daemon.spawn(
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
        daemon
            .cli(&["list", "--json"])
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("vale0:rx"))
            .unwrap_or(false)
    })
    .context("receiver did not open its port")?;
    let mut beside = beside(&daemon)?;
    let secs = format!("{seconds}");
    let mut tx = daemon.spawn(
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
    let meter = CpuMeter::start(&[tx.pid(), daemon.pid(), rx.pid()]);
    let cpu = CpuWindow::start();
    let limit = Duration::from_secs_f64(seconds + 30.0);
    let tx_sum = summary(&mut tx, limit)?;
    let cores = meter.cores();
    let busy = cpu.busy_seconds();
    let stats = daemon.cli(&["stats", "vale0:rx", "--json"])?;
    let mut beside_stderr = String::new();
    if let Some(p) = beside.as_mut() {
        p.kill(libc::SIGINT)?;
        p.wait_timeout(Duration::from_secs(10))?
            .context("the process beside did not stop")?;
        beside_stderr = p.read_stderr()?;
    }
    let rx_sum = summary(&mut rx, limit)?;
    daemon.stop()?;
    let stats: Value = serde_json::from_slice(&stats.stdout).unwrap_or_default();
    let dropped = stats["ports"][0]["counters"]["drop_ring_full"]
        .as_u64()
        .unwrap_or(0);
    let rx_packets = rx_sum["packets"].as_f64().unwrap_or(0.0);
    let rx_secs = rx_sum["seconds"].as_f64().unwrap_or(0.0);
    if rx_packets == 0.0 || rx_secs <= 0.0 {
        bail!("the receiver got nothing: {rx_sum}");
    }
    Ok(E2eResult {
        rx_pps: rx_packets / rx_secs,
        tx_pps: tx_sum["packets"].as_f64().unwrap_or(0.0)
            / tx_sum["seconds"].as_f64().unwrap_or(1.0),
        dropped,
        corrupt: rx_sum["corrupt"].as_u64().unwrap_or(0),
        cores_used: cores,
        cpu_ns_per_packet: busy.map(|b| b * 1e9 / rx_packets),
        beside_stderr,
    })
}
