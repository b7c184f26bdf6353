//! A VXLAN tunnel as a switch port. Frames the switch delivers to it are
//! encapsulated (VXLAN header, UDP, and the kernel's IPv4) and sent to the
//! VTEP their destination MAC was learned behind, or, for broadcast,
//! multicast and unknown unicast, to every listed remote and the group
//! (head-end replication). Datagrams arriving for its VNI are
//! decapsulated into the switch; their inner source MAC is learned against
//! the sending VTEP (the switch learns it against this port). Its
//! receiving sockets may be shared with tunnels of other VNIs on the same
//! address and port ([`super::demux`]).

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use switch_port::names::PortName;
use switch_port::protocol::TunnelSpec;

use super::decap::{Decap, RxTally};
use super::demux::{Inbox, Parked, SharedSocket, SocketKey, SocketTable, INBOX_CAPACITY};
use super::flow_hash;
use super::header::{self, IP_OVERHEAD, VXLAN_HEADER};
use super::socket::{self, Outgoing, RecvBatch};
use super::vteps::VtepTable;
use super::xdp_underlay::{XdpUnderlay, XdpUnderlayError, HEADROOM};
use crate::bridge::forward::MAX_BATCH;
use crate::bridge::port::{FrameRef, PortIo};
use crate::clock::Clock;
use crate::counters::{DropReason, PortCounters};
use crate::epoll::Epoll;

/// Largest inner frame a tunnel receives (a jumbo underlay).
pub const TUNNEL_MAX_FRAME: usize = 9216;
/// Datagrams read per batch.
const RX_BATCH: usize = 64;

/// Counters of a tunnel beyond the port's common ones.
#[derive(Debug, Default)]
struct TunnelCounters {
    decap_wrong_vni: AtomicU64,
    decap_bad_header: AtomicU64,
    decap_short: AtomicU64,
    decap_oversize: AtomicU64,
    encap_flooded: AtomicU64,
    encap_replicas: AtomicU64,
    encap_no_remote: AtomicU64,
    encap_oversize: AtomicU64,
    tx_failed: AtomicU64,
    tx_would_block: AtomicU64,
    /// Datagrams read for another tunnel on a shared socket, passed on.
    rx_passed_on: AtomicU64,
    /// The kernel's drop count of each receiving socket (unicast, group).
    socket_dropped: [AtomicU64; 2],
}

