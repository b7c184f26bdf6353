//! Jumbo frames through NIC ports: two namespaces on veths at MTU 9000
//! (both ends), each veth attached as a NIC port, move 20 MB over TCP in
//! 9014-byte frames (multi-buffer AF_XDP sockets under the `xdp.frags`
//! program); 9000-byte frames also reach the host TAP and a shared-memory
//! port whose buffers hold them, while a standard-MTU NIC port and a
//! 2 KiB-buffer shared-memory port drop them as too long and count them.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use e2e_tests::nic::{send_test_frames, NicBed, HOST_IF};
use e2e_tests::tcp_transfer::tcp_transfer;
use switch_port::client::{PortClient, PortConfig};
use testbed::{wait_until, Mac};

/// Bytes the transfer moves.
const TRANSFER_BYTES: u64 = 20 * 1000 * 1000;
/// The server's TCP port (inside its namespace).
const TCP_PORT: u16 = 5009;
/// Longest a TCP read or write may block.
const IO_TIMEOUT: Duration = Duration::from_secs(20);
/// The jumbo MTU.
const MTU: &str = "9000";
/// The largest frame at that MTU (with a VLAN tag): what the sockets hold.
const MAX_FRAME: u64 = 9018;
/// What one 4 KiB UMEM frame holds: longer frames took several.
const ONE_UMEM_FRAME: u64 = 4096 - 256;

/// Raises the MTU of host `i`'s veth, both ends, to [`MTU`].
fn raise_mtu(bed: &NicBed, i: usize) -> Result<()> {
    let host = &bed.hosts[i];
    bed.switch.ip(["link", "set", &host.port_if, "mtu", MTU])?;
    host.ns.ip(["link", "set", HOST_IF, "mtu", MTU])?;
    Ok(())
}

#[test]
fn tcp_at_mtu_9000_crosses_two_nic_ports_in_jumbo_frames() -> Result<()> {
    let bed = NicBed::new(&["ja0", "jb0"], None)?;
    raise_mtu(&bed, 0)?;
    raise_mtu(&bed, 1)?;
    bed.attach("ja0", &[])?;
    bed.attach("jb0", &[])?;
    let (h1, h2) = (&bed.hosts[0], &bed.hosts[1]);
    for port in ["vale0:ja0", "vale0:jb0"] {
        let extra = bed.extra_counters(port)?;
        ensure!(extra["xsk_max_frame"] == MAX_FRAME, "{port}: {extra:?}");
    }
    // One unfragmented 9000-byte IP packet each way.
    h1.ns
        .run(
            "ping",
            ["-c", "1", "-W", "2", "-M", "do", "-s", "8972", &h2.addr],
        )
        .context("a 9000-byte ping through the switch")?;

    let before = bed.daemon.counters("vale0:ja0")?;
    let took = tcp_transfer(
        &h1.ns,
        &h2.ns,
        &h2.addr,
        TCP_PORT,
        TRANSFER_BYTES,
        IO_TIMEOUT,
    )?;
    eprintln!(
        "20 MB over TCP at MTU 9000 through two NIC ports in {:.2} s ({:.0} Mbit/s)",
        took.as_secs_f64(),
        TRANSFER_BYTES as f64 * 8.0 / took.as_secs_f64() / 1e6
    );

    // h1's data segments entered through ja0 and left through jb0 as
    // frames longer than one UMEM frame: not segmented smaller.
    let segments = TRANSFER_BYTES / 8948;
    let a = bed.extra_counters("vale0:ja0")?;
    let b = bed.extra_counters("vale0:jb0")?;
    ensure!(a["xsk_rx_multi_buffer"] >= segments / 2, "ja0: {a:?}");
    ensure!(b["xsk_tx_multi_buffer"] >= segments / 2, "jb0: {b:?}");
    for (port, extra) in [("ja0", &a), ("jb0", &b)] {
        for key in ["xsk_invalid_descs", "xsk_rx_too_long", "xsk_rx_broken"] {
            ensure!(extra[key] == 0, "{port} {key}: {extra:?}");
        }
    }
    let after = bed.daemon.counters("vale0:ja0")?;
    let (packets, bytes) = (
        after.rx_packets - before.rx_packets,
        after.rx_bytes - before.rx_bytes,
    );
    ensure!(
        packets > 0 && bytes / packets > ONE_UMEM_FRAME,
        "ja0 received {packets} frames of {bytes} bytes: not jumbo"
    );
    ensure!(after.drop_too_long == 0, "{after:?}");
    Ok(())
}

