//! A VXLAN tunnel port against Linux's vxlan device. Namespace "switch"
//! runs our daemon: a NIC port towards host H (10.9.0.1) and a tunnel port
//! (VNI 42) over the underlay veth to namespace "linux", where a `vxlan`
//! device with the same VNI and port 4789 sits on a Linux bridge with a
//! veth to host C (10.9.0.2). H and C ping each other and move 50 MB over
//! TCP each way, every byte checked; each side learns the other's MAC
//! behind the other's VTEP; a frame too large for the underlay is dropped
//! and counted, not fragmented. Then both sides flood through a multicast
//! group instead.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use e2e_tests::nic::{extra_counters, fdb, ping_from, NicBed, HOST_IF};
use e2e_tests::tcp_transfer::tcp_transfer;
use e2e_tests::tunnel::{add_tunnel, tunnel_info, underlay, underlay_addr};
use testbed::{wait_until, Mac, Netns};

const VNI: u32 = 42;
const TRANSFER_BYTES: u64 = 50 * 1000 * 1000;
const IO_TIMEOUT: Duration = Duration::from_secs(30);
const C_MAC: Mac = Mac([0x02, 0x76, 0x73, 0x6e, 0x00, 0x02]);

/// The Linux side: namespace "linux" with vx0 on br0, and host C behind it.
struct LinuxSide {
    host: Netns,
    vtep: Netns,
}

/// Builds the Linux side; `flood` is how its vxlan device reaches us:
/// `["remote", IP]` or `["group", MCAST_IP]`.
fn linux_side(switch: &Netns, flood: [&str; 2]) -> Result<LinuxSide> {
    let vtep = Netns::new(testbed::DEFAULT_PREFIX)?;
    vtep.disable_ipv6()?;
    let host = Netns::new(testbed::DEFAULT_PREFIX)?;
    host.disable_ipv6()?;
    underlay(switch, &vtep)?;
    let vni = VNI.to_string();
    let local = underlay_addr(2);
    vtep.ip([
        "link", "add", "vx0", "type", "vxlan", "id", &vni, "local", &local, flood[0], flood[1],
        "dstport", "4789", "dev", "ul0",
    ])?;
    // The stack on this side never sends partial checksums into the tunnel.
    vtep.run("ethtool", ["-K", "vx0", "tx", "off"])?;
    vtep.add_bridge("br0")?;
    vtep.enslave("vx0", "br0")?;
    vtep.add_veth("bh0", HOST_IF, Some(&host), None)?;
    vtep.enslave("bh0", "br0")?;
    for link in ["vx0", "bh0", "br0"] {
        vtep.set_up(link)?;
    }
    host.set_mac(HOST_IF, C_MAC)?;
    // The vxlan device's MTU: the underlay's less 50 bytes.
    host.set_mtu(HOST_IF, 1450)?;
    host.add_addr(HOST_IF, "10.9.0.2/24")?;
    host.run("ethtool", ["-K", HOST_IF, "tx", "off"])?;
    host.set_up(HOST_IF)?;
    wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
        vtep.bridge_port_state("bh0")
            .is_ok_and(|s| s.contains("forwarding"))
            && vtep
                .bridge_port_state("vx0")
                .is_ok_and(|s| s.contains("forwarding"))
            && host.is_lower_up(HOST_IF).unwrap_or(false)
    })
    .context("the Linux bridge's ports did not start forwarding")?;
    Ok(LinuxSide { host, vtep })
}

/// Pings `target` once from `ns` with `size` bytes of payload and Don't
/// Fragment set; whether it was answered.
fn ping_size(ns: &Netns, target: &str, size: usize) -> Result<bool> {
    let out = ns
        .command("ping")
        .args([
            "-c",
            "1",
            "-W",
            "2",
            "-M",
            "do",
            "-s",
            &size.to_string(),
            target,
        ])
        .output()?;
    Ok(out.status.success())
}

#[test]
fn our_tunnel_and_linux_vxlan_ping_learn_and_move_50_mb_each_way() -> Result<()> {
    against_linux(false)
}

/// The same with our tunnel on an AF_XDP underlay (`--underlay-xdp`): the
/// Linux side sees the same wire format, and the datagrams go through the
/// AF_XDP sockets.
#[test]
fn our_af_xdp_underlay_and_linux_vxlan_ping_learn_and_move_50_mb_each_way() -> Result<()> {
    against_linux(true)
}

