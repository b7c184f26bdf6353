//! Traffic between pktgen processes through a real daemon: every frame
//! accounted for, a stalled reader that slows nobody, clients killed
//! mid-traffic.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use e2e_tests::{assert_all_accounted, field, pktgen_summary, Daemon};
use testbed::procfs;

const MILLION: u64 = 1_000_000;

/// The longest the background traffic of `killed_clients_leave_nothing_behind`
/// may run: the test stops it with SIGINT once its kill rounds are done
/// (however long a loaded machine makes them); this only bounds a run
/// that went wrong.
const BACKGROUND_MAX_SECS: u64 = 300;

/// Frames the background sender must have sent before it is stopped (one
/// second's worth at its rate), so that the accounting covers real traffic
/// even when the kill rounds are quick.
const BACKGROUND_MIN_FRAMES: u64 = 20_000;

/// The background sender's source address; the victims send to it.
const BACKGROUND_MAC: &str = "02:00:00:00:00:01";

#[test]
fn a_million_frames_are_all_accounted_for() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let mut rx = daemon.pktgen_rx("vale0:rx", &["--idle-timeout", "2"])?;
    let mut tx = daemon.pktgen_tx("vale0:tx", &["--count", "1000000"])?;
    let tx_sum = pktgen_summary(&mut tx, Duration::from_secs(120))?;
    // Read the receiving port's counters before its client leaves.
    let rx_port = daemon.settled_counters("vale0:rx", MILLION)?;
    let rx_sum = pktgen_summary(&mut rx, Duration::from_secs(30))?;
    assert_eq!(field(&tx_sum, "packets"), MILLION);
    assert_eq!(field(&rx_sum, "corrupt"), 0, "{rx_sum}");
    assert_eq!(field(&rx_sum, "duplicates"), 0, "{rx_sum}");
    assert_eq!(field(&rx_sum, "reordered"), 0, "{rx_sum}");
    // Everything the switch delivered was received intact; everything else
    // was dropped at the receiving port's full ring, and counted.
    assert_all_accounted(&rx_sum, &rx_port, MILLION);
    assert_eq!(rx_port.drops(), rx_port.drop_ring_full);
    eprintln!(
        "tx {:.2} Mpps, rx {:.2} Mpps, {} dropped at the receiver's full ring",
        tx_sum["mpps"].as_f64().unwrap_or(0.0),
        rx_sum["mpps"].as_f64().unwrap_or(0.0),
        rx_port.drop_ring_full
    );
    Ok(())
}

#[test]
fn a_stalled_reader_slows_nobody() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    // A client that opens its port and never reads.
    let _stalled = daemon.open("vale0:stalled")?;
    // The third port's ring holds 160 ms of traffic, so a receiver this
    // shared 2-core machine deschedules for a while still keeps up.
    let mut rx = daemon.pktgen_rx("vale0:rx", &["--idle-timeout", "2", "--ring-size", "16384"])?;
    // Broadcast for one second at a rate the receiver sustains.
    let count = 100_000u64;
    let start = Instant::now();
    let mut tx = daemon.pktgen_tx("vale0:tx", &["--count", "100000", "--rate", "100000"])?;
    let tx_sum = pktgen_summary(&mut tx, Duration::from_secs(60))?;
    let tx_secs = start.elapsed().as_secs_f64();
    let rx_port = daemon.settled_counters("vale0:rx", count)?;
    let rx_sum = pktgen_summary(&mut rx, Duration::from_secs(30))?;
    let stalled = daemon.settled_counters("vale0:stalled", count)?;
    assert_eq!(field(&tx_sum, "packets"), count);
    // The sender was never blocked by the stalled port: it kept its pace.
    assert!(
        tx_secs < 10.0,
        "sender took {tx_secs:.1} s for 1 s of traffic"
    );
    // The stalled port got exactly one ring's worth, the rest dropped and counted.
    assert_eq!(stalled.tx_packets, 1023, "{stalled:?}");
    assert_eq!(stalled.drop_ring_full, count - 1023, "{stalled:?}");
    // The third port kept receiving: intact, in order, every frame accounted
    // for, and (at a rate it sustains, with a ring that rides out being
    // descheduled) at most a sliver of what was sent dropped.
    assert_eq!(field(&rx_sum, "corrupt"), 0, "{rx_sum}");
    assert_eq!(field(&rx_sum, "reordered"), 0, "{rx_sum}");
    assert_all_accounted(&rx_sum, &rx_port, count);
    assert!(
        rx_port.tx_packets >= count * 95 / 100,
        "third port starved: {rx_port:?}"
    );
    Ok(())
}

