//! Offload and reclaim through the control socket of a real server with a
//! forwarding thread: who may do it, what is refused, and that frames
//! cross between an offloaded fake guest and a client port.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use e1000_spec::csb::field;
use serde_json::Value;
use switch_port::client::{Interest, PortClient, PortConfig};
use switch_port::control::wire;
use switch_port::names::PortName;
use switch_port::protocol::{Request, DIR_REQUEST, DIR_RESPONSE};

use super::tests::{frame, handover, Guest, CSB, MEM, RING};
use crate::clock::Clock;
use crate::control::{Server, ServerConfig};
use crate::engine::Engine;
use crate::quota::UserLimits;
use crate::registry::{Registry, SwitchConfig};
use crate::state::StateStore;

const WAIT: Duration = Duration::from_secs(5);

fn server() -> Arc<Server> {
    let clock = Clock::new();
    let engine = Engine::start(1, Duration::from_micros(50), clock).unwrap();
    Arc::new(Server::new(
        Arc::new(Registry::new(
            engine,
            SwitchConfig::default(),
            UserLimits::default(),
            clock,
        )),
        ServerConfig::default(),
        Vec::new(),
        Arc::new(StateStore::open(None).unwrap()),
    ))
}

/// Accepts `count` connections on `listener` and serves each.
fn serve(listener: UnixListener, server: Arc<Server>, count: usize) {
    std::thread::spawn(move || {
        for _ in 0..count {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            server.spawn(stream);
        }
    });
}

/// Sends `request` with `fds` and returns the response and its fds.
fn ask(stream: &UnixStream, request: &str, fds: &[RawFd]) -> (Value, Vec<OwnedFd>) {
    wire::send(stream, DIR_REQUEST, request.as_bytes(), fds).unwrap();
    let (payload, fds) = wire::receive(stream, DIR_RESPONSE).unwrap();
    (serde_json::from_slice(&payload).unwrap(), fds)
}

fn error_code(response: &Value) -> &str {
    assert_eq!(response["response"], "error", "{response}");
    response["code"].as_str().unwrap()
}

fn offload(port: &str, memory_size: u64) -> String {
    serde_json::to_string(&Request::OffloadPort {
        port: PortName::parse(port).unwrap(),
        memory_size,
        handover: handover(CSB),
    })
    .unwrap()
}

fn raw(fds: &[OwnedFd]) -> Vec<RawFd> {
    fds.iter().map(AsRawFd::as_raw_fd).collect()
}

/// Waits (bounded) until `done` holds.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn has_port(stream: &UnixStream, name: &str) -> bool {
    let (list, _) = ask(stream, r#"{"request":"list"}"#, &[]);
    list["switches"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["ports"].as_array().unwrap())
        .any(|p| p["name"] == name)
}

fn peer(path: &Path) -> PortClient {
    PortClient::open(path, "vale0:peer", PortConfig::default()).unwrap()
}

#[test]
fn only_the_opener_offloads_and_a_reclaim_hands_back_the_moved_heads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    serve(UnixListener::bind(&path).unwrap(), server(), 4);
    let vm = UnixStream::connect(&path).unwrap();
    let other = UnixStream::connect(&path).unwrap();
    let (guest, fds) = Guest::new();
    let fds = raw(&fds);
    let (opened, _region) = ask(&vm, r#"{"request":"open_port","port":"vale0:vm"}"#, &[]);
    assert_eq!(opened["response"], "port_opened", "{opened}");

    // Another connection may neither offload nor reclaim the port.
    let (r, _) = ask(&other, &offload("vale0:vm", MEM), &fds);
    assert_eq!(error_code(&r), "permission_denied");
    let (r, _) = ask(
        &other,
        r#"{"request":"reclaim_port","port":"vale0:vm"}"#,
        &[],
    );
    assert_eq!(error_code(&r), "permission_denied");
    // Descriptors with another request, a bad hand-over, a reclaim of a
    // port that is not offloaded: refused, the connection stays usable.
    let (r, _) = ask(&vm, r#"{"request":"list"}"#, &fds);
    assert_eq!(error_code(&r), "bad_request");
    let (r, _) = ask(&vm, &offload("vale0:vm", 2 * MEM), &fds);
    assert_eq!(error_code(&r), "bad_config");
    assert!(r["message"]
        .as_str()
        .unwrap()
        .contains("larger than its memfd"));
    let (r, _) = ask(&vm, r#"{"request":"reclaim_port","port":"vale0:vm"}"#, &[]);
    assert_eq!(error_code(&r), "bad_request");

    let (r, _) = ask(&vm, &offload("vale0:vm", MEM), &fds);
    assert_eq!(r["response"], "done", "{r}");
    let (r, _) = ask(&vm, &offload("vale0:vm", MEM), &fds);
    assert_eq!(error_code(&r), "port_busy");

    // The guest sends a frame to the client port, which answers.
    let mut peer = peer(&path);
    guest.csb_set(field::GUEST_RDT, RING - 1);
    let sent = frame(60, 7);
    guest.queue_tx(0, &sent);
    guest.csb_set(field::GUEST_TDT, 1);
    guest.kick.signal();
    assert!(peer.wait(Interest::RX, Duration::ZERO, Some(WAIT)).unwrap());
    let mut got = Vec::new();
    peer.recv(1, |f| got = f.to_vec());
    assert_eq!(got, sent);
    let mut answer = frame(80, 9);
    answer[..6].copy_from_slice(&sent[6..12]);
    answer[6..12].copy_from_slice(&sent[..6]);
    assert_eq!(peer.send([answer.as_slice()]), 1);
    wait_until("the answer in the guest", || guest.received(0).is_some());
    assert_eq!(guest.received(0), Some(answer));
    assert_eq!(guest.csb_get(field::HOST_RDH), 1);

    let (r, _) = ask(&vm, r#"{"request":"reclaim_port","port":"vale0:vm"}"#, &[]);
    assert_eq!(r["response"], "reclaimed", "{r}");
    let back = &r["hand_back"];
    assert_eq!(
        (back["tdh"].as_u64(), back["tdt"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(back["rdh"].as_u64(), Some(1));
    assert_eq!(back["rdt"].as_u64(), Some(u64::from(RING - 1)));
    // The daemon walks the guest's rings no more.
    guest.queue_tx(1, &frame(60, 8));
    guest.csb_set(field::GUEST_TDT, 2);
    guest.kick.signal();
    assert_eq!(guest.csb_get(field::HOST_TDH), 1);

    // Offloaded again (the daemon takes the frame queued meanwhile), then
    // the VMM goes away: the port is removed and the guest's memory is
    // left alone.
    let (r, _) = ask(&vm, &offload("vale0:vm", MEM), &fds);
    assert_eq!(r["response"], "done", "{r}");
    wait_until("the queued frame", || guest.csb_get(field::HOST_TDH) == 2);
    drop(vm);
    wait_until("the port to go", || !has_port(&other, "vale0:vm"));
    guest.queue_tx(2, &frame(60, 9));
    guest.csb_set(field::GUEST_TDT, 3);
    guest.kick.signal();
    assert_eq!(guest.csb_get(field::HOST_TDH), 2);
}