/// Pings, learning on both sides, 50 MB of TCP each way and the MTU limit
/// between our tunnel (on an AF_XDP underlay with `xdp`) and Linux's vxlan
/// device.
fn against_linux(xdp: bool) -> Result<()> {
    let options: &[&str] = if xdp { &["--underlay-xdp"] } else { &[] };
    let bed = NicBed::new(&["h0"], None)?;
    let h = &bed.hosts[0];
    let linux = linux_side(&bed.switch, ["remote", &underlay_addr(1)])?;
    bed.attach("h0", &[])?;
    add_tunnel(
        &bed.daemon,
        "vx",
        VNI,
        &underlay_addr(1),
        &underlay_addr(2),
        options,
    )?;

    ensure!(
        h.ping("10.9.0.2", 3)?,
        "H -> C across the tunnel failed\ndaemon log:\n{}",
        bed.daemon.log()
    );
    ensure!(
        ping_from(&linux.host, &h.addr, 3)?,
        "C -> H across the tunnel failed"
    );

    // Learning, our side: C behind the tunnel port, H on its NIC port; the
    // tunnel knows C's VTEP.
    let table = fdb(&bed.daemon)?;
    let has = |mac: Mac, port: &str| {
        table
            .iter()
            .any(|(m, p)| *m == mac.to_string() && p == port)
    };
    ensure!(
        has(C_MAC, "vale0:vx"),
        "C not learned on the tunnel: {table:?}"
    );
    ensure!(has(h.mac, "vale0:h0"), "H not learned on h0: {table:?}");
    let info = tunnel_info(&bed.daemon, "vale0:vx")?;
    ensure!(info["learned"].as_u64() >= Some(1), "{info}");
    ensure!(info["hashed_source_port"] == true, "{info}");
    let c_mac = C_MAC.to_string();
    ensure!(
        info["vteps"].as_array().is_some_and(|v| v
            .iter()
            .any(|e| e["mac"] == c_mac.as_str() && e["vtep"] == underlay_addr(2).as_str())),
        "the tunnel did not learn {c_mac} behind {}: {info}",
        underlay_addr(2)
    );
    // Learning, Linux's side: H's MAC behind our VTEP.
    let linux_fdb = linux.vtep.run("bridge", ["fdb", "show", "dev", "vx0"])?;
    let h_mac = h.mac.to_string();
    ensure!(
        linux_fdb
            .lines()
            .any(|l| l.starts_with(&h_mac) && l.contains(&format!("dst {}", underlay_addr(1)))),
        "vx0 did not learn {h_mac} behind {}: {linux_fdb}",
        underlay_addr(1)
    );

    for (from, to, to_addr, port) in [
        (&h.ns, &linux.host, "10.9.0.2", 5001),
        (&linux.host, &h.ns, h.addr.as_str(), 5002),
    ] {
        let took = tcp_transfer(from, to, to_addr, port, TRANSFER_BYTES, IO_TIMEOUT)
            .with_context(|| format!("50 MB to {to_addr}\ndaemon log:\n{}", bed.daemon.log()))?;
        eprintln!(
            "50 MB over TCP to {to_addr} through the tunnel in {:.2} s",
            took.as_secs_f64()
        );
    }

    // MTU: a 1450-byte IP packet (a 1464-byte frame) fits a 1500-byte
    // underlay; one byte more is dropped and counted.
    ensure!(
        ping_size(&h.ns, "10.9.0.2", 1422)?,
        "a 1450-byte packet did not cross"
    );
    let before = extra_counters(&bed.daemon, "vale0:vx")?["encap_oversize"];
    ensure!(
        !ping_size(&h.ns, "10.9.0.2", 1423)?,
        "a 1451-byte packet crossed a 1500-byte underlay"
    );
    let vx = extra_counters(&bed.daemon, "vale0:vx")?;
    assert_eq!(vx["encap_oversize"], before + 1, "{vx:?}");
    let counters = bed.daemon.counters("vale0:vx")?;
    assert!(counters.drop_too_long > before, "{counters:?}");

    // Nothing arrived malformed or for another VNI, nothing was lost in
    // the socket.
    for key in [
        "decap_wrong_vni",
        "decap_bad_header",
        "decap_short",
        "decap_oversize",
        "rx_socket_dropped",
        "tx_failed",
    ] {
        assert_eq!(vx[key], 0, "{key}: {vx:?}");
    }
    assert!(counters.rx_packets >= TRANSFER_BYTES / 1410, "{counters:?}");
    if xdp {
        // The transfers went through the AF_XDP sockets, both ways.
        ensure!(
            vx["xdp_redirected"] >= TRANSFER_BYTES / 1410,
            "few datagrams received through AF_XDP: {vx:?}"
        );
        ensure!(
            vx["xdp_tx_neighbour_unknown"] < 100,
            "few datagrams sent through AF_XDP: {vx:?}"
        );
        for key in ["xdp_rx_malformed", "xdp_rx_not_udp", "xdp_tx_ring_full"] {
            assert_eq!(vx[key], 0, "{key}: {vx:?}");
        }
    }
    Ok(())
}

/// Both sides flood through a multicast group instead of listing each
/// other: pings cross both ways and each side learns the other's unicast
/// VTEP.
#[test]
fn our_tunnel_and_linux_vxlan_meet_in_a_multicast_group() -> Result<()> {
    const GROUP: &str = "239.1.1.42";
    let bed = NicBed::new(&["h0"], None)?;
    let h = &bed.hosts[0];
    let linux = linux_side(&bed.switch, ["group", GROUP])?;
    bed.attach("h0", &[])?;
    let vni = VNI.to_string();
    let local = underlay_addr(1);
    e2e_tests::tunnel::cli(
        &bed.daemon,
        &[
            "tunnel", "add", "vale0", "vx", "--vni", &vni, "--local", &local, "--group", GROUP,
        ],
    )?;
    bed.daemon.wait_port("vale0:vx", true)?;
    ensure!(
        h.ping("10.9.0.2", 3)?,
        "H -> C through the group failed\ndaemon log:\n{}",
        bed.daemon.log()
    );
    ensure!(
        ping_from(&linux.host, &h.addr, 3)?,
        "C -> H through the group failed"
    );
    let linux_fdb = linux.vtep.run("bridge", ["fdb", "show", "dev", "vx0"])?;
    let h_mac = h.mac.to_string();
    ensure!(
        linux_fdb
            .lines()
            .any(|l| l.starts_with(&h_mac) && l.contains(&format!("dst {local}"))),
        "vx0 did not learn {h_mac} behind {local}: {linux_fdb}"
    );
    let info = tunnel_info(&bed.daemon, "vale0:vx")?;
    ensure!(info["learned"].as_u64() >= Some(1), "{info}");
    Ok(())
}
