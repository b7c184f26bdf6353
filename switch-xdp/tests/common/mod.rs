//! Test support: network namespaces we create and always delete, veth pairs
//! across two of them, raw AF_PACKET sockets and frame builders.
//!
//! Traffic stays inside the namespaces; addresses come from 192.0.2.0/24
//! (TEST-NET-1) and only exist there.
#![allow(dead_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The interface on the XDP side.
pub const XDP_IF: &str = "vsxa";
/// Its peer.
pub const PEER_IF: &str = "vsxb";
/// Address of the XDP side.
pub const XDP_ADDR: &str = "192.0.2.1";
/// Address of the peer.
pub const PEER_ADDR: &str = "192.0.2.2";

static NEXT_NS: AtomicUsize = AtomicUsize::new(0);

/// A network namespace named `vsx-<pid>-<n>`, deleted on drop (also while
/// unwinding from a failed assertion).
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates a fresh namespace with its loopback up.
    pub fn new() -> Self {
        let name = format!(
            "vsx-{}-{}",
            std::process::id(),
            NEXT_NS.fetch_add(1, Ordering::Relaxed)
        );
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"]);
        // No IPv6 chatter (router solicitations, MLD): counters stay exact.
        let sysctl = ns.exec(&[
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ]);
        assert!(sysctl.status.success(), "disabling IPv6 in {}", ns.name);
        ns
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME args...`, which must succeed.
    pub fn ip(&self, args: &[&str]) -> String {
        let out = run_ok(Command::new("ip").arg("-n").arg(&self.name).args(args));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ip netns exec NAME cmd...`, whatever its outcome.
    pub fn exec(&self, cmd: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(cmd)
            .output()
            .expect("running ip netns exec")
    }

    /// Runs `f` on a thread that has entered this namespace; returns its
    /// result (a panic inside is propagated).
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    self.enter();
                    f()
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Moves the calling thread into this namespace.
    pub fn enter(&self) {
        let path = format!("/var/run/netns/{}", self.name);
        let file = std::fs::File::open(&path).expect("opening the namespace file");
        // SAFETY: setns on a namespace fd we hold open; affects this thread only.
        let ret = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(ret, 0, "setns {path}: {}", io::Error::last_os_error());
    }

    /// The `ip link show` line(s) of `iface`.
    pub fn link_show(&self, iface: &str) -> String {
        self.ip(&["link", "show", "dev", iface])
    }

    /// Whether an XDP program sits on `iface`.
    pub fn has_xdp(&self, iface: &str) -> bool {
        self.link_show(iface).contains("prog/xdp")
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .output();
    }
}

/// Two namespaces joined by a veth: `XDP_IF` (192.0.2.1) in `xdp`, `PEER_IF`
/// (192.0.2.2) in `peer`, both up.
pub struct VethPair {
    /// Namespace of the side the XDP program and sockets use.
    pub xdp: NetNs,
    /// Namespace of the traffic peer.
    pub peer: NetNs,
}

impl VethPair {
    /// A single-queue pair.
    pub fn new() -> Self {
        Self::with_queues(1)
    }

    /// A pair with `queues` RX and TX queues on each side.
    pub fn with_queues(queues: u32) -> Self {
        let xdp = NetNs::new();
        let peer = NetNs::new();
        let q = queues.to_string();
        xdp.ip(&[
            "link",
            "add",
            "name",
            XDP_IF,
            "numrxqueues",
            &q,
            "numtxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            PEER_IF,
            "numrxqueues",
            &q,
            "numtxqueues",
            &q,
            "netns",
            peer.name(),
        ]);
        xdp.ip(&["addr", "add", &format!("{XDP_ADDR}/24"), "dev", XDP_IF]);
        peer.ip(&["addr", "add", &format!("{PEER_ADDR}/24"), "dev", PEER_IF]);
        xdp.ip(&["link", "set", XDP_IF, "up"]);
        peer.ip(&["link", "set", PEER_IF, "up"]);
        Self { xdp, peer }
    }

    /// The MAC address of `XDP_IF`.
    pub fn xdp_mac(&self) -> [u8; 6] {
        mac_of(&self.xdp, XDP_IF)
    }

    /// The MAC address of `PEER_IF`.
    pub fn peer_mac(&self) -> [u8; 6] {
        mac_of(&self.peer, PEER_IF)
    }

    /// One ping from the peer to the XDP side; whether a reply came.
    pub fn ping_from_peer(&self) -> bool {
        // A failed resolution just before leaves a FAILED neighbour entry:
        // start from a clean cache, and allow a few tries on a loaded machine.
        self.peer.ip(&["neigh", "flush", "dev", PEER_IF]);
        self.peer
            .exec(&[
                "ping", "-c", "3", "-i", "0.2", "-W", "1", "-n", "-q", XDP_ADDR,
            ])
            .status
            .success()
    }
}

/// The MAC address of `iface` in `ns`.
fn mac_of(ns: &NetNs, iface: &str) -> [u8; 6] {
    let text = ns.link_show(iface);
    let field = text
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .expect("a link/ether line");
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(field.split(':')) {
        *byte = u8::from_str_radix(part, 16).expect("hex MAC");
    }
    mac
}

