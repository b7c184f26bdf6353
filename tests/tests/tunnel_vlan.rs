//! VNIs mapped to VLANs. Two of our daemons in two namespaces ("hosts")
//! joined by a veth underlay, each with two tunnel ports on one local
//! address and UDP port (one shared socket): VNI 10 <-> VLAN 10 and VNI 20
//! <-> VLAN 20 of `vale0`. pktgen traffic from shared-memory ports in VLAN
//! 10 and VLAN 20 of one host, sent at once, arrives in the same VLAN on
//! the other and never in the other VLAN, in order, both ways, every frame
//! accounted for; a VLAN out of range is refused; the mapping survives a
//! restart of the daemon (state file). Against Linux: a vxlan device with
//! VNI 20 receives VLAN 20's frames only, and what it sends arrives in VLAN
//! 20 only.

use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use e2e_tests::nic::extra_counters;
use e2e_tests::tunnel::{add_tunnel, cli, tunnel_info, underlay, underlay_addr, UNDERLAY_IF};
use e2e_tests::{field, pktgen_summary, Daemon};
use serde_json::{json, Value};
use switch_port::client::PortClient;
use switch_port::protocol::{CounterSnapshot, Request, TunnelSpec, VlanMode};
use testbed::{unique_temp_dir, wait_until, Netns, PacketSocket, Protocol};

/// The VLANs (and VNIs: VNI n carries VLAN n).
const VLANS: [u16; 2] = [10, 20];

/// A daemon in `ns` with state file `state` and two forwarding threads:
/// the two tunnels of a host are the sources of different threads, which
/// read their shared socket concurrently.
fn start(ns: &Netns, state: &Path) -> Result<Daemon> {
    Ok(Daemon::wrap(
        testbed::Daemon::builder()
            .netns(ns)
            .state(state)
            .args(["--threads", "2"])
            .env("RUST_LOG", "info")
            .start()?,
    ))
}

/// `vswitch tunnel add vale0 tN --vni N --vlan N` for both VLANs, on
/// underlay address `local` towards `remote`.
fn add_tunnels(daemon: &Daemon, local: &str, remote: &str) -> Result<()> {
    for v in VLANS {
        let vlan = v.to_string();
        add_tunnel(
            daemon,
            &format!("t{v}"),
            v.into(),
            local,
            remote,
            &["--vlan", &vlan],
        )?;
    }
    Ok(())
}

/// Creates `port` in `vlan`; its ring holds 16384 frames (over 3 s of
/// [`cross`]'s traffic), so a receiver that a loaded machine leaves without
/// CPU for a while still loses nothing.
fn create(daemon: &Daemon, port: &str, vlan: u16) -> Result<()> {
    cli(
        daemon,
        &[
            "create",
            port,
            "--vlan",
            &vlan.to_string(),
            "--ring-size",
            "16384",
        ],
    )?;
    Ok(())
}

/// What a tunnel port counted: the common counters and the extra ones.
struct Tunnel {
    common: CounterSnapshot,
    rx_inbox_full: u64,
    decap_wrong_vni: u64,
    rx_socket_dropped: u64,
}

fn tunnel(daemon: &Daemon, vlan: u16) -> Result<Tunnel> {
    let port = format!("vale0:t{vlan}");
    let extra = extra_counters(daemon, &port)?;
    Ok(Tunnel {
        common: daemon.counters(&port)?,
        rx_inbox_full: extra["rx_inbox_full"],
        decap_wrong_vni: extra["decap_wrong_vni"],
        rx_socket_dropped: extra["rx_socket_dropped"],
    })
}

