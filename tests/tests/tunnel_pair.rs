//! Two of our daemons in two namespaces ("hosts") joined by a veth
//! underlay, each with a tunnel port (VNI 7) towards the other: pktgen
//! frames cross from one host's switch to the other's, every frame
//! accounted for; pings and pongs teach each side the other's MAC behind
//! the other VTEP; malformed and foreign datagrams and oversize frames are
//! dropped and counted by reason; a VM on one host sends to a VM on the
//! other.

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use e2e_tests::nic::extra_counters;
use e2e_tests::tunnel::{add_tunnel, cli, tunnel_info, underlay, underlay_addr};
use e2e_tests::{field, pktgen_summary, Daemon, Vm};
use testbed::{wait_until, Netns};

const VNI: u32 = 7;
const FRAMES: u64 = 20_000;
/// The receivers' ring: 1.6 s of the tests' traffic, so a receiver that a
/// loaded machine leaves without CPU for a while still loses nothing (the
/// default 1024 slots are 0.1 s at 10,000 frames a second).
const RX_RING: &str = "16384";
/// The options of the receiving pktgens that count [`FRAMES`].
const RX_ARGS: [&str; 6] = [
    "--idle-timeout",
    "3",
    "--duration",
    "60",
    "--ring-size",
    RX_RING,
];

/// Two hosts, each a namespace with a daemon and a tunnel port `vale0:vx`
/// to the other. Daemons are declared first: stopped before the
/// namespaces go.
struct Pair {
    daemons: [Daemon; 2],
    _hosts: [Netns; 2],
}

fn pair() -> Result<Pair> {
    pair_with(&[])
}

/// Like [`pair`], with `extra` options on both `tunnel add`s (and no
/// `--remote` when `extra` names a `--group`).
fn pair_with(extra: &[&str]) -> Result<Pair> {
    let a = Netns::new(testbed::DEFAULT_PREFIX)?;
    let b = Netns::new(testbed::DEFAULT_PREFIX)?;
    for ns in [&a, &b] {
        ns.disable_ipv6()?;
    }
    underlay(&a, &b)?;
    let da = Daemon::start_in(&a, &[])?;
    let db = Daemon::start_in(&b, &[])?;
    for (d, local, remote) in [(&da, 1, 2), (&db, 2, 1)] {
        if extra.contains(&"--group") {
            let vni = VNI.to_string();
            let local = underlay_addr(local);
            let mut args = vec![
                "tunnel", "add", "vale0", "vx", "--vni", &vni, "--local", &local,
            ];
            args.extend_from_slice(extra);
            cli(d, &args)?;
        } else {
            let (local, remote) = (underlay_addr(local), underlay_addr(remote));
            add_tunnel(d, "vx", VNI, &local, &remote, extra)?;
        }
    }
    Ok(Pair {
        daemons: [da, db],
        _hosts: [a, b],
    })
}

fn fdb_has(daemon: &Daemon, mac: &str, port: &str) -> Result<bool> {
    let table = daemon.cli_json(&["fdb", "vale0", "--json"])?;
    Ok(table["entries"]
        .as_array()
        .is_some_and(|e| e.iter().any(|r| r["mac"] == mac && r["port"] == port)))
}

fn vx(daemon: &Daemon) -> Result<BTreeMap<String, u64>> {
    extra_counters(daemon, "vale0:vx")
}

/// Both tunnel ports' counters and the ping and pong ports', for a failed
/// ping-pong's message (a ping answered after pktgen's 1 s timeout and one
/// dropped on the way look the same in the ping's summary).
fn ping_pong_counters(da: &Daemon, db: &Daemon) -> String {
    format!(
        "A vx {:?} {:?}\nB vx {:?} {:?}\nA ping {:?}\nB pong {:?}",
        da.counters("vale0:vx"),
        vx(da),
        db.counters("vale0:vx"),
        vx(db),
        da.counters("vale0:ping"),
        db.counters("vale0:pong"),
    )
}

