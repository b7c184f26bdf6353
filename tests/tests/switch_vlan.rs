//! 802.1Q VLANs through a real daemon: access and trunk shared-memory ports
//! (tags pushed, popped and kept, drops counted, the fdb per VLAN, pktgen
//! traffic kept inside its VLAN), and NIC ports on veths: two namespaces in
//! VLAN 10 ping each other while a sniffer in the VLAN-20 namespace sees
//! none of it, and a trunk towards a namespace that sends and receives
//! tagged frames (a raw socket; `tcpdump -e` shows the tags) reaches both
//! VLANs' hosts, and a host port in VLAN 10 is reached from VLAN 10 only.
//! VLAN modes survive a daemon restart (the state file).

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use e2e_tests::nic::{NicBed, HOST_IF};
use e2e_tests::{assert_all_accounted, field, pktgen_summary, Daemon};
use switch_port::client::PortClient;
use switch_port::protocol::CounterSnapshot;
use testbed::{Capture, Mac, PacketSocket, Proc, Protocol};

const TPID: [u8; 2] = [0x81, 0x00];
/// The host stack's address on its port (in VLAN 10).
const HOST_ADDR: &str = "10.9.0.254";

/// A 60-byte broadcast-or-unicast frame from `src` to `dst`, untagged, or
/// tagged with control word `tci` (then 64 bytes).
fn frame(dst: [u8; 6], src: [u8; 6], tci: Option<u16>) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&src);
    if let Some(tci) = tci {
        f.extend_from_slice(&TPID);
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&[0x88, 0xb5]);
    f.extend((0..46u8).map(|i| i.wrapping_mul(7)));
    f
}

const BROADCAST: [u8; 6] = [0xff; 6];

fn mac(n: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0x10, n]
}

