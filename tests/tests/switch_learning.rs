//! Learning-bridge behaviour across a real daemon: flooding, learning,
//! never back to the sender, moves, aging.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use e2e_tests::Daemon;
use switch_port::client::{Interest, PortClient};
use switch_port::mac::MacAddr;
use testframe::{FrameTemplate, Kind};

const MARKER_BASE: u64 = 1 << 40;

struct Node {
    port: PortClient,
    mac: MacAddr,
}

fn node(daemon: &Daemon, name: &str, n: u32) -> Result<Node> {
    Ok(Node {
        port: daemon.open(&format!("vale0:{name}"))?,
        mac: MacAddr::local(0x1000 + n),
    })
}

fn send_from(node: &mut Node, src: MacAddr, dst: MacAddr, seq: u64) {
    let t = FrameTemplate::new(dst.0, src.0, Kind::Data, 60).expect("valid size");
    let buf = node.port.reserve().expect("TX ring has room");
    t.write(buf, seq, 0);
    node.port.commit(60);
    node.port.publish();
}

/// Frames (src, dst, seq) received until the marker `marker` arrives.
fn receive_until_marker(node: &mut Node, marker: u64) -> Result<Vec<(MacAddr, MacAddr, u64)>> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    let mut seen_marker = false;
    while !seen_marker {
        if Instant::now() > deadline {
            bail!("marker {marker} did not arrive; got {got:?}");
        }
        node.port.wait(
            Interest::RX,
            Duration::from_micros(50),
            Some(Duration::from_millis(100)),
        )?;
        node.port.recv(512, |f| {
            let h = testframe::parse(f).expect("intact test frame");
            if h.seq == marker {
                seen_marker = true;
            } else {
                got.push((MacAddr(h.src), MacAddr(h.dst), h.seq));
            }
        });
    }
    Ok(got)
}

/// Sends `frames` from `from`, then a broadcast marker, and returns what each
/// other node received before the marker; checks the sender got nothing.
fn exchange(
    nodes: &mut [Node],
    from: usize,
    frames: &[(MacAddr, MacAddr, u64)],
    marker: &mut u64,
) -> Result<Vec<Vec<(MacAddr, MacAddr, u64)>>> {
    for &(src, dst, seq) in frames {
        send_from(&mut nodes[from], src, dst, seq);
    }
    *marker += 1;
    let m = *marker;
    let src = nodes[from].mac;
    send_from(&mut nodes[from], src, MacAddr::BROADCAST, m);
    let mut out = Vec::new();
    for (i, node) in nodes.iter_mut().enumerate() {
        if i == from {
            out.push(Vec::new());
        } else {
            out.push(receive_until_marker(node, m)?);
        }
    }
    let echoed = nodes[from].port.rx_ready();
    assert_eq!(echoed, 0, "a frame came back to its sender");
    Ok(out)
}

#[test]
fn learning_flooding_moves_and_aging() -> Result<()> {
    let daemon = Daemon::start(&["--fdb-max-age", "1"])?;
    let mut nodes = vec![
        node(&daemon, "a", 1)?,
        node(&daemon, "b", 2)?,
        node(&daemon, "c", 3)?,
    ];
    let (a, b) = (nodes[0].mac, nodes[1].mac);
    let mut marker = MARKER_BASE;

    // Unknown unicast and broadcast from A reach both B and C.
    let got = exchange(
        &mut nodes,
        0,
        &[(a, b, 1), (a, MacAddr::BROADCAST, 2)],
        &mut marker,
    )?;
    assert_eq!(got[1], vec![(a, b, 1), (a, MacAddr::BROADCAST, 2)]);
    assert_eq!(got[2], vec![(a, b, 1), (a, MacAddr::BROADCAST, 2)]);

    // A is known now: B's unicast to A reaches only A.
    let got = exchange(&mut nodes, 1, &[(b, a, 3)], &mut marker)?;
    assert_eq!(got[0], vec![(b, a, 3)]);
    assert!(got[2].is_empty(), "C saw unicast for A: {:?}", got[2]);

    // B has spoken: A's unicast to B reaches only B.
    let got = exchange(&mut nodes, 0, &[(a, b, 4)], &mut marker)?;
    assert_eq!(got[1], vec![(a, b, 4)]);
    assert!(got[2].is_empty());

    // B's address moves to C's port: unicast to B now reaches C only.
    let got = exchange(&mut nodes, 2, &[(b, MacAddr::BROADCAST, 5)], &mut marker)?;
    assert_eq!(got[0], vec![(b, MacAddr::BROADCAST, 5)]);
    let got = exchange(&mut nodes, 0, &[(a, b, 6)], &mut marker)?;
    assert_eq!(got[2], vec![(a, b, 6)]);
    assert!(got[1].is_empty(), "B still got frames for its old address");

    // After the entries age out (max age 1 s), unicast to A floods again.
    let fdb = daemon.cli_json(&["fdb", "vale0", "--json"])?;
    assert!(fdb["entries"].as_array().is_some_and(|e| !e.is_empty()));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let fdb = daemon.cli_json(&["fdb", "vale0", "--json"])?;
        if fdb["entries"].as_array().is_some_and(|e| e.is_empty()) {
            break;
        }
        if Instant::now() > deadline {
            bail!("entries never aged out: {fdb}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // C sends to A with a source address nobody knows, so that A stays unknown.
    let stranger = MacAddr::local(0x9999);
    let got = exchange(&mut nodes, 2, &[(stranger, a, 7)], &mut marker)?;
    assert_eq!(got[0], vec![(stranger, a, 7)]);
    assert_eq!(
        got[1],
        vec![(stranger, a, 7)],
        "aged-out address did not flood"
    );
    Ok(())
}

#[test]
fn multicast_source_is_never_learned() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let mut nodes = vec![
        node(&daemon, "a", 1)?,
        node(&daemon, "b", 2)?,
        node(&daemon, "c", 3)?,
    ];
    let group: MacAddr = "01:00:5e:00:00:09".parse()?;
    let b = nodes[1].mac;
    let mut marker = MARKER_BASE;
    // A sends with a group address as its source.
    exchange(
        &mut nodes,
        0,
        &[(group, MacAddr::BROADCAST, 1)],
        &mut marker,
    )?;
    // Frames to the group still flood from B to both A and C.
    let got = exchange(&mut nodes, 1, &[(b, group, 2)], &mut marker)?;
    assert_eq!(got[0], vec![(b, group, 2)]);
    assert_eq!(got[2], vec![(b, group, 2)]);
    let fdb = daemon.cli_json(&["fdb", "vale0", "--json"])?;
    let macs: Vec<String> = fdb["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["mac"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(
        !macs.contains(&group.to_string()),
        "group address learned: {macs:?}"
    );
    assert!(macs.contains(&b.to_string()), "B not learned: {macs:?}");
    Ok(())
}