/// Sends `counts[i]` pktgen frames from VLAN `VLANS[i]` of `from`, both
/// VLANs at once, to ports in the same VLANs of `to`; checks that each
/// VLAN's frames arrive in that VLAN alone, in order, and that every frame
/// is accounted for.
fn cross(from: &Daemon, to: &Daemon, counts: [u64; 2]) -> Result<()> {
    let before_from = [tunnel(from, 10)?, tunnel(from, 20)?];
    let before_to = [tunnel(to, 10)?, tunnel(to, 20)?];
    for v in VLANS {
        create(from, &format!("vale0:s{v}"), v)?;
        create(to, &format!("vale0:r{v}"), v)?;
    }
    let mut rx = Vec::new();
    for v in VLANS {
        rx.push(to.pktgen_rx(
            &format!("vale0:r{v}"),
            &["--idle-timeout", "3", "--duration", "60"],
        )?);
    }
    let mut tx = Vec::new();
    for (v, n) in VLANS.iter().zip(counts) {
        tx.push(from.pktgen_tx(
            &format!("vale0:s{v}"),
            &["--count", &n.to_string(), "--rate", "5000"],
        )?);
    }
    let mut sent = Vec::new();
    for p in &mut tx {
        sent.push(pktgen_summary(p, Duration::from_secs(60))?);
    }
    let mut got = Vec::new();
    for p in &mut rx {
        got.push(pktgen_summary(p, Duration::from_secs(60))?);
    }
    let after_from = [tunnel(from, 10)?, tunnel(from, 20)?];
    let after_to = [tunnel(to, 10)?, tunnel(to, 20)?];
    let mut arrived = 0;
    let mut dropped_at_to = 0;
    for (i, v) in VLANS.iter().enumerate() {
        let (s, r) = (format!("vale0:s{v}"), format!("vale0:r{v}"));
        let (sc, rc) = (from.counters(&s)?, to.counters(&r)?);
        let out = after_from[i].common.tx_packets - before_from[i].common.tx_packets;
        let out_dropped = after_from[i].common.drops() - before_from[i].common.drops();
        let decap = after_to[i].common.rx_packets - before_to[i].common.rx_packets;
        let summary = format!(
            "VLAN {v}: sent {}\nreceived {}\n{s} {sc:?}\n{r} {rc:?}\ntunnel out {out} (dropped {out_dropped}), decapsulated {decap}",
            sent[i], got[i]
        );
        assert_eq!(field(&sent[i], "packets"), counts[i], "{summary}");
        assert_eq!(sc.rx_packets, counts[i], "{summary}");
        // The sending host's tunnel of this VLAN carried this VLAN's frames
        // (broadcast: one copy to the one remote) and no other VLAN's.
        assert_eq!(out + out_dropped, counts[i], "{summary}");
        // The receiving host's tunnel of this VNI decapsulated at most what
        // was sent in it, and its VLAN's port got exactly that: nothing
        // from the other VLAN.
        assert!(decap <= out, "{summary}");
        assert_eq!(rc.tx_packets + rc.drops(), decap, "{summary}");
        assert_eq!(field(&got[i], "packets"), rc.tx_packets, "{summary}");
        for key in ["corrupt", "duplicates", "reordered", "foreign"] {
            assert_eq!(field(&got[i], key), 0, "{key}: {summary}");
        }
        // Under no load to speak of, nothing is lost.
        assert_eq!(rc.tx_packets, counts[i], "{summary}");
        arrived += decap;
        dropped_at_to += after_to[i].rx_inbox_full - before_to[i].rx_inbox_full;
        assert_eq!(
            after_to[i].decap_wrong_vni, before_to[i].decap_wrong_vni,
            "{summary}"
        );
    }
    // Every datagram that left reached its VNI's tunnel or was counted.
    let socket_dropped = after_to[0]
        .rx_socket_dropped
        .max(after_to[1].rx_socket_dropped)
        - before_to[0]
            .rx_socket_dropped
            .max(before_to[1].rx_socket_dropped);
    let left: u64 = (0..2)
        .map(|i| after_from[i].common.tx_packets - before_from[i].common.tx_packets)
        .sum();
    assert_eq!(arrived + dropped_at_to + socket_dropped, left);
    // The VNIs were mixed on one socket: each tunnel's reads passed the
    // other's datagrams on.
    let passed_on: u64 = VLANS
        .iter()
        .map(|v| extra_counters(to, &format!("vale0:t{v}")).map(|e| e["rx_passed_on"]))
        .sum::<Result<u64>>()?;
    ensure!(passed_on > 0, "no datagram passed between the tunnels");
    for v in VLANS {
        // A port is in use until the daemon has seen its pktgen leave.
        let (s, r) = (format!("vale0:s{v}"), format!("vale0:r{v}"));
        from.wait_no_client(&s)?;
        to.wait_no_client(&r)?;
        cli(from, &["delete", &s])?;
        cli(to, &["delete", &r])?;
    }
    Ok(())
}

