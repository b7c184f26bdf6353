//! Hostile clients: malformed control messages and rings scribbled with
//! out-of-range indices, lengths and buffer numbers. The daemon answers with
//! clear errors or drops and counts, stays up, and other ports are untouched.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Result;
use e2e_tests::{assert_all_accounted, field, pktgen_summary, Daemon};
use switch_port::control::client::ClientError;
use switch_port::protocol::{ErrorCode, Request, Response};
use switch_port::ring::Slot;

fn read_response(stream: &mut UnixStream) -> Option<Response> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut header = [0u8; 16];
    stream.read_exact(&mut header).ok()?;
    let len = u32::from_le_bytes([header[8], header[9], header[10], header[11]]) as usize;
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).ok()?;
    serde_json::from_slice(&payload).ok()
}

fn header(len: u32, version: u16, direction: u16, fds: u32) -> Vec<u8> {
    let mut h = b"VSWC".to_vec();
    h.extend_from_slice(&version.to_le_bytes());
    h.extend_from_slice(&direction.to_le_bytes());
    h.extend_from_slice(&len.to_le_bytes());
    h.extend_from_slice(&fds.to_le_bytes());
    h
}

fn is_error(r: &Option<Response>, code: ErrorCode) -> bool {
    matches!(r, Some(Response::Error { code: c, .. }) if *c == code)
}

/// An honest pair of ports: a receiver on `vale0:rx` and a sender on
/// `vale0:tx` of `count` frames at 100,000 a second to an address nobody
/// has, so every port of the switch gets them (flooded).
fn honest_pair(
    daemon: &Daemon,
    count: u64,
    idle_secs: u32,
) -> Result<(testbed::Proc, testbed::Proc)> {
    let rx = daemon.pktgen_rx("vale0:rx", &["--idle-timeout", &idle_secs.to_string()])?;
    let tx = daemon.pktgen_tx(
        "vale0:tx",
        &[
            "--count",
            &count.to_string(),
            "--rate",
            "100000",
            "--dst-mac",
            "02:00:00:00:00:42",
        ],
    )?;
    Ok((rx, tx))
}

/// Whether `vswitch list` marks port `name` of `vale0` errored.
fn listed_errored(daemon: &Daemon, name: &str) -> Result<bool> {
    let list = daemon.cli_json(&["list", "--json"])?;
    let port = list["switches"][0]["ports"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == name).cloned())
        .unwrap_or_default();
    Ok(port["errored"] == true)
}

#[test]
fn malformed_control_messages_get_clear_errors() -> Result<()> {
    let daemon = Daemon::start(&[])?;

    // Garbage instead of a header: an error, then the connection is closed.
    let mut s = UnixStream::connect(daemon.socket())?;
    s.write_all(b"GET / HTTP/1.1\r\n\r\n")?;
    assert!(is_error(&read_response(&mut s), ErrorCode::BadRequest));
    assert!(
        read_response(&mut s).is_none(),
        "connection left open after bad framing"
    );

    // Wrong version (the typed version error, docs/port-protocol.md §9),
    // oversized payloads, wrong direction, announced fds.
    for (bad, code) in [
        (header(2, 99, 1, 0), ErrorCode::UnsupportedVersion),
        (header(1 << 30, 1, 1, 0), ErrorCode::BadRequest),
        (header(2, 1, 2, 0), ErrorCode::BadRequest),
        (header(2, 1, 1, 3), ErrorCode::BadRequest),
    ] {
        // Header and payload in one write: the daemon closes as soon as it
        // has read a bad header, so a second write could meet a closed
        // socket (EPIPE) before the test reads the error reply.
        let mut message = bad;
        message.extend_from_slice(b"{}");
        let mut s = UnixStream::connect(daemon.socket())?;
        s.write_all(&message)?;
        let r = read_response(&mut s);
        assert!(is_error(&r, code), "{r:?}");
    }

    // A truncated message followed by a close: nothing to answer, daemon fine.
    let mut s = UnixStream::connect(daemon.socket())?;
    s.write_all(&header(100, 1, 1, 0))?;
    s.write_all(b"{\"request\":")?;
    drop(s);

    // Well framed but wrong: errors, and the connection stays usable.
    let mut conn = daemon.connect()?;
    let cases: &[&[u8]] = &[
        b"not json",
        b"{\"request\":\"open_port\"}",
        b"{\"request\":\"open_port\",\"port\":\"vale0:../../etc\"}",
        b"{\"request\":\"open_port\",\"port\":\"nope0:a\"}",
        b"{\"request\":\"open_port\",\"port\":\"vale0:a\",\"ring_size\":1000}",
        b"{\"request\":\"open_port\",\"port\":\"vale0:a\",\"buf_size\":100000}",
        b"{\"request\":\"open_port\",\"port\":\"vale0:a\",\"ring_size\":-1}",
        b"{\"request\":\"self_destruct\"}",
        b"{\"request\":\"list\",\"extra\":true}",
        b"[1,2,3]",
        &[0xff, 0xfe, 0x00],
    ];
    for case in cases {
        let r = conn.call_raw(case)?;
        assert!(
            matches!(r, Response::Error { .. }),
            "{:?} -> {r:?}",
            String::from_utf8_lossy(case)
        );
    }
    let bad_config =
        conn.call_raw(b"{\"request\":\"open_port\",\"port\":\"vale0:a\",\"ring_size\":1000}")?;
    assert!(matches!(
        bad_config,
        Response::Error {
            code: ErrorCode::BadConfig,
            ..
        }
    ));
    assert!(matches!(
        conn.call(&Request::List {}),
        Ok((Response::List { .. }, _))
    ));

    // File descriptors sent by a client are refused (and closed).
    let mut s = UnixStream::connect(daemon.socket())?;
    {
        let fd = std::fs::File::open("/dev/null")?;
        use std::os::fd::AsRawFd;
        switch_port::control::wire::send(&s, 1, b"{\"request\":\"list\"}", &[fd.as_raw_fd()])?;
    }
    let r = read_response(&mut s);
    assert!(is_error(&r, ErrorCode::BadRequest), "{r:?}");

    // Still alive and serving.
    let status = daemon.cli_json(&["list", "--json"])?;
    assert!(status["switches"].is_array());
    assert!(daemon.pid() > 0);
    Ok(())
}

