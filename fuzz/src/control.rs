//! The `control` target: the control socket's framing ([`wire`]) and the
//! daemon's message handling ([`Server`]) over a socket pair, as a hostile
//! client drives them: well-framed requests (valid JSON from templates, or
//! any payload), headers with any direction and length, raw bytes that break
//! the framing, and file descriptors (eventfds, a memfd, the socket itself)
//! attached where none are expected. A reader thread takes every response:
//! each must be a framed, parseable [`Response`]. Then the other direction:
//! a hostile daemon's framed answers and fds as a client's [`wire::receive`]
//! sees them, and a hostile port region (any header, any size) mapped by
//! [`Region::from_fd`], whose every buffer must then be inside the mapping.
//!
//! The daemon is one [`Registry`] with one forwarding thread for the whole
//! run; each input gets a fresh connection and removes the ports it left.

use std::io::Write as _;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use switch_port::control::wire;
use switch_port::eventfd::EventFd;
use switch_port::layout::Layout;
use switch_port::protocol::{Header, Response, DIR_REQUEST, DIR_RESPONSE, MAX_REQUEST};
use switch_port::region::Region;
use switch_user::access::Caller;
use switch_user::clock::Clock;
use switch_user::control::{Server, ServerConfig};
use switch_user::engine::Engine;
use switch_user::quota::UserLimits;
use switch_user::registry::{Registry, SwitchConfig};
use switch_user::state::StateStore;

use crate::input::Input;

/// Operation codes (modulo [`op::COUNT`]).
pub mod op {
    /// A request from [`super::TEMPLATES`]: template u8, port u8, ring u16,
    /// buf u16, fds u8.
    pub const TEMPLATE: u8 = 0;
    /// A framed message: direction u16, fds u8, run (the payload).
    pub const FRAMED: u8 = 1;
    /// A header announcing anything: direction u16, length u32, fds u32,
    /// then a run sent after it.
    pub const HEADER: u8 = 2;
    /// Raw bytes with fds: fds u8, run.
    pub const RAW: u8 = 3;
    /// A hostile daemon's answer to a client: direction u16, fds u8, run,
    /// truncate u16 (bytes cut from the end, 0 for none).
    pub const CLIENT: u8 = 4;
    /// A hostile port region: size u32, run (the header and what follows).
    pub const REGION: u8 = 5;
    /// Number of operation codes.
    pub const COUNT: u8 = 6;
}

/// Request templates: `{port}`, `{ring}` and `{buf}` are filled in.
pub const TEMPLATES: &[&str] = &[
    r#"{"request":"open_port","port":"{port}","ring_size":{ring},"buf_size":{buf}}"#,
    r#"{"request":"open_port","port":"{port}"}"#,
    r#"{"request":"create_port","port":"{port}","ring_size":{ring},"buf_size":{buf}}"#,
    r#"{"request":"delete_port","port":"{port}"}"#,
    r#"{"request":"list"}"#,
    r#"{"request":"stats","port":"{port}"}"#,
    r#"{"request":"stats"}"#,
    r#"{"request":"fdb","switch":"vale0"}"#,
    r#"{"request":"status"}"#,
    r#"{"request":"attach","switch":"vale0","iface":"{port}"}"#,
    r#"{"request":"detach","switch":"vale0","iface":"{port}"}"#,
    r#"{"request":"open_port","port":"{port}","ring_size":{ring},"buf_size":{buf},"x":1}"#,
];

/// Port names the templates use.
const PORTS: &[&str] = &[
    "vale0:a",
    "vale0:b",
    "vale1:a",
    "vale0:",
    "nope",
    "vale0:a:b",
    "valeé:x",
];

fn server() -> &'static Arc<Server> {
    static SERVER: OnceLock<Arc<Server>> = OnceLock::new();
    SERVER.get_or_init(|| {
        let clock = Clock::new();
        let engine = Engine::start(1, Duration::ZERO, clock).expect("a forwarding thread");
        let config = SwitchConfig {
            max_ports: 8,
            ..SwitchConfig::default()
        };
        Arc::new(Server::new(
            Arc::new(Registry::new(engine, config, UserLimits::default(), clock)),
            ServerConfig::default(),
            Vec::new(),
            Arc::new(StateStore::open(None).expect("a state store that saves nothing")),
        ))
    })
}