fn create(daemon: &Daemon, port: &str, extra: &[&str]) -> Result<()> {
    let mut args = vec!["create", port];
    args.extend_from_slice(extra);
    let out = daemon.cli(&args)?;
    ensure!(
        out.status.success(),
        "create {port} {extra:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Sends `frames` on `client` and waits until the daemon has read them.
fn send(daemon: &Daemon, client: &mut PortClient, frames: &[Vec<u8>]) -> Result<()> {
    let port = client.name().to_string();
    let before = daemon.counters(&port)?.rx_packets + daemon.counters(&port)?.drops();
    let n = client.send(frames.iter().map(Vec::as_slice));
    ensure!(n == frames.len(), "sent {n} of {}", frames.len());
    testbed::wait_until(Duration::from_secs(10), Duration::from_millis(5), || {
        daemon
            .counters(&port)
            .map(|c| c.rx_packets + c.drops() >= before + n as u64)
            .unwrap_or(false)
    })
    .with_context(|| format!("the daemon did not read {port}'s frames"))?;
    Ok(())
}

/// Waits until the counters of `port` satisfy `ok` (at most 10 s).
fn settle(daemon: &Daemon, port: &str, ok: impl Fn(&CounterSnapshot) -> bool) -> Result<()> {
    let waited = testbed::wait_until(Duration::from_secs(10), Duration::from_millis(5), || {
        daemon.counters(port).map(|c| ok(&c)).unwrap_or(false)
    });
    if waited.is_err() {
        bail!("counters of {port}: {:?}", daemon.counters(port)?);
    }
    Ok(())
}

/// The frames waiting on `client`, once `want` arrived (at most 10 s): the
/// source counts its frames when the switch takes them, before it has
/// delivered them, and a loaded machine may deschedule the switch between.
fn received(client: &mut PortClient, want: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        client.recv(64, |f| out.push(f.to_vec()));
        if out.len() >= want || Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn shared_memory_ports_push_pop_and_keep_tags_and_count_wrong_vlans() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    create(&daemon, "vale0:a10", &["--vlan", "10"])?;
    create(&daemon, "vale0:b10", &["--vlan", "10"])?;
    create(&daemon, "vale0:c20", &["--vlan", "20"])?;
    create(&daemon, "vale0:t", &["--trunk", "10,20,native=1"])?;
    create(&daemon, "vale0:t2", &["--trunk", "10"])?;
    create(&daemon, "vale0:u", &[])?;
    // Bad ids are refused by the CLI and by the daemon.
    for bad in [["--vlan", "0"], ["--vlan", "4095"], ["--trunk", "10,5000"]] {
        let out = daemon.cli(&["create", "vale0:bad", bad[0], bad[1]])?;
        ensure!(!out.status.success(), "{bad:?} accepted");
    }
    let names = [
        "vale0:a10",
        "vale0:b10",
        "vale0:c20",
        "vale0:t",
        "vale0:t2",
        "vale0:u",
    ];
    let mut c: Vec<PortClient> = names
        .iter()
        .map(|n| daemon.open(n))
        .collect::<Result<_>>()?;
    let (a, t) = (mac(1), mac(4));

    // Access -> access untagged, -> trunks tagged 10 (priority 0); not to
    // VLAN 20 nor to the untagged port.
    send(&daemon, &mut c[0], &[frame(BROADCAST, a, None)])?;
    assert_eq!(received(&mut c[1], 1), vec![frame(BROADCAST, a, None)]);
    assert_eq!(received(&mut c[3], 1), vec![frame(BROADCAST, a, Some(10))]);
    assert_eq!(received(&mut c[4], 1), vec![frame(BROADCAST, a, Some(10))]);
    // Trunk -> trunk keeps the tag as it came (PCP 5, DEI 1); the access
    // ports of VLAN 10 get it untagged; a's address is now known in 10.
    let tci = 5 << 13 | 1 << 12 | 10;
    send(&daemon, &mut c[3], &[frame(BROADCAST, t, Some(tci))])?;
    assert_eq!(received(&mut c[4], 1), vec![frame(BROADCAST, t, Some(tci))]);
    assert_eq!(received(&mut c[0], 1), vec![frame(BROADCAST, t, None)]);
    assert_eq!(received(&mut c[1], 1), vec![frame(BROADCAST, t, None)]);
    // Unicast to a in VLAN 10 from the trunk goes to a alone, untagged.
    send(&daemon, &mut c[3], &[frame(a, t, Some(10))])?;
    assert_eq!(received(&mut c[0], 1), vec![frame(a, t, None)]);
    // VLAN 20 from the trunk reaches c20 alone; untagged frames from the
    // trunk are in native VLAN 1, which no other port carries.
    send(
        &daemon,
        &mut c[3],
        &[frame(BROADCAST, t, Some(20)), frame(BROADCAST, t, None)],
    )?;
    assert_eq!(received(&mut c[2], 1), vec![frame(BROADCAST, t, None)]);
    // Wrong VLANs are dropped and counted: a tag on an access port, a VID
    // the trunk does not carry, a priority tag, untagged on a trunk
    // without a native VLAN.
    send(&daemon, &mut c[0], &[frame(BROADCAST, a, Some(10))])?;
    send(
        &daemon,
        &mut c[3],
        &[frame(BROADCAST, t, Some(30)), frame(BROADCAST, t, Some(0))],
    )?;
    send(&daemon, &mut c[4], &[frame(BROADCAST, mac(5), None)])?;
    // The untagged port is alone in no VLAN.
    send(&daemon, &mut c[5], &[frame(BROADCAST, mac(6), None)])?;
    settle(&daemon, "vale0:a10", |c| c.drop_vlan == 1)?;
    settle(&daemon, "vale0:t", |c| {
        c.drop_vlan == 2 && c.drop_no_destination == 1
    })?;
    settle(&daemon, "vale0:t2", |c| c.drop_vlan == 1)?;
    settle(&daemon, "vale0:u", |c| c.drop_no_destination == 1)?;
    let counters = |p: &str| daemon.counters(p);
    // Nothing else arrived anywhere.
    for (i, client) in c.iter_mut().enumerate() {
        let extra = received(client, 0);
        assert!(extra.is_empty(), "{}: {extra:?}", names[i]);
    }
    assert_eq!(counters("vale0:u")?.tx_packets, 0);
    assert_eq!(counters("vale0:c20")?.tx_packets, 1);

    // The fdb lists addresses with their VLAN.
    let fdb = daemon.cli_json(&["fdb", "vale0", "--json"])?;
    let rows = fdb["entries"].as_array().context("entries")?;
    let has = |m: [u8; 6], vlan: u64, port: &str| {
        let m = Mac(m).to_string();
        rows.iter().any(|r| {
            r["mac"] == m.as_str() && r["vlan"].as_u64() == Some(vlan) && r["port"] == port
        })
    };
    ensure!(has(a, 10, "vale0:a10"), "{fdb}");
    ensure!(has(t, 10, "vale0:t") && has(t, 20, "vale0:t"), "{fdb}");
    let text = String::from_utf8(daemon.cli(&["fdb", "vale0"])?.stdout)?;
    ensure!(text.contains("vlan"), "{text}");
    // list and show-config carry the modes.
    let list = daemon.cli_json(&["list", "--json"])?;
    ensure!(list.to_string().contains(r#""mode":"trunk""#), "{list}");
    let config = String::from_utf8(daemon.cli(&["show-config"])?.stdout)?;
    ensure!(
        config.contains("vswitch create vale0:a10 --vlan 10"),
        "{config}"
    );
    ensure!(
        config.contains("vswitch create vale0:t --trunk 10,20,native=1"),
        "{config}"
    );
    Ok(())
}

#[test]
fn port_security_holds_per_vlan() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let locked = "02:00:00:00:10:01";
    create(&daemon, "vale0:a", &["--vlan", "10", "--mac", locked])?;
    create(&daemon, "vale0:b", &["--vlan", "10"])?;
    create(&daemon, "vale0:c", &["--vlan", "20"])?;
    let (mut a, mut b, mut c) = (
        daemon.open("vale0:a")?,
        daemon.open("vale0:b")?,
        daemon.open("vale0:c")?,
    );
    // a may only send as its address; b may not take it in VLAN 10; c may
    // use it in VLAN 20, another L2 domain.
    send(&daemon, &mut a, &[frame(BROADCAST, mac(9), None)])?;
    send(&daemon, &mut b, &[frame(BROADCAST, mac(1), None)])?;
    send(&daemon, &mut c, &[frame(BROADCAST, mac(1), None)])?;
    settle(&daemon, "vale0:a", |c| c.spoofed == 1)?;
    settle(&daemon, "vale0:b", |c| c.spoofed == 1)?;
    settle(&daemon, "vale0:c", |c| {
        c.spoofed == 0 && c.drop_no_destination == 1
    })?;
    assert!(received(&mut b, 0).is_empty());
    Ok(())
}

#[test]
fn pktgen_traffic_stays_in_its_vlan() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    create(&daemon, "vale0:tx", &["--vlan", "10"])?;
    create(&daemon, "vale0:rx", &["--vlan", "10"])?;
    create(&daemon, "vale0:other", &["--vlan", "20"])?;
    let _other = daemon.open("vale0:other")?;
    let count = 100_000u64;
    let mut rx = daemon.pktgen_rx("vale0:rx", &["--idle-timeout", "2"])?;
    let mut tx = daemon.pktgen_tx(
        "vale0:tx",
        &["--count", &count.to_string(), "--rate", "200000"],
    )?;
    let tx_sum = pktgen_summary(&mut tx, Duration::from_secs(60))?;
    let rx_port = daemon.settled_counters("vale0:rx", count)?;
    let rx_sum = pktgen_summary(&mut rx, Duration::from_secs(30))?;
    assert_eq!(field(&tx_sum, "packets"), count);
    assert_eq!(field(&rx_sum, "corrupt"), 0, "{rx_sum}");
    assert_all_accounted(&rx_sum, &rx_port, count);
    let other = daemon.counters("vale0:other")?;
    assert_eq!((other.tx_packets, other.drops()), (0, 0), "{other:?}");
    Ok(())
}

/// The VLAN mode of every port in `list --json`, by name.
fn vlan_modes(daemon: &Daemon) -> Result<Vec<(String, String)>> {
    let list = daemon.cli_json(&["list", "--json"])?;
    let mut out = Vec::new();
    for sw in list["switches"].as_array().context("switches")? {
        for p in sw["ports"].as_array().context("ports")? {
            out.push((p["name"].to_string(), p["vlan"].to_string()));
        }
    }
    out.sort();
    Ok(out)
}

#[test]
fn vlan_modes_are_saved_and_restored() -> Result<()> {
    let dir = testbed::unique_temp_dir("vlan-state")?;
    let state = dir.path().join("state.json");
    let start = || -> Result<Daemon> {
        Ok(Daemon::wrap(
            testbed::Daemon::builder()
                .state(&state)
                .env("RUST_LOG", "info")
                .start()?,
        ))
    };
    let daemon = start()?;
    create(&daemon, "vale0:a10", &["--vlan", "10"])?;
    create(&daemon, "vale0:t", &["--trunk", "10,20,native=1"])?;
    create(&daemon, "vale0:u", &[])?;
    let before = vlan_modes(&daemon)?;
    ensure!(
        before.iter().any(|(_, v)| v.contains("trunk")),
        "{before:?}"
    );
    drop(daemon);
    let saved = std::fs::read_to_string(&state)?;
    ensure!(saved.contains("\"version\": 2"), "{saved}");
    let daemon = start()?;
    assert_eq!(vlan_modes(&daemon)?, before);
    // And they work: untagged from the access port leaves the trunk tagged.
    let (mut a, mut t) = (daemon.open("vale0:a10")?, daemon.open("vale0:t")?);
    send(&daemon, &mut a, &[frame(BROADCAST, mac(1), None)])?;
    assert_eq!(
        received(&mut t, 1),
        vec![frame(BROADCAST, mac(1), Some(10))]
    );
    Ok(())
}

/// An ARP request from `src` (`src_ip`) for `target_ip`, tagged with VLAN
/// `vid`, padded to 64 bytes.
fn tagged_arp(src: Mac, src_ip: [u8; 4], target_ip: [u8; 4], vid: u16) -> Vec<u8> {
    let mut f = BROADCAST.to_vec();
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&TPID);
    f.extend_from_slice(&vid.to_be_bytes());
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&src_ip);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target_ip);
    f.resize(64, 0);
    f
}