#[test]
fn scribbled_rings_are_dropped_and_counted() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    // An honest pair of ports keeps exchanging traffic meanwhile.
    let (mut rx, mut tx) = honest_pair(&daemon, 300_000, 2)?;

    let evil = daemon.open("vale0:evil")?;
    let tx_ring = evil.raw_tx_ring();
    let rx_ring = evil.raw_rx_ring();
    let layout = *evil.layout();
    for round in 0..200u32 {
        // Slots with a buffer outside the region, a length past the buffer,
        // and a runt.
        let base = tx_ring.head().load(Ordering::Relaxed);
        let slots = [
            Slot {
                buf: layout.num_bufs + round,
                len: 60,
                flags: 0,
            },
            Slot {
                buf: u32::MAX,
                len: 60,
                flags: 0xffff,
            },
            Slot {
                buf: 1,
                len: (layout.buf_size + 1) as u16,
                flags: 0,
            },
            Slot {
                buf: 2,
                len: u16::MAX,
                flags: 0,
            },
            Slot {
                buf: 3,
                len: 5,
                flags: 0,
            },
        ];
        for (i, slot) in slots.iter().enumerate() {
            tx_ring.write_slot(base + i as u32, *slot);
        }
        tx_ring
            .head()
            .store(tx_ring.advance(base, slots.len() as u32), Ordering::Release);
        // Indices out of range in both rings, and cur/tail garbage.
        if round % 3 == 0 {
            tx_ring
                .head()
                .store(layout.ring_size + round, Ordering::Release);
            rx_ring.head().store(u32::MAX - round, Ordering::Release);
            tx_ring.tail().store(u32::MAX, Ordering::Release);
            rx_ring.tail().store(12345, Ordering::Release);
            std::thread::sleep(Duration::from_millis(1));
            tx_ring
                .head()
                .store(tx_ring.advance(base, slots.len() as u32), Ordering::Release);
            rx_ring.head().store(0, Ordering::Release);
        }
        // Bad buffer numbers in RX slots the switch will fill.
        for i in 0..layout.ring_size {
            if i % 7 == 0 {
                rx_ring.write_slot(
                    i,
                    Slot {
                        buf: u32::MAX - i,
                        len: 0,
                        flags: 0,
                    },
                );
            }
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    let tx_sum = pktgen_summary(&mut tx, Duration::from_secs(60))?;
    let rx_port = daemon.settled_counters("vale0:rx", 300_000)?;
    let rx_sum = pktgen_summary(&mut rx, Duration::from_secs(30))?;
    let evil_counters = daemon.counters("vale0:evil")?;
    // The hostile client's entries were counted, not used.
    assert!(evil_counters.drop_bad_slot > 0, "{evil_counters:?}");
    assert!(evil_counters.drop_runt > 0, "{evil_counters:?}");
    assert!(evil_counters.bad_index > 0, "{evil_counters:?}");
    assert!(listed_errored(&daemon, "vale0:evil")?);
    // The honest pair saw nothing corrupt or foreign, and every frame is
    // accounted for: received intact, or dropped (counted) when the receiver
    // fell behind on this shared machine.
    assert_eq!(field(&tx_sum, "packets"), 300_000);
    assert_eq!(field(&rx_sum, "corrupt"), 0, "{rx_sum}");
    assert_eq!(field(&rx_sum, "foreign"), 0, "{rx_sum}");
    assert_eq!(field(&rx_sum, "duplicates"), 0, "{rx_sum}");
    assert_all_accounted(&rx_sum, &rx_port, 300_000);
    // The daemon is alive.
    assert!(daemon.connect()?.call(&Request::List {}).is_ok());
    drop(evil);
    Ok(())
}

#[test]
fn refusals_are_clear() -> Result<()> {
    let daemon = Daemon::start(&["--max-ports", "2"])?;
    let _a = daemon.open("vale0:a")?;
    // Port busy.
    match daemon.open("vale0:a") {
        Err(e) => assert!(e.to_string().contains("busy"), "{e}"),
        Ok(_) => panic!("second open of a busy port succeeded"),
    }
    let _b = daemon.open("vale0:b")?;
    // Switch full.
    match daemon.open("vale0:c") {
        Err(e) => assert!(e.to_string().contains("full"), "{e}"),
        Ok(_) => panic!("a third port on a 2-port switch"),
    }
    // Another switch is fine.
    let _d = daemon.open("vale1:d")?;
    // Bad names, from the library and the CLI.
    assert!(daemon.open("vale0").is_err());
    let out = daemon.cli(&["create", "eth0:x"])?;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad port name"),
        "{out:?}"
    );
    // No daemon: says where it looked.
    let nowhere = daemon.dir().join("nobody.sock");
    let out = e2e_tests::run_bounded(
        {
            let mut c = std::process::Command::new(e2e_tests::vswitch_bin());
            c.args(["list", "--socket"]).arg(&nowhere);
            c
        },
        Duration::from_secs(10),
    )?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no vswitch daemon") && err.contains("nobody.sock"),
        "{err}"
    );
    // A second daemon on the same socket refuses to start.
    let out = e2e_tests::run_bounded(daemon.command(&["daemon"]), Duration::from_secs(10))?;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("another vswitch daemon"),
        "{out:?}"
    );
    // A refused open through the library is a typed error.
    let conn_err = switch_port::PortClient::open(daemon.socket(), "vale0:a", Default::default());
    assert!(matches!(
        conn_err,
        Err(switch_port::client::OpenError::Control(
            ClientError::Refused {
                code: ErrorCode::PortBusy,
                ..
            }
        ))
    ));
    Ok(())
}

