//! Traffic through NIC ports: two namespaces whose veths are attached to
//! `vale0` ping each other (ARP resolved through the switch), move 100 MB
//! over TCP intact, and a pktgen port on the same switch gets the flooded
//! broadcasts; a two-queue veth attached with `--queues all` carries
//! traffic on both queues, and with `--threads 2` each queue is served by
//! its own forwarding thread.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use e2e_tests::nic::{fdb, send_test_frames, NicBed, HOST_IF};
use e2e_tests::tcp_transfer::tcp_transfer;
use e2e_tests::{field, pktgen_summary, Daemon};
use testbed::{Mac, Queues};

/// Bytes the TCP test moves.
const TRANSFER_BYTES: u64 = 100 * 1000 * 1000;
/// The TCP port of the test server (inside its own namespace).
const TCP_PORT: u16 = 5001;
/// Longest a TCP read or write may block.
const IO_TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn two_namespaces_ping_arp_and_move_100_mb_through_nic_ports() -> Result<()> {
    let bed = NicBed::new(&["a0", "b0"], None)?;
    let (h1, h2) = (&bed.hosts[0], &bed.hosts[1]);
    // A pktgen port on the same switch: it gets every flooded frame.
    let mut sink = bed.daemon.spawn(
        "sink",
        &[
            "pktgen",
            "vale0:p",
            "--mode",
            "rx",
            "--json",
            "-q",
            "--idle-timeout",
            "3",
            "--duration",
            "60",
        ],
    )?;
    bed.daemon.wait_port("vale0:p", true)?;
    bed.attach("a0", &[])?;
    bed.attach("b0", &[])?;

    ensure!(
        h1.ping(&h2.addr, 3)?,
        "h1 -> h2 ping failed: {}",
        bed.daemon.log()
    );
    ensure!(h2.ping(&h1.addr, 3)?, "h2 -> h1 ping failed");

    // ARP was resolved through the switch: each host knows the other's MAC,
    // and the switch learned both MACs on the right ports.
    for (from, to) in [(h1, h2), (h2, h1)] {
        let neigh = from.ns.ip(["neigh", "show", &to.addr, "dev", HOST_IF])?;
        ensure!(
            neigh.contains(&to.mac.to_string()),
            "{} has no ARP entry for {}: {neigh}",
            from.addr,
            to.addr
        );
    }
    let table = fdb(&bed.daemon)?;
    for (host, port) in [(h1, "vale0:a0"), (h2, "vale0:b0")] {
        ensure!(
            table
                .iter()
                .any(|(mac, p)| *mac == host.mac.to_string() && p == port),
            "{} not learned on {port}: {table:?}",
            host.mac
        );
    }

    // 100 MB over TCP, every byte checked.
    let took = tcp_transfer(
        &h1.ns,
        &h2.ns,
        &h2.addr,
        TCP_PORT,
        TRANSFER_BYTES,
        IO_TIMEOUT,
    )?;
    eprintln!(
        "100 MB over TCP through two NIC ports in {:.2} s",
        took.as_secs_f64()
    );

    // The pktgen port saw the ARP broadcasts (not test frames: foreign),
    // and nothing else: the unicast traffic went only where it belonged.
    let summary = pktgen_summary(&mut sink, Duration::from_secs(90))?;
    assert!(field(&summary, "foreign") >= 1, "{summary}");
    assert_eq!(field(&summary, "packets"), 0, "{summary}");
    assert_eq!(field(&summary, "corrupt"), 0, "{summary}");
    assert!(
        field(&summary, "foreign") < 100,
        "TCP traffic was flooded to the pktgen port: {summary}"
    );
    // h1's data segments entered the switch through a0's socket (at most
    // 1448 bytes each), its ACKs left through it.
    let a0 = bed.extra_counters("vale0:a0")?;
    assert!(a0["xsk_rx"] >= TRANSFER_BYTES / 1448, "{a0:?}");
    assert!(a0["xsk_tx"] > 0, "{a0:?}");
    assert_eq!(a0["xsk_invalid_descs"], 0, "{a0:?}");
    Ok(())
}

#[test]
fn busy_polled_nic_ports_carry_ping_and_tcp() -> Result<()> {
    let bed = NicBed::new(&["bp0", "bp1"], None)?;
    let (h1, h2) = (&bed.hosts[0], &bed.hosts[1]);
    bed.attach("bp0", &["--busy-poll", "64"])?;
    bed.attach("bp1", &["--busy-poll", "8"])?;
    ensure!(
        h1.ping(&h2.addr, 3)?,
        "h1 -> h2 ping failed: {}",
        bed.daemon.log()
    );
    ensure!(h2.ping(&h1.addr, 3)?, "h2 -> h1 ping failed");
    tcp_transfer(
        &h1.ns,
        &h2.ns,
        &h2.addr,
        TCP_PORT,
        10 * 1000 * 1000,
        IO_TIMEOUT,
    )?;
    for port in ["vale0:bp0", "vale0:bp1"] {
        let extra = bed.extra_counters(port)?;
        assert_eq!(extra["busy_poll_errors"], 0, "{port}: {extra:?}");
        assert!(extra["xsk_rx"] > 0, "{port}: {extra:?}");
    }
    assert!(bed
        .daemon
        .log()
        .contains("busy polling with a budget of 64"));
    Ok(())
}

