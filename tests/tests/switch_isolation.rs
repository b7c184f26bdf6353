//! Tenant isolation across a real daemon: a port cannot steal another's
//! address or fill the forwarding table for everyone, a receiver never sees
//! bytes of other traffic past a frame's end, and a client that left keeps
//! nothing of its port.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use e2e_tests::{assert_all_accounted, pktgen_summary, Daemon};
use switch_port::client::{Interest, PortClient, PortConfig};
use switch_port::control::client::Connection;
use switch_port::eventfd::EventFd;
use switch_port::mac::MacAddr;
use switch_port::protocol::{Request, Response};
use switch_port::region::Region;
use switch_port::ring::Slot;
use testbed::{wait_for, wait_until};
use testframe::{FrameTemplate, Kind};

/// Sends one frame of `len` bytes (a test frame for 60 and more) from `port`,
/// waiting (bounded) for a free slot.
fn send(port: &mut PortClient, dst: MacAddr, src: MacAddr, seq: u64) -> Result<()> {
    let template = FrameTemplate::new(dst.0, src.0, Kind::Data, 60).context("frame size")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(buf) = port.reserve() {
            template.write(buf, seq, 0);
            port.commit(60);
            port.publish();
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "TX ring stayed full");
        port.wait(
            Interest::TX,
            Duration::from_micros(50),
            Some(Duration::from_millis(100)),
        )?;
    }
}

/// Destination addresses of every frame waiting in `port`'s RX ring.
fn drain(port: &mut PortClient) -> Vec<MacAddr> {
    let mut out = Vec::new();
    while port.recv(512, |f| {
        let mut dst = [0u8; 6];
        dst.copy_from_slice(&f[..6]);
        out.push(MacAddr(dst));
    }) > 0
    {}
    out
}

/// Opens `port` on a bare control connection and maps its memory: the
/// caller plays a client that keeps its mapping and fds.
fn open_raw(daemon: &Daemon, port: &str) -> Result<(Connection, Region, Vec<OwnedFd>)> {
    let mut conn = daemon.connect()?;
    let (response, mut fds) = conn.call(&Request::OpenPort {
        port: port.parse()?,
        ring_size: None,
        buf_size: None,
        mac: None,
    })?;
    ensure!(
        matches!(response, Response::PortOpened { .. }) && fds.len() == 3,
        "unexpected answer {response:?}"
    );
    let region = Region::from_fd(fds.remove(0))?;
    Ok((conn, region, fds))
}

fn fdb_port_of(daemon: &Daemon, mac: MacAddr) -> Result<Option<String>> {
    let fdb = daemon.cli_json(&["fdb", "vale0", "--json"])?;
    Ok(fdb["entries"].as_array().and_then(|e| {
        e.iter()
            .find(|e| e["mac"] == mac.to_string())
            .and_then(|e| e["port"].as_str().map(str::to_owned))
    }))
}

#[test]
fn a_spoofer_never_receives_the_victims_unicast() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let victim_mac: MacAddr = "02:00:00:00:0b:01".parse()?;
    let out = daemon.cli(&["create", "vale0:victim", "--mac", &victim_mac.to_string()])?;
    ensure!(out.status.success(), "{out:?}");
    let list = daemon.cli_json(&["list", "--json"])?;
    assert_eq!(
        list["switches"][0]["ports"][0]["mac"],
        victim_mac.to_string()
    );

    const COUNT: u64 = 20_000;
    let mut victim = daemon.pktgen_rx(
        "vale0:victim",
        &["--count", &COUNT.to_string(), "--idle-timeout", "5"],
    )?;
    // The thief sends as the victim before and while the victim's traffic flows.
    let mut thief = daemon.open("vale0:thief")?;
    for seq in 0..200 {
        send(&mut thief, MacAddr::BROADCAST, victim_mac, seq)?;
    }
    let mut sender = daemon.pktgen_tx(
        "vale0:sender",
        &[
            "--count",
            &COUNT.to_string(),
            "--rate",
            "100000",
            "--dst-mac",
            &victim_mac.to_string(),
        ],
    )?;
    let mut stolen = 0usize;
    let mut seq = 200;
    let deadline = Instant::now() + Duration::from_secs(60);
    while sender.wait_timeout(Duration::ZERO)?.is_none() {
        ensure!(Instant::now() < deadline, "the sender did not finish");
        send(&mut thief, victim_mac, victim_mac, seq)?;
        send(&mut thief, MacAddr::BROADCAST, victim_mac, seq + 1)?;
        seq += 2;
        stolen += drain(&mut thief)
            .iter()
            .filter(|&&d| d == victim_mac)
            .count();
        std::thread::sleep(Duration::from_millis(1));
    }
    let summary = pktgen_summary(&mut victim, Duration::from_secs(30))?;
    stolen += drain(&mut thief)
        .iter()
        .filter(|&&d| d == victim_mac)
        .count();
    assert_eq!(stolen, 0, "the thief received the victim's unicast");
    // Every frame reached the victim's port: delivered, or dropped there
    // when a loaded machine let the receiver's ring fill.
    let victim_counters = daemon.counters("vale0:victim")?;
    assert_all_accounted(&summary, &victim_counters, COUNT);
    // The thief's last frames may still be in a forwarding batch: read its
    // counters once every frame it sent is accounted for (bounded).
    let thief_counters = wait_for(Duration::from_secs(10), Duration::from_millis(5), || {
        daemon
            .counters("vale0:thief")
            .ok()
            .filter(|c| c.rx_packets >= seq && c.drops() >= c.rx_packets)
    })
    .or_else(|_| daemon.counters("vale0:thief"))?;
    assert_eq!(thief_counters.spoofed, seq, "{thief_counters:?}");
    assert_eq!(thief_counters.rx_packets, seq, "{thief_counters:?}");
    assert_eq!(
        fdb_port_of(&daemon, victim_mac)?.as_deref(),
        Some("vale0:victim")
    );
    Ok(())
}

