//! The AF_XDP underlay of a tunnel (`--underlay-xdp`): the datagrams of the
//! tunnel's address and port move through AF_XDP sockets on the interface
//! that holds the local address instead of the kernel's UDP path.
//!
//! The XDP steering program runs in UDP steering mode: IPv4 UDP datagrams
//! to (local address, port) go to the socket of their receive queue;
//! everything else (ARP, ICMP, the host's other traffic, datagrams with IP
//! options) goes to the kernel stack, where the tunnel's UDP socket still
//! serves what reaches it. Received frames are checked ([`super::outer`])
//! and their UDP payloads handed to the same receive step as the sockets'
//! ([`super::decap`]), in place in the UMEM until the batch is released.
//! On the way out the Ethernet and IPv4 headers are written in front of
//! the UDP and VXLAN headers and the frame, in a free UMEM frame; the next
//! hop's MAC comes from [`Neighbours`]. A datagram to a remote whose MAC
//! is not known yet is handed back to the caller, which sends it through
//! the raw socket (the kernel resolves the neighbour).

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use switch_port::error_chain::Chain;
use switch_xdp::{
    iface, AttachPolicy, NoSocketAction, SteeringConfig, SteeringError, XdpSteering, XskConfig,
    XskError, XskQueue,
};

use super::header::VXLAN_HEADER;
use super::neighbours::Neighbours;
use super::outer::{self, Addresses, OuterError};
use super::socket::{self, Datagram, Outgoing};
use crate::nic::frame_plan;

/// Bytes written in front of an outgoing frame: Ethernet, IPv4, UDP and
/// VXLAN headers.
pub const HEADROOM: usize = outer::OUTER_HEADERS + VXLAN_HEADER;
/// Bytes of an (untagged) Ethernet header.
const ETHERNET_HEADER: u32 = 14;
/// Receive frames per socket.
const RX_FRAMES: u32 = 2048;

/// Why the AF_XDP underlay could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum XdpUnderlayError {
    /// No interface holds the local address.
    #[error("--underlay-xdp: no interface holds {0}")]
    NoInterface(Ipv4Addr),
    /// An interface query failed.
    #[error("--underlay-xdp on {iface}: {message}")]
    Interface {
        /// The interface.
        iface: String,
        /// What failed.
        message: String,
    },
    /// The underlay MTU exceeds what one AF_XDP frame holds.
    #[error("--underlay-xdp carries an underlay MTU up to {most}, not {mtu}")]
    MtuTooLarge {
        /// The MTU asked for.
        mtu: u16,
        /// The largest supported.
        most: usize,
    },
    /// The XDP program could not be attached.
    #[error("--underlay-xdp: XDP on {iface}")]
    Steering {
        /// The interface.
        iface: String,
        /// Why.
        source: SteeringError,
    },
    /// An AF_XDP socket could not be opened.
    #[error("--underlay-xdp: AF_XDP socket on {iface}")]
    Socket {
        /// The interface.
        iface: String,
        /// Why.
        source: XskError,
    },
}

/// Counters of the underlay.
#[derive(Debug, Default)]
struct Counters {
    rx_not_udp: AtomicU64,
    rx_malformed: AtomicU64,
    rx_not_ours: AtomicU64,
    tx_neighbour_unknown: AtomicU64,
    tx_ring_full: AtomicU64,
    neighbour_reads: AtomicU64,
}

/// The AF_XDP sockets of a tunnel's underlay interface.
pub struct XdpUnderlay {
    iface: String,
    mac: [u8; 6],
    local: Ipv4Addr,
    port: u16,
    queues: Vec<Mutex<XskQueue>>,
    steering: Mutex<Option<XdpSteering>>,
    neighbours: Neighbours,
    started: Instant,
    counters: Counters,
}

/// What [`XdpUnderlay::send`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpSent {
    /// Datagrams put on a TX ring.
    pub sent: usize,
    /// Their inner frames' bytes.
    pub bytes: u64,
    /// Datagrams with no room on the TX ring (dropped).
    pub ring_full: usize,
}