/// A client that fills the counter of the eventfd the switch kicks it with
/// and clears `O_NONBLOCK` on it (the two share the open file) would block
/// the forwarding thread's next kick for ever, starving every other port.
/// The daemon interrupts such a kick, stops kicking that client, counts it
/// in `kicks_stalled` and marks the port errored; the honest pair's traffic
/// goes on.
#[test]
fn a_client_that_blocks_its_kick_starves_nobody() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let evil = daemon.open("vale0:evil")?;
    let fd = evil.kick_fd();
    let almost_full: u64 = u64::MAX - 1;
    // SAFETY: writing one u64 to the client's own eventfd; F_GETFL/F_SETFL
    // on it.
    unsafe {
        assert_eq!(
            libc::write(fd, (&almost_full as *const u64).cast(), 8),
            8,
            "cannot fill the kick eventfd"
        );
        let flags = libc::fcntl(fd, libc::F_GETFL);
        assert_eq!(libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK), 0);
    }
    // Ask for a kick on every delivery.
    evil.raw_rx_ring()
        .consumer_needs_kick()
        .store(1, Ordering::Release);
    // Frames to an unknown address are flooded to the evil port too.
    let (mut rx, mut tx) = honest_pair(&daemon, 200_000, 3)?;
    let tx_sum = pktgen_summary(&mut tx, Duration::from_secs(60))?;
    let rx_port = daemon.settled_counters("vale0:rx", 200_000)?;
    let rx_sum = pktgen_summary(&mut rx, Duration::from_secs(30))?;
    assert_eq!(field(&tx_sum, "packets"), 200_000);
    assert_all_accounted(&rx_sum, &rx_port, 200_000);
    assert!(
        field(&rx_sum, "packets") > 100_000,
        "the honest receiver was starved: {rx_sum}"
    );
    let evil_counters = daemon.counters("vale0:evil")?;
    assert_eq!(evil_counters.kicks_stalled, 1, "{evil_counters:?}");
    assert!(listed_errored(&daemon, "vale0:evil")?);
    assert!(daemon.connect()?.call(&Request::List {}).is_ok());
    drop(evil);
    Ok(())
}