#[test]
fn pktgen_frames_cross_between_two_daemons_every_one_accounted_for() -> Result<()> {
    let p = pair()?;
    let [da, db] = &p.daemons;
    pktgen_across(da, db, "")?;
    let (a, b) = (da.counters("vale0:vx")?, db.counters("vale0:vx")?);
    let (ax, bx) = (vx(da)?, vx(db)?);
    let summary = format!("A vx {a:?} {ax:?}\nB vx {b:?} {bx:?}");
    // Broadcast frames: each flooded to the one remote, encapsulated once.
    assert_eq!(a.tx_packets, FRAMES, "{summary}");
    assert_eq!(ax["encap_flooded"], FRAMES, "{summary}");
    assert_eq!(a.drops(), 0, "{summary}");
    assert_eq!(b.rx_packets, FRAMES, "{summary}");
    assert_eq!(bx["rx_socket_dropped"], 0, "{summary}");
    Ok(())
}

/// Sends [`FRAMES`] pktgen frames from `from`'s switch to `to`'s across the
/// tunnel; every one arrives once, in order, intact.
fn pktgen_across(from: &Daemon, to: &Daemon, tag: &str) -> Result<()> {
    let (rx_port, tx_port) = (format!("vale0:rx{tag}"), format!("vale0:tx{tag}"));
    let mut rx = to.pktgen_rx(&rx_port, &RX_ARGS)?;
    let rate = (FRAMES / 2).to_string();
    let mut tx = from.pktgen_tx(&tx_port, &["--count", &FRAMES.to_string(), "--rate", &rate])?;
    let sent = pktgen_summary(&mut tx, Duration::from_secs(60))?;
    // The receiver's port (and its drops) while it is still open.
    let receiver = to.counters(&rx_port);
    let got = pktgen_summary(&mut rx, Duration::from_secs(60))?;
    let summary = format!(
        "{tag}: sent {sent}\nreceived {got}\nreceiver {receiver:?}\nfrom {:?} {:?}\nto {:?} {:?}",
        from.counters("vale0:vx")?,
        vx(from)?,
        to.counters("vale0:vx")?,
        vx(to)?,
    );
    assert_eq!(field(&sent, "packets"), FRAMES, "{summary}");
    assert_eq!(field(&got, "packets"), FRAMES, "{summary}");
    for key in ["lost", "corrupt", "duplicates", "reordered", "foreign"] {
        assert_eq!(field(&got, key), 0, "{key}: {summary}");
    }
    Ok(())
}