impl XdpUnderlay {
    /// Attaches the steering program to the interface that holds `local`,
    /// steering UDP to `local:port` into AF_XDP sockets (one per receive
    /// queue) sized for `underlay_mtu`.
    pub fn open(local: Ipv4Addr, port: u16, underlay_mtu: u16) -> Result<Self, XdpUnderlayError> {
        let iface = iface::with_ipv4(local)
            .ok()
            .flatten()
            .ok_or(XdpUnderlayError::NoInterface(local))?;
        let iface_err = |e: &dyn std::error::Error| XdpUnderlayError::Interface {
            iface: iface.clone(),
            message: Chain(e).to_string(),
        };
        let mac = iface::mac(&iface).map_err(|e| iface_err(&e))?;
        let queues = iface::rx_queue_count(&iface).map_err(|e| iface_err(&e))?;
        if queues == 0 {
            return Err(XdpUnderlayError::Interface {
                iface,
                message: "no receive queues".into(),
            });
        }
        // Outer frames carry no VLAN tag: the MTU plus the Ethernet header.
        let frame_size = frame_plan::one_frame_size(u32::from(underlay_mtu) + ETHERNET_HEADER)
            .ok_or(XdpUnderlayError::MtuTooLarge {
                mtu: underlay_mtu,
                most: (frame_plan::ONE_FRAME_MAX - ETHERNET_HEADER) as usize,
            })?;
        let mut steering = XdpSteering::attach(
            &iface,
            &SteeringConfig {
                policy: AttachPolicy::DriverOrSkb,
                // Until the sockets are in, and for any queue without
                // one, the kernel keeps getting everything.
                no_socket_action: NoSocketAction::Pass,
                ..SteeringConfig::default()
            },
        )
        .and_then(|mut s| s.steer_udp(local, port).map(|()| s))
        .map_err(|source| XdpUnderlayError::Steering {
            iface: iface.clone(),
            source,
        })?;
        let mut sockets = Vec::new();
        for queue in 0..queues {
            let open = |zero_copy| {
                XskQueue::open(
                    &iface,
                    queue,
                    &XskConfig {
                        frame_size,
                        rx_frames: RX_FRAMES,
                        zero_copy,
                        ..XskConfig::default()
                    },
                )
            };
            let socket = match open(true) {
                Err(XskError::ZeroCopyUnsupported { .. }) => open(false),
                other => other,
            }
            .map_err(|source| XdpUnderlayError::Socket {
                iface: iface.clone(),
                source,
            })?;
            steering
                .register_socket(&socket)
                .map_err(|source| XdpUnderlayError::Steering {
                    iface: iface.clone(),
                    source,
                })?;
            sockets.push(Mutex::new(socket));
        }
        Ok(XdpUnderlay {
            neighbours: Neighbours::new(&iface),
            iface,
            mac,
            local,
            port,
            queues: sockets,
            steering: Mutex::new(Some(steering)),
            started: Instant::now(),
            counters: Counters::default(),
        })
    }

    /// The interface.
    pub fn interface(&self) -> &str {
        &self.iface
    }

    /// The sockets' descriptors (readable: datagrams to receive).
    pub fn fds(&self) -> Vec<RawFd> {
        self.queues.iter().map(|q| q.lock().as_raw_fd()).collect()
    }

    /// Whether a socket has datagrams waiting.
    pub fn readable(&self) -> bool {
        self.queues
            .iter()
            .any(|q| q.lock().wait_readable(Duration::ZERO).unwrap_or(false))
    }