#[test]
fn killed_clients_leave_nothing_behind() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    daemon.cli_json(&["list", "--json"])?;
    let out = daemon.cli(&["create", "vale0:keep"])?;
    ensure!(out.status.success(), "create failed: {out:?}");
    // Background traffic between two other ports during the whole test:
    // a sender stopped by SIGINT after the kill rounds (it then reports
    // exactly what it sent) to an unknown unicast address, flooded to the
    // receiver. The victims send to the background sender's address, so the
    // receiver sees only the background frames and can account for every
    // one of them.
    let mut rx = daemon.pktgen_rx("vale0:bg-rx", &["--idle-timeout", "3"])?;
    let mut bg = daemon.pktgen_tx(
        "vale0:bg-tx",
        &[
            "--rate",
            "20000",
            "--duration",
            &BACKGROUND_MAX_SECS.to_string(),
            "--src-mac",
            BACKGROUND_MAC,
            "--dst-mac",
            "02:00:00:00:00:99",
        ],
    )?;
    let started = Instant::now();
    // The victims' destination must be learned before the first victim.
    testbed::wait_until(Duration::from_secs(10), Duration::from_millis(5), || {
        daemon
            .cli_json(&["fdb", "vale0", "--json"])
            .map(|fdb| fdb.to_string().contains(BACKGROUND_MAC))
            .unwrap_or(false)
    })
    .context("the background sender's address was never learned")?;
    // Warm up, then measure the daemon's fds and memory.
    kill_one(&daemon, "vale0:victim", true, 1000)?;
    let before = procfs::usage(daemon.pid())?;
    for round in 0..100 {
        let port = if round % 10 == 0 {
            "vale0:keep"
        } else {
            "vale0:victim"
        };
        kill_one(&daemon, port, port == "vale0:victim", round)
            .with_context(|| format!("round {round}: {}", daemon.log()))?;
    }
    let rounds_secs = started.elapsed().as_secs_f64();
    // Control connections close asynchronously: give the daemon a moment
    // (a loaded machine may take a while to run its closing).
    let mut after = procfs::usage(daemon.pid())?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while after.open_fds > before.open_fds && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        after = procfs::usage(daemon.pid())?;
    }
    // The persistent port is still there, without clients.
    let list = daemon.cli_json(&["list", "--json"])?;
    let keep = list["switches"][0]["ports"]
        .as_array()
        .and_then(|ports| ports.iter().find(|p| p["name"] == "vale0:keep").cloned())
        .context("persistent port vanished")?;
    assert_eq!(keep["clients"], 0);
    assert_eq!(keep["persistent"], true);
    assert!(
        after.open_fds <= before.open_fds,
        "daemon fds grew from {} to {} over 100 kills",
        before.open_fds,
        after.open_fds
    );
    assert!(
        after.rss_bytes <= before.rss_bytes + 16 * 1024 * 1024,
        "daemon memory grew from {} to {} bytes over 100 kills",
        before.rss_bytes,
        after.rss_bytes
    );
    // The background pair kept forwarding throughout: every frame sent was
    // received intact, or dropped at the receiver's full ring and counted.
    ensure!(
        bg.try_wait()?.is_none(),
        "the background sender ended during the kill rounds: {}",
        bg.read_stderr()?
    );
    testbed::wait_until(Duration::from_secs(30), Duration::from_millis(10), || {
        daemon
            .counters("vale0:bg-tx")
            .is_ok_and(|c| c.rx_packets >= BACKGROUND_MIN_FRAMES)
    })
    .with_context(|| {
        format!(
            "background sender stalled: {:?}",
            daemon.counters("vale0:bg-tx")
        )
    })?;
    bg.kill(libc::SIGINT)?;
    let bg_sum = pktgen_summary(&mut bg, Duration::from_secs(30))?;
    assert_eq!(bg_sum["stopped_by"], "SIGINT", "{bg_sum}");
    let sent = field(&bg_sum, "packets");
    let bg_port = daemon.settled_counters("vale0:bg-rx", sent)?;
    let rx_sum = pktgen_summary(&mut rx, Duration::from_secs(30))?;
    assert!(sent >= BACKGROUND_MIN_FRAMES, "{bg_sum}");
    assert_eq!(field(&rx_sum, "corrupt"), 0, "{rx_sum}");
    assert_eq!(field(&rx_sum, "duplicates"), 0, "{rx_sum}");
    assert_eq!(field(&rx_sum, "reordered"), 0, "{rx_sum}");
    assert_eq!(
        field(&rx_sum, "packets"),
        bg_port.tx_packets,
        "rx {rx_sum} port {bg_port:?}"
    );
    assert_eq!(
        bg_port.tx_packets + bg_port.drop_ring_full,
        sent,
        "background frames unaccounted for: sent {sent}, port {bg_port:?}"
    );
    assert_eq!(bg_port.drops(), bg_port.drop_ring_full, "{bg_port:?}");
    eprintln!(
        "background: {sent} sent, {} received, {} dropped at the full ring; kill rounds took {:.1} s",
        bg_port.tx_packets, bg_port.drop_ring_full, rounds_secs
    );
    Ok(())
}

/// Starts a pktgen tx on `port`, waits until its frames flow, SIGKILLs it,
/// and waits for the port to lose its client (or disappear).
/// Each victim has its own source address and sends to the background
/// sender (learned at its port), so the background receiver sees none of it.
fn kill_one(daemon: &Daemon, port: &str, goes_away: bool, round: u32) -> Result<()> {
    let before = daemon.counters(port).map(|c| c.rx_packets).unwrap_or(0);
    let src = format!("02:00:00:01:{:02x}:{:02x}", round >> 8, round & 0xff);
    let mut victim = daemon.spawn(
        "victim",
        &[
            "pktgen",
            port,
            "--mode",
            "tx",
            "--rate",
            "100000",
            "-q",
            "--src-mac",
            &src,
            "--dst-mac",
            BACKGROUND_MAC,
        ],
    )?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if daemon
            .counters(port)
            .map(|c| c.rx_packets > before)
            .unwrap_or(false)
        {
            break;
        }
        ensure!(Instant::now() < deadline, "victim on {port} never sent");
        std::thread::sleep(Duration::from_millis(2));
    }
    victim.kill(libc::SIGKILL)?;
    victim.wait_timeout(Duration::from_secs(5))?;
    if goes_away {
        daemon.wait_port(port, false)?;
    } else {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let list = daemon.cli_json(&["list", "--json"])?;
            let clients = list["switches"][0]["ports"].as_array().and_then(|ports| {
                ports
                    .iter()
                    .find(|p| p["name"] == port)
                    .map(|p| p["clients"].clone())
            });
            if clients == Some(serde_json::json!(0)) {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "{port} kept its dead client: {list}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    Ok(())
}