/// Receives frames of `port` until `want` arrived or 10 s passed; their lengths.
fn receive_lengths(port: &mut PortClient, want: usize) -> Vec<usize> {
    let mut lengths = Vec::new();
    let _ = wait_until(Duration::from_secs(10), Duration::from_millis(5), || {
        port.recv(256, |frame| lengths.push(frame.len()));
        lengths.len() >= want
    });
    lengths
}

#[test]
fn jumbo_frames_reach_big_buffers_and_small_ones_count_them_as_too_long() -> Result<()> {
    let bed = NicBed::new(&["jc0", "jd0"], None)?;
    // jc0 is jumbo and gives the host a port; jd0 keeps MTU 1500.
    raise_mtu(&bed, 0)?;
    bed.attach("jc0", &["--host"])?;
    bed.attach("jd0", &[])?;
    let tap = "jc0-host";
    bed.daemon.wait_port(&format!("vale0:{tap}"), true)?;
    let link = bed.switch.ip(["link", "show", tap])?;
    ensure!(link.contains("mtu 9000"), "the TAP follows the NIC: {link}");
    bed.switch.add_addr(tap, "10.9.0.100/24")?;

    // The host stack talks to h1 in unfragmented 9000-byte packets.
    let h1 = &bed.hosts[0];
    h1.ns
        .run(
            "ping",
            ["-c", "1", "-W", "2", "-M", "do", "-s", "8972", "10.9.0.100"],
        )
        .context("a 9000-byte ping to the host TAP")?;

    let socket = bed.daemon.socket().to_owned();
    let open = |name: &str, buf_size: u32| -> Result<PortClient> {
        Ok(PortClient::open(
            &socket,
            name,
            PortConfig {
                buf_size: Some(buf_size),
                ..PortConfig::default()
            },
        )?)
    };
    let mut big = open("vale0:big", 9216)?;
    let mut small = open("vale0:small", 2048)?;

    // Flooded (unknown destination) 9000-byte frames from h1.
    const FRAMES: u64 = 50;
    let jd0_before = bed.daemon.counters("vale0:jd0")?;
    let stranger = Mac([0x02, 0x76, 0x73, 0x6e, 0x00, 0x99]);
    let sent = send_test_frames(&h1.ns, HOST_IF, h1.mac, stranger, 0..FRAMES, 9000, None)?;
    ensure!(sent == FRAMES, "sent {sent}");
    let lengths = receive_lengths(&mut big, FRAMES as usize);
    ensure!(
        lengths.len() == FRAMES as usize && lengths.iter().all(|&l| l == 9000),
        "the 9216-byte port got {lengths:?}"
    );
    let settled = |port: &str| {
        let mut last = None;
        let _ = wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
            last = bed.daemon.counters(port).ok();
            last.is_some_and(|c| c.drop_too_long >= FRAMES)
        });
        last
    };
    let small_counters = settled("vale0:small").context("counters")?;
    ensure!(
        small_counters.drop_too_long == FRAMES && small_counters.tx_packets == 0,
        "small: {small_counters:?}"
    );
    let jd0 = settled("vale0:jd0").context("counters")?;
    ensure!(
        jd0.drop_too_long == FRAMES && jd0.tx_packets == jd0_before.tx_packets,
        "jd0 (MTU 1500): {jd0:?}"
    );
    ensure!(small.recv(256, |_| ()) == 0, "the 2 KiB port got frames");
    // Delivered in the same batches, but perhaps after the other ports.
    let host_port = format!("vale0:{tap}");
    let mut host = bed.daemon.counters(&host_port)?;
    let _ = wait_until(Duration::from_secs(10), Duration::from_millis(10), || {
        host = bed.daemon.counters(&host_port).unwrap_or(host);
        host.tx_packets >= FRAMES
    });
    ensure!(host.tx_packets >= FRAMES, "host port: {host:?}");
    ensure!(host.drop_too_long == 0, "host port: {host:?}");
    Ok(())
}