/// `--underlay-xdp` on both sides: the datagrams move through AF_XDP
/// sockets on the underlay veths (the XDP program redirects them; the
/// sockets' UDP path sees none once the next hop is known), pktgen frames
/// cross both ways, every one accounted for, and the kernel keeps the
/// rest of the underlay's traffic: ARP and pings between the hosts'
/// addresses work while the tunnels are up. Deleting a tunnel takes its
/// XDP program off the interface.
#[test]
fn an_af_xdp_underlay_carries_both_ways_and_leaves_arp_to_the_kernel() -> Result<()> {
    let p = pair_with(&["--underlay-xdp"])?;
    let [da, db] = &p.daemons;
    let [a, b] = &p._hosts;
    for d in [da, db] {
        let info = tunnel_info(d, "vale0:vx")?;
        assert_eq!(info["spec"]["underlay_xdp"], true, "{info}");
        ensure!(
            d.log().contains("AF_XDP underlay on ul0"),
            "no AF_XDP underlay: {}",
            d.log()
        );
    }
    // The kernel answers ARP and pings on the steered interface.
    ensure!(
        a.ping(&underlay_addr(2), 2, Duration::from_secs(2))?,
        "A cannot ping B's underlay address"
    );
    pktgen_across(da, db, "ab")?;
    pktgen_across(db, da, "ba")?;
    let (ax, bx) = (vx(da)?, vx(db)?);
    let (a_c, b_c) = (da.counters("vale0:vx")?, db.counters("vale0:vx")?);
    let summary = format!("A {a_c:?} {ax:?}\nB {b_c:?} {bx:?}");
    assert_eq!(a_c.tx_packets, FRAMES, "{summary}");
    assert_eq!(b_c.tx_packets, FRAMES, "{summary}");
    assert_eq!(a_c.rx_packets, FRAMES, "{summary}");
    assert_eq!(b_c.rx_packets, FRAMES, "{summary}");
    for (x, name) in [(&ax, "A"), (&bx, "B")] {
        // Most datagrams came through AF_XDP (the first ones to a remote
        // may take the socket path while its MAC is unknown).
        ensure!(
            x["xdp_redirected"] >= FRAMES / 2,
            "{name}: few datagrams through AF_XDP: {summary}"
        );
        ensure!(
            x["xdp_tx_neighbour_unknown"] < FRAMES / 10,
            "{name}: few datagrams sent through AF_XDP: {summary}"
        );
        assert_eq!(x["xdp_tx_ring_full"], 0, "{name}: {summary}");
        assert_eq!(x["xdp_rx_malformed"], 0, "{name}: {summary}");
    }
    // The neighbour entries can go: the kernel resolves them again.
    for ns in [a, b] {
        ns.run("ip", ["neigh", "flush", "dev", "ul0"])?;
    }
    ensure!(
        b.ping(&underlay_addr(1), 2, Duration::from_secs(2))?,
        "B cannot ping A's underlay address after a neighbour flush"
    );
    // One AF_XDP underlay per interface: a second is refused, clearly.
    let (local, remote) = (underlay_addr(1), underlay_addr(2));
    let out = da.cli(&[
        "tunnel",
        "add",
        "vale0",
        "vx8",
        "--vni",
        "8",
        "--local",
        &local,
        "--remote",
        &remote,
        "--underlay-xdp",
    ])?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success() && err.contains("XDP on ul0"),
        "a second AF_XDP underlay on ul0: {err}"
    );
    // Deleting the tunnel takes the XDP program off the interface; adding
    // it again puts it back, and frames cross as before.
    ensure!(a.has_xdp("ul0")?, "no XDP program on A's underlay");
    cli(da, &["tunnel", "del", "vale0", "vx"])?;
    ensure!(!a.has_xdp("ul0")?, "the XDP program outlived the tunnel");
    add_tunnel(
        da,
        "vx",
        VNI,
        &underlay_addr(1),
        &underlay_addr(2),
        &["--underlay-xdp"],
    )?;
    ensure!(a.has_xdp("ul0")?, "no XDP program after adding again");
    pktgen_across(da, db, "again")?;
    Ok(())
}

#[test]
fn pings_teach_both_sides_and_bad_datagrams_are_counted_by_reason() -> Result<()> {
    pings_and_bad_datagrams(&[])
}

/// The same over AF_XDP underlays: the bad datagrams reach the receive
/// step through the AF_XDP socket and are counted by the same reasons.
#[test]
fn over_af_xdp_pings_teach_both_sides_and_bad_datagrams_are_counted_by_reason() -> Result<()> {
    pings_and_bad_datagrams(&["--underlay-xdp"])
}

