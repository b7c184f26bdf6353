//! The XDP program's log (aya-log, forwarded to the daemon's log): a flood
//! of frames for a queue without a socket gives a warning line, rate-limited
//! to one a second per CPU; pass-list hits give debug lines only when the
//! daemon logs at debug level.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use e2e_tests::nic::{send_test_frames, NicBed, HOST_IF};
use e2e_tests::Daemon;
use testbed::{Mac, Queues};

const FRAMES: u64 = 500;
const NO_SOCKET: &str = "queue 1 has no AF_XDP socket: frame dropped";
const PASS_LIST: &str = "frame passed to the kernel stack by the pass list";

/// The log's lines containing `needle`, with the number of events each
/// says were left out before it.
fn lines_with(log: &str, needle: &str) -> Vec<(String, u64)> {
    log.lines()
        .filter(|line| line.contains(needle))
        .map(|line| {
            let left_out = line
                .rsplit_once('(')
                .and_then(|(_, tail)| tail.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            (line.to_owned(), left_out)
        })
        .collect()
}

/// Waits until the daemon's log has a line with `needle`.
fn wait_for_line(bed: &NicBed, needle: &str) -> Result<()> {
    testbed::wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
        bed.daemon.log().contains(needle)
    })
    .with_context(|| format!("no {needle:?} in the daemon log:\n{}", bed.daemon.log()))
}

/// Checks that the lines with `needle` respect the rate limit for a flood
/// that lasted `elapsed`: at most one a second per CPU, and never more events
/// reported than sent.
fn check_rate_limited(log: &str, needle: &str, elapsed: Duration) -> Result<()> {
    let lines = lines_with(log, needle);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let bound = cpus * (elapsed.as_secs() + 2);
    ensure!(
        !lines.is_empty() && lines.len() as u64 <= bound,
        "{} lines with {needle:?} for a flood of {elapsed:?} (at most {bound}):\n{log}",
        lines.len()
    );
    let reported: u64 = lines.iter().map(|(_, left_out)| 1 + left_out).sum();
    ensure!(
        reported <= FRAMES,
        "the lines report {reported} events of {FRAMES} sent:\n{log}"
    );
    Ok(())
}

#[test]
fn a_flood_for_a_queue_without_a_socket_is_logged_rate_limited() -> Result<()> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    ensure!(cpus >= 2, "this test needs two CPUs to reach queue 1");
    let bed = NicBed::new(&["q0"], Some(Queues { rx: 2, tx: 2 }))?;
    bed.attach("q0", &["--queues", "1"])?;
    // A sender pinned to CPU 1 transmits on queue 1 of the host's end, and
    // the switch's end receives on queue 1: no socket there.
    let src = Mac([0x02, 0x76, 0x73, 0x6e, 0x20, 0x01]);
    let dst = Mac([0x02, 0x76, 0x73, 0x6e, 0xff, 0x01]);
    let start = Instant::now();
    let sent = send_test_frames(&bed.hosts[0].ns, HOST_IF, src, dst, 0..FRAMES, 60, Some(1))?;
    let elapsed = start.elapsed();
    assert_eq!(sent, FRAMES);
    wait_for_line(&bed, NO_SOCKET)?;
    check_rate_limited(&bed.daemon.log(), NO_SOCKET, elapsed)
}

/// Attaches `a0` with test frames (EtherType 0x88B5) on the pass list and
/// sends a flood of them; returns how long sending took.
fn flood_the_pass_list(bed: &NicBed) -> Result<Duration> {
    bed.attach("a0", &["--pass", "0x88b5"])?;
    let h1 = &bed.hosts[0];
    let dst = Mac([0x02, 0x76, 0x73, 0x6e, 0xff, 0x02]);
    let start = Instant::now();
    let sent = send_test_frames(&h1.ns, HOST_IF, h1.mac, dst, 0..FRAMES, 60, None)?;
    let elapsed = start.elapsed();
    assert_eq!(sent, FRAMES);
    let mut extra = bed.extra_counters("vale0:a0")?;
    testbed::wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
        extra = bed.extra_counters("vale0:a0").unwrap_or_default();
        extra.get("xdp_passed").copied().unwrap_or(0) >= FRAMES
    })
    .with_context(|| format!("passed frames not counted: {extra:?}"))?;
    Ok(elapsed)
}

#[test]
fn pass_list_hits_are_logged_at_debug_level_only() -> Result<()> {
    let bed = NicBed::with_daemon(&["a0"], None, |ns| {
        Daemon::start_in(ns, &["--log-level", "debug"])
    })?;
    let elapsed = flood_the_pass_list(&bed)?;
    wait_for_line(&bed, PASS_LIST)?;
    check_rate_limited(&bed.daemon.log(), PASS_LIST, elapsed)?;
    drop(bed);

    // At the default level the program does not even look.
    let bed = NicBed::new(&["a0"], None)?;
    flood_the_pass_list(&bed)?;
    let log = bed.daemon.log();
    ensure!(!log.contains(PASS_LIST), "a pass-list line at info:\n{log}");
    Ok(())
}