#[test]
fn a_flood_of_source_addresses_does_not_stop_others_being_learned() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let mut attacker = daemon.open("vale0:attacker")?;
    let mut b = daemon.open("vale0:b")?;
    let mut c = daemon.open("vale0:c")?;
    let (mb, mc) = (MacAddr::local(0xb), MacAddr::local(0xc));
    // Every frame has a new source address; all go to the attacker's first
    // address, learned on its own port, so nothing is flooded.
    let home = MacAddr::local(0x10_0000);
    send(&mut attacker, MacAddr::BROADCAST, home, 0)?;
    const FLOOD: u32 = 100_000;
    let mut sent = 0u32;
    let deadline = Instant::now() + Duration::from_secs(60);
    while sent < FLOOD {
        ensure!(Instant::now() < deadline, "the flood did not get out");
        while sent < FLOOD {
            let Some(buf) = attacker.reserve() else { break };
            let src = MacAddr::local(0x20_0000 + sent);
            buf[..6].copy_from_slice(&home.0);
            buf[6..12].copy_from_slice(&src.0);
            buf[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
            attacker.commit(60);
            sent += 1;
        }
        attacker.publish();
        attacker.wait(
            Interest::TX,
            Duration::from_micros(50),
            Some(Duration::from_millis(100)),
        )?;
    }
    wait_until(Duration::from_secs(20), Duration::from_millis(10), || {
        daemon
            .counters("vale0:attacker")
            .map(|c| c.rx_packets == FLOOD as u64 + 1)
            .unwrap_or(false)
    })?;
    drain(&mut b);
    drain(&mut c);
    // The others are learned all the same.
    send(&mut b, MacAddr::BROADCAST, mb, 1)?;
    send(&mut c, MacAddr::BROADCAST, mc, 2)?;
    wait_until(Duration::from_secs(10), Duration::from_millis(10), || {
        fdb_port_of(&daemon, mb).ok().flatten().as_deref() == Some("vale0:b")
            && fdb_port_of(&daemon, mc).ok().flatten().as_deref() == Some("vale0:c")
    })
    .context("b and c were not learned")?;
    let fdb = daemon.cli_json(&["fdb", "vale0", "--json"])?;
    let limited = fdb["stats"]["port_limited"].as_u64().unwrap_or(0);
    assert!(limited >= (FLOOD - 64) as u64, "{}", fdb["stats"]);
    // Their unicast goes to them only: the attacker sees none of it.
    drain(&mut attacker);
    for seq in 0..100 {
        send(&mut b, mc, mb, seq)?;
    }
    wait_until(Duration::from_secs(10), Duration::from_millis(5), || {
        daemon
            .counters("vale0:c")
            .map(|k| k.tx_packets >= 102)
            .unwrap_or(false)
    })?;
    // The broadcasts from b and c reached the attacker; nothing else did.
    let seen = drain(&mut attacker);
    assert!(
        seen.iter().all(|&d| d == MacAddr::BROADCAST),
        "unicast flooded to the attacker: {seen:?}"
    );
    Ok(())
}