fn pings_and_bad_datagrams(extra: &[&str]) -> Result<()> {
    let p = pair_with(extra)?;
    let [da, db] = &p.daemons;
    let mut pong = db.spawn(
        "pong",
        &[
            "pktgen",
            "vale0:pong",
            "--mode",
            "pong",
            "--json",
            "-q",
            "--idle-timeout",
            "5",
            "--duration",
            "60",
        ],
    )?;
    db.wait_port("vale0:pong", true)?;
    let ping_mac = switch_mac("vale0:ping");
    let pong_mac = switch_mac("vale0:pong");
    let flooded_before = vx(da)?["encap_flooded"];
    let mut ping = da.spawn(
        "ping",
        &[
            "pktgen",
            "vale0:ping",
            "--mode",
            "ping",
            "--count",
            "200",
            "--dst-mac",
            &pong_mac,
            "--json",
            "-q",
        ],
    )?;
    let pinged = pktgen_summary(&mut ping, Duration::from_secs(60))?;
    assert_eq!(
        field(&pinged, "ping_timeouts"),
        0,
        "{pinged}\n{}",
        ping_pong_counters(da, db)
    );
    // Each side learned the other's MAC on its tunnel port, and its tunnel
    // learned which VTEP it is behind; unicast was flooded only until then.
    ensure!(fdb_has(da, &pong_mac, "vale0:vx")?, "A did not learn pong");
    ensure!(fdb_has(db, &ping_mac, "vale0:vx")?, "B did not learn ping");
    for d in [da, db] {
        let info = tunnel_info(d, "vale0:vx")?;
        ensure!(info["learned"].as_u64() >= Some(1), "{info}");
    }
    let flooded = vx(da)?["encap_flooded"] - flooded_before;
    assert!(flooded < 10, "{flooded} of 200 pings flooded");
    pong.kill(libc::SIGTERM)?;
    pong.wait_timeout(Duration::from_secs(10))?;

    // Malformed and foreign datagrams from B's side of the underlay.
    let target = format!("{}:4789", underlay_addr(1));
    let b_ns = &p._hosts[1];
    b_ns.run_in(|| -> Result<()> {
        let s = UdpSocket::bind(format!("{}:0", underlay_addr(2)))?;
        let mut frame = vec![0u8; 8 + 60];
        frame[8..14].fill(0xff);
        frame[0] = 0x08;
        frame[6] = VNI as u8;
        s.send_to(&frame[..12], &target)?; // short
        let mut no_flag = frame.clone();
        no_flag[0] = 0;
        s.send_to(&no_flag, &target)?; // bad header
        let mut other = frame.clone();
        other[6] = VNI as u8 + 1;
        s.send_to(&other, &target)?; // another VNI
        Ok(())
    })??;
    wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
        vx(da).is_ok_and(|c| {
            c["decap_short"] == 1 && c["decap_bad_header"] == 1 && c["decap_wrong_vni"] == 1
        })
    })
    .with_context(|| format!("bad datagrams not counted: {:?}", vx(da)))?;
    if extra.contains(&"--underlay-xdp") {
        // The pongs and the bad datagrams came through the AF_XDP socket.
        let c = vx(da)?;
        ensure!(c["xdp_redirected"] >= 200 + 3, "{c:?}");
    }

    // Frames too long for a 1500-byte underlay are dropped, not sent.
    let mut big = da.pktgen_tx("vale0:big", &["--count", "5", "--size", "1500"])?;
    pktgen_summary(&mut big, Duration::from_secs(30))?;
    wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
        vx(da).is_ok_and(|c| c["encap_oversize"] == 5)
    })
    .with_context(|| format!("oversize frames not counted: {:?}", vx(da)))?;
    assert_eq!(da.counters("vale0:vx")?.drop_too_long, 5);
    Ok(())
}

/// The MAC pktgen uses on `port` (derived from the port's name as
/// `switch_user::pktgen::mac_for_port` does).
fn switch_mac(port: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in port.bytes() {
        h = (h ^ b as u32).wrapping_mul(0x0100_0193);
    }
    switch_port::mac::MacAddr::local(h).to_string()
}