    /// Receives up to `max` frames and hands each datagram for our address
    /// and port to `each` with the bytes readable from its frame (the
    /// datagram stays in the UMEM until [`XdpUnderlay::release`]); other
    /// frames are counted and dropped. `each` tells whether it accepted the
    /// datagram (a VXLAN datagram for one of our VNIs); only then is its
    /// outer source MAC learned as the sender's next hop, so UDP junk sent
    /// to our port can neither fill the neighbour table nor redirect a
    /// remote's traffic. Returns the frames taken.
    pub fn receive(&self, max: usize, mut each: impl FnMut(&Datagram<'_>, u32) -> bool) -> usize {
        let (mut not_udp, mut malformed, mut not_ours) = (0u64, 0u64, 0u64);
        let mut taken = 0;
        for q in &self.queues {
            if taken >= max {
                break;
            }
            let mut q = q.lock();
            taken += q.receive_held(max - taken, |ptr, len, room| {
                // SAFETY: the frame's `len` bytes are ours until
                // `release_held` (XskQueue::receive_held's contract).
                let frame = unsafe { std::slice::from_raw_parts(ptr, len) };
                let o = match outer::parse(frame, self.local, self.port) {
                    Ok(o) => o,
                    Err(OuterError::NotUdp) => return not_udp += 1,
                    Err(OuterError::Malformed) => return malformed += 1,
                    Err(OuterError::NotOurs) => return not_ours += 1,
                };
                let mut header = [0u8; VXLAN_HEADER];
                let head = o.payload_len.min(VXLAN_HEADER);
                header[..head].copy_from_slice(&frame[o.payload_at..o.payload_at + head]);
                let at = o.payload_at + VXLAN_HEADER;
                if at > room {
                    return malformed += 1;
                }
                let d = Datagram {
                    header: &header,
                    // SAFETY: `at` <= `room`: inside (or at the end of) the
                    // bytes readable from `ptr`.
                    frame: unsafe { ptr.add(at) },
                    len: o.payload_len,
                    truncated: false,
                    from: o.src_ip,
                };
                if each(&d, room.saturating_sub(at) as u32) {
                    self.neighbours.learn(o.src_ip, o.src_mac);
                }
            });
        }
        let c = &self.counters;
        c.rx_not_udp.fetch_add(not_udp, Ordering::Relaxed);
        c.rx_malformed.fetch_add(malformed, Ordering::Relaxed);
        c.rx_not_ours.fetch_add(not_ours, Ordering::Relaxed);
        taken
    }

    /// Gives the frames of the last receive back to the kernel.
    pub fn release(&self) {
        for q in &self.queues {
            let mut q = q.lock();
            if q.held() > 0 {
                q.release_held();
            }
        }
    }

    /// Sends the datagrams of `out` (whose headers hold the UDP and VXLAN
    /// headers, 16 bytes) whose next hop is known; those whose is not are
    /// appended to `unknown` for the socket path. `heads` is scratch: the
    /// outer headers built, each with the index in `out` of its datagram.
    ///
    /// # Safety
    /// Every `frame` of `out` must be readable for its `len` bytes.
    pub unsafe fn send(
        &self,
        out: &[Outgoing],
        heads: &mut Vec<([u8; HEADROOM], usize)>,
        unknown: &mut Vec<Outgoing>,
    ) -> XdpSent {
        heads.clear();
        let mut missed = 0u64;
        for (index, o) in out.iter().enumerate() {
            let dst_ip = socket::ipv4_of(&o.dest);
            let Some(dst_mac) = self.next_hop(dst_ip) else {
                unknown.push(*o);
                missed += 1;
                continue;
            };
            let mut h = [0u8; HEADROOM];
            let udp_len = (16 + o.len) as u16;
            let a = Addresses {
                src_mac: self.mac,
                dst_mac,
                src_ip: self.local,
                dst_ip,
            };
            // The Ethernet and IPv4 headers are written in place.
            if let Some(eth_ip) = h.first_chunk_mut::<34>() {
                outer::build(eth_ip, &a, udp_len);
            }
            h[34..].copy_from_slice(&o.header);
            heads.push((h, index));
        }
        self.counters
            .tx_neighbour_unknown
            .fetch_add(missed, Ordering::Relaxed);
        if heads.is_empty() {
            return XdpSent::default();
        }
        let mut queue = self
            .queues
            .iter()
            .find_map(|q| q.try_lock())
            .unwrap_or_else(|| self.queues[0].lock());
        let rejected_before = queue.local_stats().tx_rejected;
        let taken = queue.transmit_parts(heads.iter().map(|(h, index)| {
            let o = &out[*index];
            // SAFETY: readable for `len` bytes (the caller's guarantee).
            [&h[..], unsafe {
                std::slice::from_raw_parts(o.frame, o.len)
            }]
        }));
        let rejected = (queue.local_stats().tx_rejected - rejected_before) as usize;
        drop(queue);
        let sent = taken - rejected.min(taken);
        let ring_full = heads.len() - taken;
        self.counters
            .tx_ring_full
            .fetch_add(ring_full as u64, Ordering::Relaxed);
        XdpSent {
            sent,
            bytes: heads[..taken].iter().map(|(_, i)| out[*i].len as u64).sum(),
            ring_full,
        }
    }

    /// The MAC of `ip`'s next hop, reading the kernel's table on a miss.
    fn next_hop(&self, ip: Ipv4Addr) -> Option<[u8; 6]> {
        if let Some(mac) = self.neighbours.get(ip) {
            return Some(mac);
        }
        let now = self.started.elapsed().as_millis() as u64;
        if self.neighbours.refresh(now) {
            self.counters
                .neighbour_reads
                .fetch_add(1, Ordering::Relaxed);
        }
        self.neighbours.get(ip)
    }

    /// Counters for `vswitch stats`.
    pub fn stats(&self) -> Vec<(String, u64)> {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = vec![
            ("xdp_rx_not_udp".to_owned(), get(&c.rx_not_udp)),
            ("xdp_rx_malformed".to_owned(), get(&c.rx_malformed)),
            ("xdp_rx_not_ours".to_owned(), get(&c.rx_not_ours)),
            (
                "xdp_tx_neighbour_unknown".to_owned(),
                get(&c.tx_neighbour_unknown),
            ),
            ("xdp_tx_ring_full".to_owned(), get(&c.tx_ring_full)),
            ("xdp_neighbour_reads".to_owned(), get(&c.neighbour_reads)),
            ("xdp_neighbours".to_owned(), self.neighbours.len() as u64),
        ];
        if let Some(s) = self.steering.lock().as_ref() {
            if let Ok(t) = s.total_counters() {
                out.push(("xdp_redirected".into(), t.redirected));
                out.push(("xdp_passed".into(), t.passed));
            }
        }
        let (mut rx_dropped, mut fill_empty) = (0, 0);
        for q in &self.queues {
            if let Ok(s) = q.lock().stats() {
                rx_dropped += s.rx_dropped + s.rx_ring_full;
                fill_empty += s.rx_fill_ring_empty;
            }
        }
        out.push(("xsk_rx_dropped".into(), rx_dropped));
        out.push(("xsk_fill_ring_empty".into(), fill_empty));
        out
    }

    /// Detaches the program: the kernel gets all traffic again.
    pub fn shutdown(&self) {
        if let Some(s) = self.steering.lock().take() {
            s.detach();
        }
    }
}