fn ip(addr: &str) -> Result<[u8; 4]> {
    let a: std::net::Ipv4Addr = addr.parse()?;
    Ok(a.octets())
}

#[test]
fn nic_ports_keep_vlans_apart_and_a_trunk_reaches_both() -> Result<()> {
    let bed = NicBed::new(&["a0", "b0", "c0", "t0"], None)?;
    let (h1, h2, h3, ht) = (&bed.hosts[0], &bed.hosts[1], &bed.hosts[2], &bed.hosts[3]);
    // A sniffer in the VLAN-20 host: the first frame it sees from h1, h2 or
    // the trunk host must be the trunk host's VLAN-20 ARP, sent last.
    let watched = [h1.mac, h2.mac, ht.mac];
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let sniffer = h3
        .ns
        .spawn_thread("vlan20-sniffer", move || -> Result<Vec<Vec<u8>>> {
            let socket = PacketSocket::open(HOST_IF, Protocol::All)?;
            let _ = ready_tx.send(());
            Ok(socket.collect(1, Duration::from_secs(30), |f| {
                f.len() >= 12 && watched.iter().any(|m| f[6..12] == m.0)
            })?)
        })?;
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .context("sniffer did not start")?;
    bed.attach("a0", &["--vlan", "10"])?;
    bed.attach("b0", &["--vlan", "10"])?;
    // c0 brings the host stack along, as a port of VLAN 10.
    bed.attach(
        "c0",
        &[
            "--vlan",
            "20",
            "--host",
            "--host-name",
            "hostv0",
            "--host-vlan",
            "10",
        ],
    )?;
    bed.switch.add_addr("hostv0", &format!("{HOST_ADDR}/24"))?;
    bed.attach("t0", &["--trunk", "10,20"])?;

    // VLAN 10 works (ARP broadcasts and unicast).
    ensure!(
        h1.ping(&h2.addr, 3)?,
        "h1 -> h2 ping failed: {}",
        bed.daemon.log()
    );
    // VLAN 10 cannot reach VLAN 20.
    ensure!(!h1.ping(&h3.addr, 1)?, "h1 reached VLAN 20");
    // The host port is in VLAN 10: h1 reaches it, h3 does not.
    ensure!(h1.ping(HOST_ADDR, 2)?, "h1 -> host port failed");
    ensure!(
        !h3.ping(HOST_ADDR, 1)?,
        "h3 reached the host port of VLAN 10"
    );

    // The trunk host speaks tagged frames: tcpdump on its veth shows the
    // tags of the replies (the requests go out past the capture: the raw
    // socket bypasses the qdisc), and the hosts of both VLANs answer its
    // ARP requests.
    let mut tcpdump_cmd = ht.ns.command("timeout");
    tcpdump_cmd.args([
        "20", "tcpdump", "-e", "-n", "-l", "-i", HOST_IF, "-c", "2", "vlan",
    ]);
    let dir = testbed::unique_temp_dir("vlan-tcpdump")?;
    let mut tcpdump = Proc::spawn("tcpdump", tcpdump_cmd, Capture::Files(dir.path().into()))?;
    // tcpdump says "listening on" when its capture is open.
    testbed::wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
        tcpdump
            .read_stderr()
            .is_ok_and(|e| e.contains("listening on"))
    })
    .context("tcpdump did not start")?;
    let (t_ip, ip1, ip3) = (ip(&ht.addr)?, ip(&h1.addr)?, ip(&h3.addr)?);
    let replies = ht.ns.run_in(|| -> Result<Vec<Vec<u8>>> {
        let socket = PacketSocket::open(HOST_IF, Protocol::All)?;
        socket.send(&tagged_arp(ht.mac, t_ip, ip1, 10))?;
        socket.send(&tagged_arp(ht.mac, t_ip, ip3, 20))?;
        // A VLAN the trunk does not carry: dropped and counted.
        socket.send(&tagged_arp(ht.mac, t_ip, ip1, 30))?;
        Ok(socket.collect(2, Duration::from_secs(10), |f| {
            f.len() >= 42
                && f[12..14] == [0x08, 0x06]
                && (f[6..12] == h1.mac.0 || f[6..12] == h3.mac.0)
        })?)
    })??;
    // ARP replies come back (the kernel hands the socket the frame without
    // its tag; tcpdump reads the tag from the packet's metadata).
    let repliers: Vec<[u8; 6]> = replies
        .iter()
        .map(|f| f[6..12].try_into().unwrap_or([0; 6]))
        .collect();
    ensure!(
        repliers.contains(&h1.mac.0) && repliers.contains(&h3.mac.0),
        "replies from {repliers:02x?}"
    );
    let status = tcpdump.wait_timeout(Duration::from_secs(25))?;
    let out = tcpdump.read_stdout()?;
    ensure!(status.is_some(), "tcpdump did not finish: {out}");
    ensure!(
        out.contains("vlan 10") && out.contains("vlan 20"),
        "tcpdump saw no 802.1Q tags 10 and 20:\n{out}"
    );
    ensure!(
        out.lines()
            .any(|l| l.contains("vlan 10") && l.contains(&h1.mac.to_string())),
        "no reply from {} tagged 10:\n{out}",
        h1.mac
    );

    // The sniffer in VLAN 20 saw the trunk host's VLAN-20 request first,
    // untagged, and nothing of VLAN 10 before it.
    let seen = sniffer
        .join()
        .map_err(|_| anyhow::anyhow!("sniffer panicked"))???;
    let Some(first) = seen.first() else {
        bail!("the VLAN-20 host saw nothing, not even the trunk's VLAN-20 ARP");
    };
    ensure!(
        first[6..12] == ht.mac.0 && first[12..14] == [0x08, 0x06] && first[38..42] == ip3,
        "VLAN 10 leaked into VLAN 20: {first:02x?}"
    );
    let trunk = bed.daemon.counters("vale0:t0")?;
    ensure!(trunk.drop_vlan >= 1, "{trunk:?}");
    let table = bed.daemon.cli_json(&["fdb", "vale0", "--json"])?;
    let rows = table["entries"].as_array().context("entries")?;
    ensure!(
        rows.iter().any(|r| r["mac"] == h1.mac.to_string().as_str()
            && r["vlan"].as_u64() == Some(10)
            && r["port"] == "vale0:a0"),
        "{table}"
    );
    Ok(())
}