/// Per-queue XDP redirect counts of `iface` in the switch namespace, from
/// the veth driver's statistics.
fn redirects_per_queue(bed: &NicBed, iface: &str, queues: usize) -> Result<Vec<u64>> {
    let text = bed.switch.run("ethtool", ["-S", iface])?;
    testbed::link::queue_stat(&text, "xdp_redirect", queues)
        .with_context(|| format!("no rx_queue_N_xdp_redirect in {text}"))
}

/// Frames sent on each queue of a two-queue veth.
const PER_QUEUE: u64 = 2000;

#[test]
fn a_two_queue_veth_carries_traffic_on_both_queues() -> Result<()> {
    let bed = NicBed::new(&["a0"], Some(Queues { rx: 2, tx: 2 }))?;
    two_queue_traffic(&bed)
}

#[test]
fn two_queues_on_two_threads_are_served_one_queue_per_thread() -> Result<()> {
    let bed = NicBed::with_daemon(&["q2t"], Some(Queues { rx: 2, tx: 2 }), |ns| {
        Daemon::start_in(ns, &["--threads", "2"])
    })?;
    let before = thread_frames(&bed)?;
    ensure!(before.len() == 2, "not two threads: {before:?}");
    two_queue_traffic(&bed)?;
    let after = thread_frames(&bed)?;
    // The pktgen port (first added) sits on one thread, the queues then
    // go one to each thread: each thread read exactly one queue's frames.
    for t in 0..2 {
        assert_eq!(
            after[t] - before[t],
            PER_QUEUE,
            "thread {t}: before {before:?} after {after:?}"
        );
    }
    Ok(())
}

/// Frames each forwarding thread read, in thread order.
fn thread_frames(bed: &NicBed) -> Result<Vec<u64>> {
    let stats = bed.daemon.cli_json(&["stats", "--json"])?;
    let threads = stats["threads"]
        .as_array()
        .with_context(|| format!("no threads in {stats}"))?;
    Ok(threads.iter().map(|t| field(t, "frames")).collect())
}

/// Attaches the first host's two-queue veth with `--queues all` and sends
/// `PER_QUEUE` test frames into each queue: all arrive at a pktgen port
/// intact and in order, each queue redirected its share.
fn two_queue_traffic(bed: &NicBed) -> Result<()> {
    let host = &bed.hosts[0];
    let port = format!("vale0:{}", host.port_if);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    ensure!(cpus >= 2, "this test needs two CPUs to reach two queues");
    let mut rx = bed.daemon.spawn(
        "rx",
        &[
            "pktgen",
            "vale0:rx",
            "--mode",
            "rx",
            "--json",
            "-q",
            "--idle-timeout",
            "2",
            "--duration",
            "60",
        ],
    )?;
    bed.daemon.wait_port("vale0:rx", true)?;
    bed.attach(&host.port_if, &["--queues", "all"])?;
    let extra = bed.extra_counters(&port)?;
    assert_eq!(extra["xsk_queues"], 2, "{extra:?}");
    let before = redirects_per_queue(bed, &host.port_if, 2)?;

    // One sender per CPU, each with its own source MAC (its own sequence):
    // the host's veth transmits on queue `cpu`, the switch's end receives
    // on the same queue.
    let dst = Mac([0x02, 0x76, 0x73, 0x6e, 0xff, 0x01]);
    for cpu in 0..2 {
        let src = Mac([0x02, 0x76, 0x73, 0x6e, 0x10, cpu as u8]);
        let mut sent = 0;
        // Bursts of 100 with a pause, a rate the switch and the receiver
        // keep up with on a busy machine.
        for burst in 0..PER_QUEUE / 100 {
            let seqs = burst * 100..(burst + 1) * 100;
            sent += send_test_frames(&host.ns, HOST_IF, src, dst, seqs, 60, Some(cpu))?;
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(sent, PER_QUEUE);
    }
    let summary = pktgen_summary(&mut rx, Duration::from_secs(90))?;
    let after = redirects_per_queue(bed, &host.port_if, 2)?;
    let extra = bed.extra_counters(&port)?;
    for q in 0..2 {
        assert_eq!(
            after[q] - before[q],
            PER_QUEUE,
            "queue {q}: before {before:?} after {after:?}; {extra:?}"
        );
    }
    assert_eq!(extra["xsk_rx"], 2 * PER_QUEUE, "{extra:?}");
    assert_eq!(extra["xdp_redirected"], 2 * PER_QUEUE, "{extra:?}");
    assert_eq!(extra["xsk_fill_ring_empty"], 0, "{extra:?}");
    // Every frame crossed the switch intact and in order per sender.
    assert_eq!(field(&summary, "packets"), 2 * PER_QUEUE, "{summary}");
    assert_eq!(field(&summary, "lost"), 0, "{summary}");
    assert_eq!(field(&summary, "reordered"), 0, "{summary}");
    assert_eq!(field(&summary, "corrupt"), 0, "{summary}");
    Ok(())
}