fn add(counter: &AtomicU64, n: u64) {
    if n > 0 {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// How datagrams leave.
enum Sender {
    /// A raw socket: we write the UDP header, with a hashed source port.
    Raw(OwnedFd),
    /// The UDP socket: the source port is the bound one.
    Udp,
}

struct TxScratch {
    out: Vec<Outgoing>,
    /// Outer headers of the datagrams sent through AF_XDP.
    heads: Vec<([u8; HEADROOM], usize)>,
    /// Datagrams AF_XDP could not send (next hop unknown): the socket's.
    fallback: Vec<Outgoing>,
}

/// What a receive lends to the forwarding batch until the next one.
struct RxState {
    /// Datagrams read from the sockets.
    batch: RecvBatch,
    /// Datagrams other tunnels read for this one.
    parked: Vec<Parked>,
    /// The inbox's drop count already added to the port's drops.
    full_reported: u64,
}

// SAFETY: the raw frame pointers in `out` are only used during the
// `deliver` call that wrote them, under the mutex.
unsafe impl Send for TxScratch {}

/// The I/O of a tunnel port.
pub struct TunnelPort {
    spec: TunnelSpec,
    unicast: Arc<SharedSocket>,
    group: Option<Arc<SharedSocket>>,
    inbox: Arc<Inbox>,
    sender: Sender,
    /// The AF_XDP underlay (`--underlay-xdp`).
    xdp: Option<XdpUnderlay>,
    wake: Epoll,
    rx: Mutex<RxState>,
    tx: Mutex<TxScratch>,
    vteps: RwLock<VtepTable>,
    flood: Vec<libc::sockaddr_in>,
    max_inner: usize,
    clock: Clock,
    counters: TunnelCounters,
}

/// Why a tunnel could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The UDP socket could not be bound.
    #[error("cannot bind UDP {addr}:{port}")]
    Bind {
        /// The address.
        addr: Ipv4Addr,
        /// The port.
        port: u16,
        /// Why.
        source: std::io::Error,
    },
    /// The multicast group could not be joined.
    #[error("cannot join multicast group {group} on {local}")]
    Group {
        /// The group.
        group: Ipv4Addr,
        /// The local address.
        local: Ipv4Addr,
        /// Why.
        source: std::io::Error,
    },
    /// Another tunnel has the VNI on the same address and port.
    #[error("VNI {vni} on {addr}:{port} is already tunnel {holder}'s")]
    VniInUse {
        /// The VNI.
        vni: u32,
        /// The address (local or group).
        addr: Ipv4Addr,
        /// The UDP port.
        port: u16,
        /// The tunnel that has it.
        holder: PortName,
    },
    /// The AF_XDP underlay could not be set up.
    #[error(transparent)]
    Xdp(Box<XdpUnderlayError>),
    /// `--underlay-xdp` needs a raw socket for the datagrams whose next
    /// hop is not known yet.
    #[error("--underlay-xdp needs a raw socket (CAP_NET_RAW)")]
    XdpNeedsRaw(#[source] std::io::Error),
    /// Another socket error.
    #[error("tunnel socket set-up")]
    Socket(#[from] std::io::Error),
}

impl TunnelPort {
    /// Opens tunnel `name` with `spec`, on the receiving sockets of
    /// `sockets` (shared with the tunnels of other VNIs on the same
    /// address and port); learned addresses are kept `max_age` seconds,
    /// at most `capacity` of them.
    pub fn open(
        name: &PortName,
        spec: TunnelSpec,
        sockets: &SocketTable,
        clock: Clock,
        capacity: usize,
        max_age: u32,
    ) -> Result<TunnelPort, OpenError> {
        let unicast_key = SocketKey {
            addr: spec.local,
            port: spec.dst_port,
            group_on: None,
        };
        let unicast = sockets
            .get_or_open(unicast_key)
            .map_err(|source| OpenError::Bind {
                addr: spec.local,
                port: spec.dst_port,
                source,
            })?;
        let group = spec
            .group
            .map(|g| {
                let key = SocketKey {
                    addr: g,
                    port: spec.dst_port,
                    group_on: Some(spec.local),
                };
                sockets.get_or_open(key).map_err(|source| OpenError::Group {
                    group: g,
                    local: spec.local,
                    source,
                })
            })
            .transpose()?;
        let inbox = Arc::new(Inbox::new(INBOX_CAPACITY)?);
        // Until the port is built, a failure leaves the sockets joined.
        let mut joined = LeaveOnError {
            sockets: Vec::new(),
            vni: spec.vni,
            inbox: inbox.clone(),
        };
        for s in std::iter::once(&unicast).chain(&group) {
            if let Err(holder) = s.join(spec.vni, name, &inbox) {
                let key = s.key();
                return Err(OpenError::VniInUse {
                    vni: spec.vni,
                    addr: key.addr,
                    port: key.port,
                    holder,
                });
            }
            joined.sockets.push(s.clone());
        }
        let sender = match socket::raw_sender(spec.local) {
            Ok(fd) => Sender::Raw(fd),
            Err(e) if spec.underlay_xdp => return Err(OpenError::XdpNeedsRaw(e)),
            Err(e) => {
                log::warn!(
                    "tunnel on {}: no raw socket ({e}): sending from UDP port {} (no per-flow source ports)",
                    spec.local,
                    spec.dst_port
                );
                socket::udp_sender(unicast.fd(), spec.local)?;
                Sender::Udp
            }
        };
        let wake = Epoll::new()?;
        wake.add(unicast.fd(), 0)?;
        if let Some(g) = &group {
            wake.add(g.fd(), 1)?;
        }
        wake.add(inbox.wake_fd(), 2)?;
        let xdp = if spec.underlay_xdp {
            Some(
                XdpUnderlay::open(spec.local, spec.dst_port, spec.underlay_mtu)
                    .map_err(|e| OpenError::Xdp(Box::new(e)))?,
            )
        } else {
            None
        };
        for (k, fd) in xdp.iter().flat_map(XdpUnderlay::fds).enumerate() {
            wake.add(fd, 3 + k as u64)?;
        }
        // Opened: the port's own drop leaves from now on.
        joined.sockets.clear();
        let flood = spec
            .remotes
            .iter()
            .chain(spec.group.iter())
            .map(|a| socket::sockaddr(*a, spec.dst_port))
            .collect();
        let max_inner = (spec.underlay_mtu as usize).saturating_sub(IP_OVERHEAD);
        Ok(TunnelPort {
            unicast,
            group,
            sender,
            xdp,
            inbox,
            wake,
            rx: Mutex::new(RxState {
                batch: RecvBatch::new(RX_BATCH, TUNNEL_MAX_FRAME),
                parked: Vec::with_capacity(RX_BATCH),
                full_reported: 0,
            }),
            tx: Mutex::new(TxScratch {
                out: Vec::with_capacity(MAX_BATCH),
                heads: Vec::with_capacity(MAX_BATCH),
                fallback: Vec::with_capacity(MAX_BATCH),
            }),
            vteps: RwLock::new(VtepTable::new(capacity, max_age)),
            flood,
            max_inner,
            clock,
            counters: TunnelCounters::default(),
            spec,
        })
    }

    /// The settings.
    pub fn spec(&self) -> &TunnelSpec {
        &self.spec
    }

    /// Addresses learned behind remote VTEPs.
    pub fn learned(&self) -> usize {
        self.vteps.read().len()
    }

    /// The learned addresses: MAC, VTEP and seconds since last seen.
    pub fn vteps(&self) -> Vec<([u8; 6], Ipv4Addr, u32)> {
        self.vteps.read().entries(self.clock.secs())
    }

    /// Whether datagrams carry per-flow UDP source ports (a raw socket).
    pub fn hashed_source_port(&self) -> bool {
        matches!(self.sender, Sender::Raw(_))
    }

    /// The interface of the AF_XDP underlay, if the tunnel has one.
    pub fn xdp_interface(&self) -> Option<&str> {
        self.xdp.as_ref().map(XdpUnderlay::interface)
    }

    /// Largest inner frame sent (the underlay MTU less 36 bytes).
    pub fn max_inner(&self) -> usize {
        self.max_inner
    }

    /// The per-datagram receive step at `now`.
    fn decap(&self, now: u32) -> Decap<'_> {
        Decap {
            vni: self.spec.vni,
            local: self.spec.local,
            vteps: &self.vteps,
            now,
        }
    }

    fn sockets(&self) -> impl Iterator<Item = &Arc<SharedSocket>> + '_ {
        std::iter::once(&self.unicast).chain(self.group.iter())
    }

    /// Leaves the shared sockets: datagrams for the VNI are no longer
    /// passed to this port (and the VNI is free for another tunnel).
    fn leave(&self) {
        for s in self.sockets() {
            s.leave(self.spec.vni, &self.inbox);
        }
    }
}

impl Drop for TunnelPort {
    fn drop(&mut self) {
        self.leave();
    }
}

/// Undoes the joins of a tunnel whose opening failed half-way.
struct LeaveOnError {
    sockets: Vec<Arc<SharedSocket>>,
    vni: u32,
    inbox: Arc<Inbox>,
}

impl Drop for LeaveOnError {
    fn drop(&mut self) {
        for s in &self.sockets {
            s.leave(self.vni, &self.inbox);
        }
    }
}

impl PortIo for TunnelPort {
    fn receive(&self, batch: &mut Vec<FrameRef>, max: usize, counters: &PortCounters) -> usize {
        let mut guard = self.rx.lock();
        let rx = &mut *guard;
        rx.batch.clear();
        self.inbox.recycle(&mut rx.parked);
        let limit = max.min(RX_BATCH);
        let decap = self.decap(self.clock.secs());
        let mut tally = RxTally::default();
        for (k, shared) in self.sockets().enumerate() {
            let reading = shared.try_read();
            // What other tunnels read for this VNI: before reading, so that
            // nothing read below is older than something still parked.
            let first_parked = rx.parked.len();
            let room = limit.saturating_sub(rx.parked.len() + rx.batch.len());
            self.inbox.take(&mut rx.parked, room);
            for p in &rx.parked[first_parked..] {
                decap.parked(p, batch, &mut tally);
            }
            let room = limit.saturating_sub(rx.parked.len() + rx.batch.len());
            if reading.is_none() || room == 0 {
                continue;
            }
            let first = rx.batch.len();
            match rx.batch.receive(shared.fd(), room) {
                Ok((_, Some(dropped))) => {
                    self.counters.socket_dropped[k].store(dropped as u64, Ordering::Relaxed)
                }
                Ok((_, None)) => {}
                Err(e) => log::debug!("tunnel receive: {e}"),
            }
            if rx.batch.len() == first {
                continue;
            }
            let members = shared.members();
            let readable = rx.batch.slot_size() as u32;
            for i in first..rx.batch.len() {
                // SAFETY: a datagram recvmmsg wrote into the batch's slot
                // of `readable` bytes, which stays until the next receive.
                unsafe {
                    decap.datagram(
                        &rx.batch.get(i),
                        readable,
                        |vni| members.inbox(vni),
                        batch,
                        &mut tally,
                    );
                }
            }
        }
        if let Some(xdp) = &self.xdp {
            let room = limit.saturating_sub(rx.parked.len() + rx.batch.len());
            let members = self.unicast.members();
            xdp.receive(room, |d, readable| {
                // SAFETY: the datagram's frame lies in a UMEM frame held
                // until `release`, readable for `readable` bytes, and its
                // length is within VXLAN_HEADER + readable
                // (XdpUnderlay::receive's guarantee).
                unsafe { decap.datagram(d, readable, |vni| members.inbox(vni), batch, &mut tally) }
            });
        }
        let full = self.inbox.full_drops();
        counters.add_drops(DropReason::RingFull, full - rx.full_reported);
        rx.full_reported = full;
        drop(guard);
        let c = &self.counters;
        add(&c.decap_short, tally.short);
        add(&c.decap_bad_header, tally.bad);
        add(&c.decap_wrong_vni, tally.unknown);
        add(&c.decap_oversize, tally.oversize);
        add(&c.rx_passed_on, tally.passed);
        counters.add_rx(tally.taken, tally.bytes);
        counters.add_drops(DropReason::Runt, tally.short);
        tally.taken as usize
    }

    fn release(&self, _counters: &PortCounters) {
        if let Some(xdp) = &self.xdp {
            xdp.release();
        }
    }

    fn deliver(&self, frames: &[FrameRef], which: &[u16], counters: &PortCounters) -> usize {
        let now = self.clock.secs();
        let mut guard = self.tx.lock();
        let scratch = &mut *guard;
        let out = &mut scratch.out;
        out.clear();
        let (mut too_long, mut flooded, mut replicas, mut no_remote) = (0u64, 0u64, 0u64, 0u64);
        let vni_header = header::encode(self.spec.vni);
        let raw = matches!(self.sender, Sender::Raw(_));
        {
            let vteps = self.vteps.read();
            for &i in which {
                let Some(f) = frames.get(i as usize) else {
                    continue;
                };
                let len = f.len as usize;
                if len > self.max_inner {
                    too_long += 1;
                    continue;
                }
                // SAFETY: a batch frame is readable for `len` >= 14 bytes
                // until the batch ends, which outlives this call.
                let frame = unsafe { std::slice::from_raw_parts(f.ptr, len) };
                let mut header = [0u8; 16];
                if raw {
                    let sport = flow_hash::source_port(frame);
                    let udp_len = (8 + VXLAN_HEADER + len) as u16;
                    header[0..2].copy_from_slice(&sport.to_be_bytes());
                    header[2..4].copy_from_slice(&self.spec.dst_port.to_be_bytes());
                    header[4..6].copy_from_slice(&udp_len.to_be_bytes());
                    // Checksum 0: none (RFC 7348 recommends it over IPv4).
                    header[8..16].copy_from_slice(&vni_header);
                } else {
                    header[..8].copy_from_slice(&vni_header);
                }
                let mut dst = [0u8; 6];
                dst.copy_from_slice(&frame[..6]);
                let known = (dst[0] & 1 == 0).then(|| vteps.get(&dst, now)).flatten();
                let mut push = |dest: libc::sockaddr_in| {
                    out.push(Outgoing {
                        header,
                        frame: f.ptr,
                        len,
                        dest,
                    })
                };
                match known {
                    Some(vtep) => push(socket::sockaddr(vtep, self.spec.dst_port)),
                    None if self.flood.is_empty() => no_remote += 1,
                    None => {
                        flooded += 1;
                        replicas += self.flood.len() as u64 - 1;
                        for dest in &self.flood {
                            push(*dest);
                        }
                    }
                }
            }
        }
        let fd = match &self.sender {
            Sender::Raw(fd) => fd.as_raw_fd(),
            Sender::Udp => self.unicast.fd(),
        };
        let mut via_xdp = super::xdp_underlay::XdpSent::default();
        let to_socket = match &self.xdp {
            Some(xdp) => {
                scratch.fallback.clear();
                // SAFETY: every frame is readable for its length until the
                // batch ends, after this call.
                via_xdp = unsafe { xdp.send(out, &mut scratch.heads, &mut scratch.fallback) };
                &scratch.fallback
            }
            None => &scratch.out,
        };
        // SAFETY: every frame is readable for its length until the batch
        // ends, after this call.
        let mut outcome = unsafe { socket::send(fd, to_socket, if raw { 16 } else { 8 }) };
        let sent_bytes: u64 = to_socket[..outcome.sent]
            .iter()
            .map(|o| o.len as u64)
            .sum::<u64>()
            + via_xdp.bytes;
        outcome.sent += via_xdp.sent;
        outcome.would_block += via_xdp.ring_full;
        scratch.out.clear();
        scratch.fallback.clear();
        drop(guard);
        let c = &self.counters;
        add(&c.encap_oversize, too_long);
        add(&c.encap_flooded, flooded);
        add(&c.encap_replicas, replicas);
        add(&c.encap_no_remote, no_remote);
        add(&c.tx_failed, outcome.failed as u64);
        add(&c.tx_would_block, outcome.would_block as u64);
        counters.add_tx(outcome.sent as u64, sent_bytes);
        counters.add_drops(DropReason::TooLong, too_long);
        counters.add_drops(DropReason::RingFull, outcome.would_block as u64);
        counters.add_drops(DropReason::NoDestination, no_remote);
        counters.add_drops(DropReason::Filtered, outcome.failed as u64);
        outcome.sent
    }

    fn wake_fd(&self) -> Option<RawFd> {
        Some(self.wake.raw())
    }

    fn arm(&self) -> bool {
        if self.inbox.is_pending() || self.xdp.as_ref().is_some_and(XdpUnderlay::readable) {
            return true;
        }
        let mut pfds: Vec<libc::pollfd> = self
            .sockets()
            .map(|s| libc::pollfd {
                fd: s.fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: valid pollfds, zero timeout.
        unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, 0) > 0 }
    }

    fn disarm(&self) {}

    fn on_wake(&self) {
        self.inbox.drain_wake();
    }

    fn shutdown(&self) {
        self.leave();
        if let Some(xdp) = &self.xdp {
            xdp.shutdown();
        }
    }

    fn extra_stats(&self) -> Vec<(String, u64)> {
        let c = &self.counters;
        let v = self.vteps.read();
        let s = v.stats();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = vec![
            ("vxlan_vni".into(), self.spec.vni as u64),
            ("decap_wrong_vni".into(), get(&c.decap_wrong_vni)),
            ("decap_bad_header".into(), get(&c.decap_bad_header)),
            ("decap_short".into(), get(&c.decap_short)),
            ("decap_oversize".into(), get(&c.decap_oversize)),
            ("encap_flooded".into(), get(&c.encap_flooded)),
            ("encap_replicas".into(), get(&c.encap_replicas)),
            ("encap_no_remote".into(), get(&c.encap_no_remote)),
            ("encap_oversize".into(), get(&c.encap_oversize)),
            ("tx_failed".into(), get(&c.tx_failed)),
            ("tx_would_block".into(), get(&c.tx_would_block)),
            ("rx_passed_on".into(), get(&c.rx_passed_on)),
            ("rx_inbox_full".into(), self.inbox.full_drops()),
            (
                "rx_socket_dropped".into(),
                c.socket_dropped.iter().map(get).sum(),
            ),
            ("vteps_learned".into(), v.len() as u64),
            ("vtep_learn_new".into(), s.learned),
            ("vtep_learn_moved".into(), s.moved),
            ("vtep_learn_refused".into(), s.refused),
            ("vtep_learn_aged".into(), s.aged),
        ];
        out.extend(self.xdp.iter().flat_map(XdpUnderlay::stats));
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn spec(local: [u8; 4], remote: [u8; 4], vni: u32, port: u16) -> TunnelSpec {
        TunnelSpec {
            vni,
            local: Ipv4Addr::from(local),
            remotes: vec![Ipv4Addr::from(remote)],
            group: None,
            dst_port: port,
            underlay_mtu: 1500,
            vlan: None,
            underlay_xdp: false,
        }
    }

    fn open(name: &str, spec: TunnelSpec, sockets: &SocketTable) -> TunnelPort {
        TunnelPort::open(&name.parse().unwrap(), spec, sockets, Clock::new(), 16, 300).unwrap()
    }

    fn frame(dst: [u8; 6], src: [u8; 6], len: usize) -> Vec<u8> {
        let mut f = vec![0x5a; len];
        f[..6].copy_from_slice(&dst);
        f[6..12].copy_from_slice(&src);
        f
    }

    fn send(port: &TunnelPort, frames: &[Vec<u8>]) -> (usize, PortCounters) {
        let refs: Vec<FrameRef> = frames
            .iter()
            .map(|f| FrameRef {
                ptr: f.as_ptr(),
                len: f.len() as u32,
                readable: f.len() as u32,
            })
            .collect();
        let which: Vec<u16> = (0..refs.len() as u16).collect();
        let counters = PortCounters::default();
        let n = port.deliver(&refs, &which, &counters);
        (n, counters)
    }

    /// Receives until `want` frames arrived (or 5 s passed); their bytes.
    fn receive(port: &TunnelPort, want: usize) -> Vec<Vec<u8>> {
        let counters = PortCounters::default();
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < want && Instant::now() < deadline {
            let mut batch = Vec::new();
            port.receive(&mut batch, 64, &counters);
            for f in &batch {
                // SAFETY: the frames stay valid until the next receive.
                got.push(unsafe { std::slice::from_raw_parts(f.ptr, f.len as usize) }.to_vec());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        got
    }

    fn extra(port: &TunnelPort, key: &str) -> u64 {
        port.extra_stats()
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .unwrap()
    }

    /// Two tunnels on loopback addresses: flooding, learning, unicast back,
    /// a foreign VNI and an oversize frame.
    #[test]
    fn two_tunnels_on_loopback_flood_learn_and_drop_by_reason() {
        let udp = 20000 + (std::process::id() % 20000) as u16;
        let sockets = SocketTable::new();
        let a = open(
            "vale0:a",
            spec([127, 0, 0, 1], [127, 0, 0, 2], 5, udp),
            &sockets,
        );
        let b = open(
            "vale1:b",
            spec([127, 0, 0, 2], [127, 0, 0, 1], 5, udp),
            &sockets,
        );
        const MA: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
        const MB: [u8; 6] = [2, 0, 0, 0, 0, 0xb];
        // Unknown destination: flooded to the remote.
        let (sent, _) = send(&a, &[frame(MB, MA, 60)]);
        assert_eq!(sent, 1);
        assert_eq!(receive(&b, 1), [frame(MB, MA, 60)]);
        assert_eq!(b.learned(), 1);
        // Back to a learned address: unicast to its VTEP.
        let (sent, _) = send(&b, &[frame(MA, MB, 100)]);
        assert_eq!(sent, 1);
        assert_eq!(receive(&a, 1), [frame(MA, MB, 100)]);
        assert_eq!(extra(&b, "encap_flooded"), 0);
        assert_eq!(extra(&a, "encap_flooded"), 1);
        // Too long for a 1500-byte underlay: dropped and counted.
        let (sent, counters) = send(&a, &[frame(MB, MA, 1465), frame(MB, MA, 1464)]);
        assert_eq!(sent, 1);
        assert_eq!(counters.snapshot().drop_too_long, 1);
        assert_eq!(extra(&a, "encap_oversize"), 1);
        assert_eq!(receive(&b, 1).len(), 1);
        // A VNI no tunnel on the address and port has is dropped, counted.
        drop(b);
        let other = open(
            "vale1:o",
            spec([127, 0, 0, 2], [127, 0, 0, 1], 6, udp),
            &sockets,
        );
        send(&other, &[frame(MA, MB, 60)]);
        let deadline = Instant::now() + Duration::from_secs(5);
        while extra(&a, "decap_wrong_vni") == 0 && Instant::now() < deadline {
            let mut batch = Vec::new();
            a.receive(&mut batch, 64, &PortCounters::default());
            assert!(batch.is_empty());
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(extra(&a, "decap_wrong_vni"), 1);
    }

    /// Two VNIs on one address and port share its socket: whichever
    /// tunnel reads a datagram, it reaches the tunnel of its VNI, in order;
    /// a third VNI is dropped and counted; a VNI is one tunnel's.
    #[test]
    fn two_vnis_share_one_address_and_port() {
        let udp = 20000 + ((std::process::id() + 7) % 20000) as u16;
        let sockets = SocketTable::new();
        let t10 = open(
            "vale0:t10",
            spec([127, 0, 0, 3], [127, 0, 0, 4], 10, udp),
            &sockets,
        );
        let t20 = open(
            "vale0:t20",
            spec([127, 0, 0, 3], [127, 0, 0, 4], 20, udp),
            &sockets,
        );
        assert_eq!(sockets.len(), 1, "one socket for both");
        let e = TunnelPort::open(
            &"vale1:again".parse().unwrap(),
            spec([127, 0, 0, 3], [127, 0, 0, 4], 10, udp),
            &sockets,
            Clock::new(),
            16,
            300,
        )
        .err()
        .unwrap();
        assert_eq!(
            e.to_string(),
            format!("VNI 10 on 127.0.0.3:{udp} is already tunnel vale0:t10's")
        );
        // The far side: one tunnel per VNI, on their own sockets.
        let far = SocketTable::new();
        let f10 = open(
            "vale9:f10",
            spec([127, 0, 0, 4], [127, 0, 0, 3], 10, udp),
            &far,
        );
        let f20 = open(
            "vale9:f20",
            spec([127, 0, 0, 4], [127, 0, 0, 3], 20, udp),
            &far,
        );
        let f30 = open(
            "vale9:f30",
            spec([127, 0, 0, 4], [127, 0, 0, 3], 30, udp),
            &far,
        );
        const M1: [u8; 6] = [2, 0, 0, 0, 0, 1];
        let numbered = |n: u8, vni: u8| {
            let mut f = frame([0xff; 6], M1, 60);
            f[14] = vni;
            f[15] = n;
            f
        };
        let tens: Vec<Vec<u8>> = (0..40).map(|n| numbered(n, 10)).collect();
        let twenties: Vec<Vec<u8>> = (0..40).map(|n| numbered(n, 20)).collect();
        assert_eq!(send(&f10, &tens).0, 40);
        assert_eq!(send(&f20, &twenties).0, 40);
        assert_eq!(send(&f30, &[numbered(0, 30)]).0, 1);
        // Only t10 reads: it passes VNI 20's datagrams on to t20.
        assert_eq!(receive(&t10, 40), tens);
        let deadline = Instant::now() + Duration::from_secs(5);
        while extra(&t10, "rx_passed_on") + extra(&t10, "decap_wrong_vni") < 41
            && Instant::now() < deadline
        {
            let mut batch = Vec::new();
            t10.receive(&mut batch, 64, &PortCounters::default());
            assert!(batch.is_empty());
        }
        assert_eq!(extra(&t10, "rx_passed_on"), 40);
        assert_eq!(extra(&t10, "decap_wrong_vni"), 1);
        assert!(t20.arm(), "datagrams wait in t20's inbox");
        assert_eq!(receive(&t20, 40), twenties);
        assert!(!t20.arm());
        assert_eq!(t20.learned(), 1);
        // Deleting a tunnel frees its VNI; the socket stays for the other.
        drop(t10);
        let again = open(
            "vale1:again",
            spec([127, 0, 0, 3], [127, 0, 0, 4], 10, udp),
            &sockets,
        );
        assert_eq!(sockets.len(), 1);
        drop((again, t20));
        assert!(sockets.is_empty());
    }
}
