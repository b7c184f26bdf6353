//! Test support: a veth across two network namespaces of testbed (always
//! deleted), and the test frames sent through it.
//!
//! Traffic stays inside the namespaces; addresses come from 192.0.2.0/24
//! (TEST-NET-1) and only exist there.
#![allow(dead_code)]

use std::time::Duration;

pub use testbed::{wait_until, Netns, PacketSocket, Protocol};

/// The prefix of the namespaces these tests create.
pub const NETNS_PREFIX: &str = "vsx";
/// The interface on the XDP side.
pub const XDP_IF: &str = "vsxa";
/// Its peer.
pub const PEER_IF: &str = "vsxb";
/// Address of the XDP side.
pub const XDP_ADDR: &str = "192.0.2.1";
/// Address of the peer.
pub const PEER_ADDR: &str = "192.0.2.2";
/// How often the tests' bounded waits check their condition.
pub const POLL: Duration = Duration::from_millis(20);

/// A fresh namespace with loopback up and IPv6 off (no router
/// solicitations or MLD reports: counters stay exact).
pub fn netns() -> Netns {
    let ns = Netns::new(NETNS_PREFIX).expect("creating a namespace");
    ns.disable_ipv6().expect("disabling IPv6");
    ns
}

/// Runs `f` on a thread inside `ns` and returns its result (a panic
/// inside fails the test).
pub fn inside<T: Send>(ns: &Netns, f: impl FnOnce() -> T + Send) -> T {
    ns.run_in(f).expect("running inside the namespace")
}

/// Polls `condition` every [`POLL`] for at most `timeout`; whether it held.
pub fn eventually(timeout: Duration, condition: impl FnMut() -> bool) -> bool {
    wait_until(timeout, POLL, condition).is_ok()
}

/// Two namespaces joined by a veth: `XDP_IF` (192.0.2.1) in `xdp`, `PEER_IF`
/// (192.0.2.2) in `peer`, both up.
pub struct VethPair {
    /// Namespace of the side the XDP program and sockets use.
    pub xdp: Netns,
    /// Namespace of the traffic peer.
    pub peer: Netns,
}

impl VethPair {
    /// A single-queue pair.
    pub fn new() -> Self {
        Self::with_queues(1)
    }

    /// A pair with `queues` RX and TX queues on each side.
    pub fn with_queues(queues: u32) -> Self {
        let xdp = netns();
        let peer = netns();
        let queues = testbed::Queues {
            rx: queues,
            tx: queues,
        };
        xdp.add_veth(XDP_IF, PEER_IF, Some(&peer), Some(queues))
            .expect("creating the veth");
        xdp.add_addr(XDP_IF, &format!("{XDP_ADDR}/24")).unwrap();
        peer.add_addr(PEER_IF, &format!("{PEER_ADDR}/24")).unwrap();
        xdp.set_up(XDP_IF).unwrap();
        peer.set_up(PEER_IF).unwrap();
        Self { xdp, peer }
    }

    /// The MAC address of `XDP_IF`.
    pub fn xdp_mac(&self) -> [u8; 6] {
        self.xdp.mac(XDP_IF).unwrap().0
    }

    /// The MAC address of `PEER_IF`.
    pub fn peer_mac(&self) -> [u8; 6] {
        self.peer.mac(PEER_IF).unwrap().0
    }

    /// Whether an XDP program sits on `XDP_IF`.
    pub fn has_xdp(&self) -> bool {
        self.xdp.has_xdp(XDP_IF).unwrap()
    }

    /// The link details of `XDP_IF`, for failure messages.
    pub fn xdp_link(&self) -> String {
        self.xdp.link_details(XDP_IF).unwrap()
    }

    /// Pings from the peer to the XDP side (3 tries); whether a reply came.
    pub fn ping_from_peer(&self) -> bool {
        // A failed resolution just before leaves a FAILED neighbour entry:
        // start from a clean cache, and allow a few tries on a loaded machine.
        self.peer.ip(["neigh", "flush", "dev", PEER_IF]).unwrap();
        self.peer.ping(XDP_ADDR, 3, Duration::from_secs(1)).unwrap()
    }

    /// Opens an AF_PACKET socket on `PEER_IF` that sees every frame.
    pub fn peer_socket(&self) -> PacketSocket {
        self.peer
            .run_in(|| PacketSocket::open(PEER_IF, Protocol::All))
            .unwrap()
            .unwrap()
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