#[test]
fn no_bytes_past_a_frames_end_reach_the_receiver() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let (_conn, rx, _kicks) = open_raw(&daemon, "vale0:rx")?;
    let mut tx = PortClient::open(
        daemon.socket(),
        "vale0:tx",
        PortConfig {
            ring_size: Some(64),
            ..PortConfig::default()
        },
    )?;
    let src = MacAddr::local(0x7);
    // Long frames full of 0xAA first, so the sender's buffers hold them...
    let mut frames = 0u32;
    for _ in 0..63 {
        let buf = tx.reserve().context("TX ring has room")?;
        buf[..1500].fill(0xAA);
        buf[..6].copy_from_slice(&MacAddr::BROADCAST.0);
        buf[6..12].copy_from_slice(&src.0);
        tx.commit(1500);
        frames += 1;
    }
    tx.publish();
    wait_until(Duration::from_secs(10), Duration::from_millis(5), || {
        tx.tx_free() == 63
    })?;
    // ...then short ones of every length modulo a cache line in the same
    // buffers, each ending before the old bytes do.
    for len in 60..124usize {
        let buf = tx.reserve().context("TX ring has room")?;
        buf[..6].copy_from_slice(&MacAddr::BROADCAST.0);
        buf[6..12].copy_from_slice(&src.0);
        buf[12..len].fill(0x11);
        tx.commit(len);
        frames += 1;
        if len % 32 == 0 {
            tx.publish();
            wait_until(Duration::from_secs(10), Duration::from_millis(5), || {
                tx.tx_free() == 63
            })?;
        }
    }
    tx.publish();
    let ring = rx.rx_ring();
    wait_until(Duration::from_secs(10), Duration::from_millis(5), || {
        ring.tail().load(std::sync::atomic::Ordering::Acquire) == frames
    })?;
    let buf_size = rx.layout().buf_size as usize;
    for i in 0..frames {
        let Slot { buf, len, .. } = ring.read_slot(i);
        let ptr = rx.buffer(buf).context("slot buffer in range")?;
        // SAFETY: the buffer lies inside the mapped region and holds
        // `buf_size` bytes; the switch has published it and writes it no more.
        let bytes = unsafe { std::slice::from_raw_parts(ptr.as_ptr(), buf_size) };
        let len = len as usize;
        if let Some(at) = bytes[len..].iter().position(|&b| b != 0) {
            bail!(
                "frame {i} ({len} bytes): byte {} past its end is {:#x}",
                len + at,
                bytes[len + at]
            );
        }
    }
    Ok(())
}

#[test]
fn a_departed_clients_mapping_sees_nothing_of_the_next_client() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let out = daemon.cli(&["create", "vale0:p"])?;
    ensure!(out.status.success(), "{out:?}");
    let (conn, old, old_fds) = open_raw(&daemon, "vale0:p")?;
    let old_kick = EventFd::from_owned(old_fds.into_iter().next().context("kick fd")?);
    drop(conn);
    wait_until(Duration::from_secs(10), Duration::from_millis(5), || {
        daemon
            .cli_json(&["list", "--json"])
            .map(|l| l["switches"][0]["ports"][0]["clients"] == 0)
            .unwrap_or(false)
    })?;
    // Frames sent while nobody has the port are dropped, not kept.
    let mut peer = daemon.open("vale0:peer")?;
    let (mp, mn, mo) = (
        MacAddr::local(0x1),
        MacAddr::local(0x2),
        MacAddr::local(0x3),
    );
    send(&mut peer, MacAddr::BROADCAST, mp, 0)?;
    wait_until(Duration::from_secs(10), Duration::from_millis(5), || {
        daemon
            .counters("vale0:p")
            .map(|c| c.drop_no_client == 1)
            .unwrap_or(false)
    })?;
    let mut next = daemon.open("vale0:p")?;
    ensure!(next.rx_ready() == 0, "the next client got queued frames");
    // The old client, still mapped, injects into its old rings and kicks.
    let tx = old.tx_ring();
    let template =
        FrameTemplate::new(MacAddr::BROADCAST.0, mo.0, Kind::Data, 60).context("frame size")?;
    for i in 0..10u32 {
        let ptr = old.buffer(i).context("buffer")?;
        // SAFETY: buffer i of the old mapping holds at least 60 bytes.
        template.write(
            unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr(), 60) },
            i as u64,
            0,
        );
        tx.write_slot(
            i,
            Slot {
                buf: i,
                len: 60,
                flags: 0,
            },
        );
    }
    tx.head().store(10, std::sync::atomic::Ordering::Release);
    old_kick.signal();
    // The new client and its peer talk.
    for seq in 0..10 {
        send(&mut next, MacAddr::BROADCAST, mn, seq)?;
        send(&mut peer, mn, mp, seq)?;
    }
    let mut got_next = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got_next.len() < 10 {
        ensure!(Instant::now() < deadline, "the new client got {got_next:?}");
        next.wait(
            Interest::RX,
            Duration::from_micros(50),
            Some(Duration::from_millis(100)),
        )?;
        got_next.extend(drain(&mut next));
    }
    wait_until(Duration::from_secs(10), Duration::from_millis(5), || {
        daemon
            .counters("vale0:peer")
            .map(|c| c.tx_packets >= 10)
            .unwrap_or(false)
    })?;
    // The old mapping saw nothing of it, and the old client's frames went nowhere.
    let old_rx = old.rx_ring();
    assert_eq!(old_rx.tail().load(std::sync::atomic::Ordering::Acquire), 0);
    let buf_size = old.layout().buf_size as usize;
    for i in 0..old.layout().num_bufs {
        let ptr = old.buffer(i).context("buffer")?;
        if i < 10 {
            continue;
        }
        // SAFETY: every buffer of the old mapping holds `buf_size` bytes.
        let bytes = unsafe { std::slice::from_raw_parts(ptr.as_ptr(), buf_size) };
        ensure!(
            bytes.iter().all(|&b| b == 0),
            "buffer {i} of the old mapping was written"
        );
    }
    assert_eq!(
        daemon.counters("vale0:p")?.rx_packets,
        10,
        "only the new client's frames"
    );
    let at_peer = drain(&mut peer);
    assert_eq!(at_peer.len(), 10, "{at_peer:?}");
    assert_eq!(got_next, vec![mn; 10]);
    Ok(())
}