/// With a multicast group instead of remotes: broadcast goes to the group,
/// both sides learn each other's unicast VTEP from it, and pings then
/// travel unicast.
#[test]
fn a_multicast_group_carries_the_flooding() -> Result<()> {
    let p = pair_with(&["--group", "239.1.1.42"])?;
    let [da, db] = &p.daemons;
    let mut rx = db.pktgen_rx(
        "vale0:rx",
        &[
            "--idle-timeout",
            "2",
            "--duration",
            "60",
            "--ring-size",
            RX_RING,
        ],
    )?;
    let mut tx = da.pktgen_tx("vale0:tx", &["--count", "1000", "--rate", "5000"])?;
    let sent = pktgen_summary(&mut tx, Duration::from_secs(60))?;
    let got = pktgen_summary(&mut rx, Duration::from_secs(60))?;
    assert_eq!(field(&sent, "packets"), 1000, "{sent}");
    assert_eq!(
        field(&got, "packets"),
        1000,
        "{got}\nA {:?}\nB {:?}",
        vx(da)?,
        vx(db)?
    );
    let info = tunnel_info(da, "vale0:vx")?;
    assert_eq!(info["spec"]["group"], "239.1.1.42", "{info}");
    // B learned tx's MAC behind A's unicast address: a ping answered by
    // B's pong port reaches A unicast.
    let pong_mac = switch_mac("vale0:pong");
    let _pong = db.spawn(
        "pong",
        &[
            "pktgen",
            "vale0:pong",
            "--mode",
            "pong",
            "--json",
            "-q",
            "--idle-timeout",
            "5",
            "--duration",
            "60",
        ],
    )?;
    db.wait_port("vale0:pong", true)?;
    let mut ping = da.spawn(
        "ping",
        &[
            "pktgen",
            "vale0:ping",
            "--mode",
            "ping",
            "--count",
            "100",
            "--dst-mac",
            &pong_mac,
            "--json",
            "-q",
        ],
    )?;
    let pinged = pktgen_summary(&mut ping, Duration::from_secs(60))?;
    assert_eq!(
        field(&pinged, "ping_timeouts"),
        0,
        "{pinged}\n{}",
        ping_pong_counters(da, db)
    );
    assert!(tunnel_info(da, "vale0:vx")?["learned"].as_u64() >= Some(1));
    assert_eq!(vx(db)?["encap_flooded"], 0, "B flooded its pongs");
    Ok(())
}

/// A VM on each host (the guest image): the sender's frames cross the
/// tunnel to the receiver, every one once and intact. The sender is paced
/// (the guest's `rate=`), a rate both daemons and the underlay keep up
/// with on a busy machine.
#[test]
fn vm_to_vm_across_the_tunnel_every_frame_arrives_once() -> Result<()> {
    const VM_FRAMES: u64 = 10_000;
    let p = pair()?;
    let [da, db] = &p.daemons;
    let rx_mac = "52:54:00:00:77:01";
    let mut rx = Vm::start(
        db,
        "tunnel-rx",
        "vale0:rx",
        rx_mac,
        &[],
        &format!("rx count={VM_FRAMES}"),
    )?;
    rx.wait_for_serial("guest: rx", Duration::from_secs(30))?;
    let mut tx = Vm::start(
        da,
        "tunnel-tx",
        "vale0:tx",
        "52:54:00:00:77:02",
        &[],
        &format!("tx count={VM_FRAMES} rate=5000 dst={rx_mac}"),
    )?;
    let (sent, _) = tx.finish(Duration::from_secs(300))?;
    let (got, _) = rx.finish(Duration::from_secs(60))?;
    let summary = format!(
        "sent {sent}\nreceived {got}\nA vx {:?}\nB vx {:?}",
        vx(da)?,
        vx(db)?
    );
    assert_eq!(field(&sent, "frames"), VM_FRAMES, "{summary}");
    assert_eq!(field(&got, "unique"), VM_FRAMES, "{summary}");
    for key in ["lost", "corrupt", "duplicates"] {
        assert_eq!(field(&got, key), 0, "{key}: {summary}");
    }
    assert_eq!(da.counters("vale0:vx")?.tx_packets, VM_FRAMES, "{summary}");
    assert_eq!(db.counters("vale0:vx")?.rx_packets, VM_FRAMES, "{summary}");
    Ok(())
}