/// Runs a command that must succeed; panics with its stderr otherwise.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("starting a command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A raw AF_PACKET socket bound to one interface (of the calling thread's
/// namespace), non-blocking.
pub struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    /// Opens a socket that sees every frame of `iface` and can send on it,
    /// bypassing the qdisc.
    pub fn open(iface: &str) -> Self {
        let ifindex = switch_xdp::iface::ifindex(iface).expect("interface exists");
        let protocol = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket(2); checked below.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                i32::from(protocol),
            )
        };
        assert!(fd >= 0, "socket: {}", io::Error::last_os_error());
        // SAFETY: fresh descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_ll is plain data; zero is valid.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = protocol;
        addr.sll_ifindex = ifindex as i32;
        // SAFETY: bind with a sockaddr_ll of the right size.
        let ret = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(ret, 0, "bind: {}", io::Error::last_os_error());
        let one: libc::c_int = 1;
        // SAFETY: setsockopt reads one int.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                (&one as *const libc::c_int).cast(),
                4,
            )
        };
        Self { fd }
    }

    /// Sends one frame; whether the kernel took it.
    pub fn send(&self, frame: &[u8]) -> bool {
        // SAFETY: sends from a live slice on a bound socket.
        let ret = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        ret == frame.len() as isize
    }

    /// Sends `frames` with one sendmmsg; returns how many the kernel took.
    pub fn send_batch(&self, frames: &[Vec<u8>]) -> usize {
        let mut iovecs: Vec<libc::iovec> = frames
            .iter()
            .map(|f| libc::iovec {
                iov_base: f.as_ptr() as *mut _,
                iov_len: f.len(),
            })
            .collect();
        let mut headers: Vec<libc::mmsghdr> = iovecs
            .iter_mut()
            .map(|iov| {
                // SAFETY: mmsghdr is plain data; zero is valid.
                let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                h.msg_hdr.msg_iov = iov;
                h.msg_hdr.msg_iovlen = 1;
                h
            })
            .collect();
        // SAFETY: every header points at a live iovec over a live frame.
        let ret = unsafe {
            libc::sendmmsg(
                self.fd.as_raw_fd(),
                headers.as_mut_ptr(),
                headers.len() as u32,
                0,
            )
        };
        ret.max(0) as usize
    }

    /// Receives one frame, waiting at most `timeout`.
    pub fn recv(&self, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 4096];
        loop {
            // SAFETY: reads into our buffer.
            let ret =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if ret >= 0 {
                buf.truncate(ret as usize);
                return Some(buf);
            }
            if Instant::now() >= deadline {
                return None;
            }
            let mut pollfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one pollfd, short timeout.
            unsafe { libc::poll(&mut pollfd, 1, 10) };
        }
    }

    /// Receives frames for at most `timeout` or until `want` matched `keep`.
    pub fn collect(
        &self,
        want: usize,
        timeout: Duration,
        keep: impl Fn(&[u8]) -> bool,
    ) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut frames = Vec::new();
        while frames.len() < want && Instant::now() < deadline {
            if let Some(frame) = self.recv(Duration::from_millis(50)) {
                if keep(&frame) {
                    frames.push(frame);
                }
            }
        }
        frames
    }
}

/// An Ethernet frame with EtherType `ethertype` and `payload`.
pub fn ether_frame(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(14 + payload.len());
    frame.extend_from_slice(&dst);
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// The EtherType of test frames (IEEE local experimental 1).
pub const TEST_ETHERTYPE: u16 = 0x88b5;

/// A test frame of `len` bytes (at least 22) carrying `seq` after the header
/// and a pattern derived from it.
pub fn test_frame(dst: [u8; 6], src: [u8; 6], seq: u64, len: usize) -> Vec<u8> {
    let mut payload = seq.to_be_bytes().to_vec();
    payload.extend((0..len.saturating_sub(22)).map(|i| (seq as usize + i) as u8));
    ether_frame(dst, src, TEST_ETHERTYPE, &payload)
}

/// The sequence number of a test frame, if `frame` is one and intact.
pub fn test_frame_seq(frame: &[u8]) -> Option<u64> {
    if frame.len() < 22 || frame[12..14] != TEST_ETHERTYPE.to_be_bytes() {
        return None;
    }
    let seq = u64::from_be_bytes(frame[14..22].try_into().ok()?);
    let intact = frame[22..]
        .iter()
        .enumerate()
        .all(|(i, b)| *b == (seq as usize + i) as u8);
    intact.then_some(seq)
}

/// An IPv4/UDP frame from `src_port` (so that flows hash to different
/// queues), 64 bytes on the wire without FCS when `payload` is 18 bytes.
pub fn udp_frame(dst: [u8; 6], src: [u8; 6], src_port: u16, payload: &[u8]) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let ip_len = 20 + udp_len;
    let mut ip = vec![
        0x45,
        0,
        (ip_len >> 8) as u8,
        ip_len as u8,
        0,
        0,
        0x40,
        0,
        64,
        17,
        0,
        0,
        192,
        0,
        2,
        2,
        192,
        0,
        2,
        1,
    ];
    let mut sum: u32 = ip
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let checksum = !(sum as u16);
    ip[10..12].copy_from_slice(&checksum.to_be_bytes());
    ip.extend_from_slice(&src_port.to_be_bytes());
    ip.extend_from_slice(&9u16.to_be_bytes());
    ip.extend_from_slice(&(udp_len as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 0]);
    ip.extend_from_slice(payload);
    ether_frame(dst, src, 0x0800, &ip)
}

/// Polls `condition` every 20 ms for at most `timeout`.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