fn vlan_of(info: &Value) -> Value {
    info["spec"]["vlan"].clone()
}

#[test]
fn vnis_map_to_vlans_between_two_daemons_on_one_vtep_address_and_after_a_restart() -> Result<()> {
    let dir = unique_temp_dir("vsw-tunvlan")?;
    let states = [dir.path().join("a.json"), dir.path().join("b.json")];
    let a = Netns::new(testbed::DEFAULT_PREFIX)?;
    let b = Netns::new(testbed::DEFAULT_PREFIX)?;
    for ns in [&a, &b] {
        ns.disable_ipv6()?;
    }
    underlay(&a, &b)?;
    let da = start(&a, &states[0])?;
    let mut db = start(&b, &states[1])?;
    add_tunnels(&da, &underlay_addr(1), &underlay_addr(2))?;
    add_tunnels(&db, &underlay_addr(2), &underlay_addr(1))?;
    // One UDP socket on each host's VTEP address and port.
    for (ns, n) in [(&a, 1), (&b, 2)] {
        let out = ns.command("ss").args(["-Huan"]).output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let bound = format!("{}:4789", underlay_addr(n));
        let sockets = text.lines().filter(|l| l.contains(&bound)).count();
        ensure!(sockets == 1, "sockets on {bound}:\n{text}");
    }

    // A VLAN out of range is refused, by the CLI and by the daemon.
    let out = da.cli(&[
        "tunnel",
        "add",
        "vale0",
        "bad",
        "--vni",
        "30",
        "--vlan",
        "4095",
        "--local",
        "192.168.77.1",
    ])?;
    let e = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success() && e.contains("4095"), "{e}");
    let refused = da
        .connect()?
        .call(&Request::TunnelAdd {
            port: "vale0:bad".parse()?,
            tunnel: TunnelSpec {
                vni: 30,
                local: "192.168.77.1".parse()?,
                remotes: Vec::new(),
                group: None,
                dst_port: 4789,
                underlay_mtu: 1500,
                vlan: Some(VlanMode::Access { vlan: 5000 }),
                underlay_xdp: false,
            },
        })
        .err()
        .context("VLAN 5000 accepted")?;
    ensure!(
        refused
            .to_string()
            .contains("--vlan 5000: VLAN id 5000 is out of range (1..=4094)"),
        "{refused}"
    );

    // Listed with their VLANs.
    for d in [&da, &db] {
        for v in VLANS {
            let info = tunnel_info(d, &format!("vale0:t{v}"))?;
            assert_eq!(vlan_of(&info), json!({"mode": "access", "vlan": v}));
            assert_eq!(info["spec"]["vni"], v, "{info}");
        }
        let table = cli(d, &["tunnel", "list"])?;
        ensure!(
            table.contains("access 10") && table.contains("access 20"),
            "{table}"
        );
    }

    cross(&da, &db, [6000, 3000])?;
    cross(&db, &da, [3000, 6000])?;

    // B comes back from its state file with both mappings.
    let saved: Value = serde_json::from_slice(&std::fs::read(&states[1])?)?;
    assert_eq!(saved["version"], 2, "{saved}");
    let before: Vec<Value> = VLANS
        .iter()
        .map(|v| tunnel_info(&db, &format!("vale0:t{v}")))
        .collect::<Result<_>>()?;
    db.proc_mut().kill(libc::SIGKILL)?;
    db.proc_mut().wait_timeout(Duration::from_secs(10))?;
    drop(db);
    db = start(&b, &states[1])?;
    for (v, was) in VLANS.iter().zip(&before) {
        let port = format!("vale0:t{v}");
        db.wait_port(&port, true)?;
        let now = tunnel_info(&db, &port)?;
        assert_eq!(now["spec"], was["spec"], "not restored");
    }
    let config = cli(&db, &["show-config"])?;
    ensure!(
        config.contains("--vni 10 --local 192.168.77.2 --remote 192.168.77.1 --vlan 10"),
        "{config}"
    );
    cross(&da, &db, [2000, 1000])?;
    Ok(())
}