/// Descriptors a message may carry.
struct Fds {
    eventfd: EventFd,
    memfd: OwnedFd,
}

impl Fds {
    fn new() -> Self {
        Self {
            eventfd: EventFd::new().expect("eventfd"),
            memfd: memfd(b"", 4096, false).expect("memfd"),
        }
    }

    /// `count` descriptors (up to 8) taken from the eventfd, the memfd and
    /// `socket`.
    fn pick(&self, count: u8, socket: RawFd) -> Vec<RawFd> {
        let all = [self.eventfd.raw(), self.memfd.as_raw_fd(), socket];
        (0..usize::from(count % 9)).map(|i| all[i % 3]).collect()
    }
}

/// A memfd holding `bytes`, `size` bytes long, sealed against resizing if
/// `seal`.
fn memfd(bytes: &[u8], size: u64, seal: bool) -> Option<OwnedFd> {
    // SAFETY: memfd_create with a NUL-terminated name; the result is checked.
    let fd = unsafe {
        libc::memfd_create(
            c"fuzz".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut file = std::fs::File::from(fd);
    file.write_all(bytes).ok()?;
    file.set_len(size).ok()?;
    let fd = OwnedFd::from(file);
    if seal {
        // SAFETY: fcntl on a descriptor we own.
        unsafe {
            libc::fcntl(
                fd.as_raw_fd(),
                libc::F_ADD_SEALS,
                libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL,
            )
        };
    }
    Some(fd)
}

/// Sends `bytes` with `fds` in one `sendmsg`, then the rest if the socket
/// took part of it; errors (the daemon closed) are ignored.
fn send_raw(stream: &UnixStream, bytes: &[u8], fds: &[RawFd]) {
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    let fd_bytes = std::mem::size_of_val(fds);
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(fd_bytes as u32) } as usize;
    let mut control = vec![0u8; space];
    // SAFETY: an all-zero msghdr is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space;
        // SAFETY: the control buffer holds CMSG_SPACE(fd_bytes) bytes, room
        // for one header and the descriptors.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(fd_bytes as u32) as usize;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr().cast::<u8>(),
                libc::CMSG_DATA(cmsg),
                fd_bytes,
            );
        }
    }
    if bytes.is_empty() && fds.is_empty() {
        return;
    }
    // SAFETY: msg describes buffers valid for the duration of the call.
    let sent = unsafe { libc::sendmsg(stream.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    if sent >= 0 && (sent as usize) < bytes.len() {
        let mut s = stream;
        let _ = s.write_all(&bytes[sent as usize..]);
    }
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let fds = Fds::new();
    let (ours, theirs) = UnixStream::pair().expect("socketpair");
    let server = server();
    server.spawn(theirs);
    let reader_stream = ours.try_clone().expect("dup");
    let reader = std::thread::spawn(move || read_responses(&reader_stream));
    while !input.done() {
        match input.u8() % op::COUNT {
            op::TEMPLATE => {
                let template = TEMPLATES[usize::from(input.u8()) % TEMPLATES.len()];
                let port = PORTS[usize::from(input.u8()) % PORTS.len()];
                let ring = input.u16();
                let buf = input.u16();
                let body = template
                    .replace("{port}", port)
                    .replace("{ring}", &ring.to_string())
                    .replace("{buf}", &(u32::from(buf) * 64).to_string());
                let fds = fds.pick(input.u8(), ours.as_raw_fd());
                let _ = wire::send(&ours, DIR_REQUEST, body.as_bytes(), &fds);
            }
            op::FRAMED => {
                let direction = input.u16() % 4;
                let fds = fds.pick(input.u8(), ours.as_raw_fd());
                let payload = input.run(MAX_REQUEST + 16);
                let _ = wire::send(&ours, direction, payload, &fds);
            }
            op::HEADER => {
                let header = Header {
                    direction: input.u16() % 4,
                    payload_len: input.u32() as usize,
                    fds: input.u32() % 8,
                }
                .encode();
                let rest = input.run(4096);
                let mut bytes = header.to_vec();
                bytes.extend_from_slice(rest);
                send_raw(&ours, &bytes, &[]);
            }
            op::RAW => {
                let fds = fds.pick(input.u8(), ours.as_raw_fd());
                send_raw(&ours, input.run(4096), &fds);
            }
            op::CLIENT => {
                let direction = input.u16() % 4;
                let count = input.u8();
                let payload = input.run(8192);
                let cut = usize::from(input.u16());
                hostile_daemon(direction, count, payload, cut, &fds);
            }
            _ => {
                let size = u64::from(input.u32() % (4 << 20));
                hostile_region(input.run(8192), size);
            }
        }
    }
    let _ = ours.shutdown(std::net::Shutdown::Write);
    reader.join().expect("the response reader");
    cleanup(server);
}

/// Reads responses until the daemon closes; each must parse.
fn read_responses(stream: &UnixStream) {
    loop {
        match wire::receive(stream, DIR_RESPONSE) {
            Ok((payload, _fds)) => {
                if let Err(e) = serde_json::from_slice::<Response>(&payload) {
                    panic!(
                        "the daemon sent a response that does not parse ({e}): {}",
                        String::from_utf8_lossy(&payload)
                    );
                }
            }
            Err(_) => return,
        }
    }
}

/// Removes the ports this input created (persistent ones outlive the
/// connection).
fn cleanup(server: &Server) {
    let registry = server.registry();
    for switch in registry.list() {
        for port in switch.ports {
            let _ = registry.delete_port(&port.name, &Caller::root());
        }
    }
}

/// A client reads a hostile daemon's message: the header and payload as
/// given, with `count` fds attached, cut short by `cut` bytes.
fn hostile_daemon(direction: u16, count: u8, payload: &[u8], cut: usize, fds: &Fds) {
    let (daemon, client) = UnixStream::pair().expect("socketpair");
    let mut bytes = Header {
        direction,
        payload_len: payload.len(),
        fds: u32::from(count % 9),
    }
    .encode()
    .to_vec();
    bytes.extend_from_slice(payload);
    bytes.truncate(bytes.len().saturating_sub(cut));
    // Not the daemon's own socket among the fds: in flight to the client,
    // it would keep the connection open and the client waiting forever.
    send_raw(&daemon, &bytes, &fds.pick(count, fds.eventfd.raw()));
    drop(daemon);
    client
        .set_read_timeout(Some(Duration::from_secs(1)))
        .expect("a read timeout");
    while let Ok((payload, _fds)) = wire::receive(&client, DIR_RESPONSE) {
        let _ = serde_json::from_slice::<Response>(&payload);
    }
}

/// A client maps a hostile region: `bytes` at its start, `size` bytes long,
/// sealed. If it maps, every ring and buffer it exposes must be inside.
fn hostile_region(bytes: &[u8], size: u64) {
    let Some(fd) = memfd(bytes, size.max(bytes.len() as u64), true) else {
        return;
    };
    let Ok(region) = Region::from_fd(fd) else {
        return;
    };
    let layout: Layout = *region.layout();
    assert!(layout.region_len <= region.len());
    for ring in [region.tx_ring(), region.rx_ring()] {
        let _ = ring.head().load(std::sync::atomic::Ordering::Relaxed);
        let _ = ring.read_slot(ring.size() - 1);
    }
    for index in 0..layout.num_bufs {
        let buffer = region.buffer(index).expect("a buffer below num_bufs");
        // SAFETY: Region::buffer promises buf_size bytes inside the mapping:
        // if it lied, this read faults and the fuzzer reports it.
        let _ =
            unsafe { std::ptr::read_volatile(buffer.as_ptr().add(layout.buf_size as usize - 1)) };
    }
    assert!(region.buffer(layout.num_bufs).is_none());
}