/// The Linux side: a vxlan device with VNI 20 in namespace `vtep`, joined
/// to `switch` by the underlay.
fn linux_vni_20(switch: &Netns) -> Result<Netns> {
    let vtep = Netns::new(testbed::DEFAULT_PREFIX)?;
    vtep.disable_ipv6()?;
    underlay(switch, &vtep)?;
    vtep.ip([
        "link",
        "add",
        "vx20",
        "type",
        "vxlan",
        "id",
        "20",
        "local",
        &underlay_addr(2),
        "remote",
        &underlay_addr(1),
        "dstport",
        "4789",
        "dev",
        UNDERLAY_IF,
    ])?;
    vtep.set_up("vx20")?;
    wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
        vtep.is_lower_up("vx20").unwrap_or(false)
    })
    .context("vx20 did not come up")?;
    Ok(vtep)
}

/// A 60-byte broadcast frame from `src` with `tag` in its payload.
fn frame(src: [u8; 6], tag: u8) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x88, 0xb5]);
    f.extend(std::iter::repeat_n(tag, 46));
    f
}

/// Frames waiting on `client` after `want` arrived or 2 s.
fn received(client: &mut PortClient, want: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let _ = wait_until(Duration::from_secs(2), Duration::from_millis(2), || {
        client.recv(64, |f| out.push(f.to_vec()));
        out.len() >= want
    });
    out
}

#[test]
fn a_linux_vxlan_device_of_vni_20_sees_vlan_20_only() -> Result<()> {
    let switch = Netns::new(testbed::DEFAULT_PREFIX)?;
    switch.disable_ipv6()?;
    let vtep = linux_vni_20(&switch)?;
    let daemon = Daemon::start_in(&switch, &[])?;
    add_tunnels(&daemon, &underlay_addr(1), &underlay_addr(2))?;
    let mut ports = Vec::new();
    for v in VLANS {
        let name = format!("vale0:p{v}");
        create(&daemon, &name, v)?;
        ports.push(daemon.open(&name)?);
    }
    const FROM: [[u8; 6]; 2] = [[2, 0, 0, 0, 10, 1], [2, 0, 0, 0, 20, 1]];
    const LINUX: [u8; 6] = [2, 0, 0, 0, 20, 2];
    let sniffer = vtep.run_in(|| PacketSocket::open("vx20", Protocol::All))??;

    // From our side: ten frames in each VLAN; Linux's VNI 20 gets VLAN
    // 20's alone (untagged), the VNI 10 datagrams are not its.
    for (i, client) in ports.iter_mut().enumerate() {
        let frames: Vec<Vec<u8>> = (0..10).map(|n| frame(FROM[i], n)).collect();
        let n = client.send(frames.iter().map(Vec::as_slice));
        ensure!(n == 10, "sent {n} of 10");
    }
    // Room for one more than expected: an extra frame would show.
    let seen = sniffer.collect(11, Duration::from_secs(3), |_| true)?;
    let expected: Vec<Vec<u8>> = (0..10).map(|n| frame(FROM[1], n)).collect();
    assert_eq!(seen, expected, "Linux's VNI 20 got other frames");
    let t10 = daemon.counters("vale0:t10")?;
    assert_eq!(t10.tx_packets, 10, "{t10:?}");

    // From Linux: frames sent on its VNI 20 arrive in VLAN 20 only.
    for n in 0..5 {
        ensure!(sniffer.send(&frame(LINUX, n))?, "vx20 refused a frame");
    }
    let got = received(&mut ports[1], 5);
    let from_linux: Vec<&Vec<u8>> = got.iter().filter(|f| f[6..12] == LINUX).collect();
    assert_eq!(from_linux.len(), 5, "{got:?}");
    assert!(received(&mut ports[0], 1).iter().all(|f| f[6..12] != LINUX));
    let p10 = daemon.counters("vale0:p10")?;
    assert_eq!(p10.tx_packets, 0, "VLAN 10 got frames: {p10:?}");
    let t20 = extra_counters(&daemon, "vale0:t20")?;
    assert_eq!(t20["decap_wrong_vni"], 0, "{t20:?}");
    Ok(())
}
