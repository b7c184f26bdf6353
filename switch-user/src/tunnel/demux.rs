//! Several VNIs on one VTEP address and UDP port: one receiving socket per
//! (address, port) shared by the tunnels bound there, demultiplexed by VNI.
//!
//! Every tunnel on a socket watches it and reads it with `recvmmsg` from
//! its own forwarding thread, into its own buffers. A datagram for the
//! reader's VNI goes to the forwarding batch in place; one for another
//! tunnel's VNI is copied into that tunnel's [`Inbox`] (bounded: when it is
//! full the datagram is dropped and counted there) and that tunnel's thread
//! is woken; one for a VNI no tunnel on the socket has is dropped and
//! counted by the reader. So each tunnel port stays the source of exactly
//! one forwarding thread, and no datagram read by one tunnel for another is
//! lost without being counted. One tunnel reads a socket at a time (the
//! others skip it meanwhile), which keeps each VNI's datagrams in order.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, MutexGuard, RwLock, RwLockReadGuard};
use switch_port::eventfd::EventFd;
use switch_port::names::PortName;

use super::socket;

/// Datagrams an inbox holds before it drops.
pub const INBOX_CAPACITY: usize = 1024;

/// Where a receiving socket is bound: `addr:port`; with `group_on`, `addr`
/// is a multicast group joined on the interface of that local address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SocketKey {
    /// The address bound (the local VTEP address or the group).
    pub addr: Ipv4Addr,
    /// The UDP port.
    pub port: u16,
    /// For a group: the local address whose interface joins it.
    pub group_on: Option<Ipv4Addr>,
}

/// A datagram another tunnel read for this one: its inner frame and the
/// VTEP it came from.
pub struct Parked {
    /// The inner Ethernet frame.
    pub frame: Vec<u8>,
    /// The sending VTEP.
    pub from: Ipv4Addr,
}

struct Queue {
    waiting: VecDeque<Parked>,
    /// Buffers of frames already forwarded, for reuse.
    free: Vec<Vec<u8>>,
}

/// A tunnel's queue of datagrams for its VNI read by other tunnels on its
/// sockets, with the eventfd that wakes its forwarding thread.
pub struct Inbox {
    queue: Mutex<Queue>,
    pending: AtomicUsize,
    wake: EventFd,
    full: AtomicU64,
    capacity: usize,
}

impl Inbox {
    /// An empty inbox of at most `capacity` datagrams.
    pub fn new(capacity: usize) -> io::Result<Inbox> {
        Ok(Inbox {
            queue: Mutex::new(Queue {
                waiting: VecDeque::new(),
                free: Vec::new(),
            }),
            pending: AtomicUsize::new(0),
            wake: EventFd::new()?,
            full: AtomicU64::new(0),
            capacity: capacity.max(1),
        })
    }

    /// Copies `frame` from `from` in; false (and counted) when full. The
    /// owner's thread is woken when the inbox was empty.
    pub fn park(&self, frame: &[u8], from: Ipv4Addr) -> bool {
        let mut q = self.queue.lock();
        if q.waiting.len() >= self.capacity {
            drop(q);
            self.full.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let mut buf = q.free.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(frame);
        let was_empty = q.waiting.is_empty();
        q.waiting.push_back(Parked { frame: buf, from });
        self.pending.store(q.waiting.len(), Ordering::Release);
        drop(q);
        if was_empty {
            self.wake.signal();
        }
        true
    }

    /// Moves up to `max` waiting datagrams to the end of `out`; how many.
    pub fn take(&self, out: &mut Vec<Parked>, max: usize) -> usize {
        if self.pending.load(Ordering::Acquire) == 0 || max == 0 {
            return 0;
        }
        let mut q = self.queue.lock();
        let n = q.waiting.len().min(max);
        out.extend(q.waiting.drain(..n));
        self.pending.store(q.waiting.len(), Ordering::Release);
        n
    }

    /// Gives the buffers of forwarded datagrams back for reuse.
    pub fn recycle(&self, done: &mut Vec<Parked>) {
        if done.is_empty() {
            return;
        }
        let mut q = self.queue.lock();
        let room = self.capacity.saturating_sub(q.free.len());
        q.free.extend(done.drain(..).take(room).map(|p| p.frame));
        done.clear();
    }

    /// Whether datagrams are waiting.
    pub fn is_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire) > 0
    }

    /// The eventfd signalled when datagrams arrive in an empty inbox.
    pub fn wake_fd(&self) -> RawFd {
        self.wake.raw()
    }

    /// Clears the wake-up (after the forwarder saw it).
    pub fn drain_wake(&self) {
        self.wake.drain();
    }

    /// Datagrams dropped because the inbox was full.
    pub fn full_drops(&self) -> u64 {
        self.full.load(Ordering::Relaxed)
    }
}

struct Member {
    port: PortName,
    inbox: Arc<Inbox>,
}

/// One receiving socket and the tunnels (by VNI) that share it.
pub struct SharedSocket {
    fd: OwnedFd,
    key: SocketKey,
    members: RwLock<HashMap<u32, Member>>,
    reader: Mutex<()>,
}

/// The tunnels of a socket by VNI, read-locked for one batch.
pub struct Members<'a>(RwLockReadGuard<'a, HashMap<u32, Member>>);

impl Members<'_> {
    /// The inbox of the tunnel with `vni`, if one is on the socket.
    pub fn inbox(&self, vni: u32) -> Option<&Inbox> {
        self.0.get(&vni).map(|m| &*m.inbox)
    }
}

impl SharedSocket {
    /// The socket's fd.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The right to read the socket, unless another tunnel is reading it.
    /// One reader at a time keeps a VNI's datagrams in order: a tunnel
    /// takes what others parked for it after getting this and before
    /// reading, so what it reads itself is never older than what waits in
    /// its inbox.
    pub fn try_read(&self) -> Option<MutexGuard<'_, ()>> {
        self.reader.try_lock()
    }

    /// Where it is bound.
    pub fn key(&self) -> SocketKey {
        self.key
    }

    /// Adds tunnel `port` for `vni`; the port already holding that VNI on
    /// this socket if there is one.
    pub fn join(&self, vni: u32, port: &PortName, inbox: &Arc<Inbox>) -> Result<(), PortName> {
        let mut members = self.members.write();
        if let Some(m) = members.get(&vni) {
            return Err(m.port.clone());
        }
        members.insert(
            vni,
            Member {
                port: port.clone(),
                inbox: inbox.clone(),
            },
        );
        Ok(())
    }

    /// Removes the tunnel with `vni` if `inbox` is its.
    pub fn leave(&self, vni: u32, inbox: &Arc<Inbox>) {
        let mut members = self.members.write();
        if members
            .get(&vni)
            .is_some_and(|m| Arc::ptr_eq(&m.inbox, inbox))
        {
            members.remove(&vni);
        }
    }

    /// The members, read-locked.
    pub fn members(&self) -> Members<'_> {
        Members(self.members.read())
    }

    /// Number of tunnels on the socket.
    pub fn len(&self) -> usize {
        self.members.read().len()
    }

    /// Whether no tunnel is on the socket.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The open receiving sockets by where they are bound; a socket closes
/// when its last tunnel is gone.
#[derive(Default)]
pub struct SocketTable {
    sockets: Mutex<HashMap<SocketKey, Weak<SharedSocket>>>,
}

impl SocketTable {
    /// An empty table.
    pub fn new() -> SocketTable {
        SocketTable::default()
    }

    /// The socket bound at `key`, opened if there is none.
    pub fn get_or_open(&self, key: SocketKey) -> io::Result<Arc<SharedSocket>> {
        let mut sockets = self.sockets.lock();
        sockets.retain(|_, s| s.strong_count() > 0);
        if let Some(s) = sockets.get(&key).and_then(Weak::upgrade) {
            return Ok(s);
        }
        let fd = socket::bind_udp(key.addr, key.port, key.group_on)?;
        let s = Arc::new(SharedSocket {
            fd,
            key,
            members: RwLock::new(HashMap::new()),
            reader: Mutex::new(()),
        });
        sockets.insert(key, Arc::downgrade(&s));
        Ok(s)
    }

    /// Sockets open.
    pub fn len(&self) -> usize {
        self.sockets
            .lock()
            .values()
            .filter(|s| s.strong_count() > 0)
            .count()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inbox_is_bounded_wakes_when_filled_and_reuses_buffers() {
        let inbox = Inbox::new(2).unwrap();
        let from = Ipv4Addr::new(10, 0, 0, 2);
        assert!(!inbox.is_pending());
        assert!(inbox.park(&[1; 60], from));
        assert_eq!(inbox.wake.drain(), 1, "woken once, when it was empty");
        assert!(inbox.park(&[2; 70], from));
        assert_eq!(inbox.wake.drain(), 0);
        assert!(!inbox.park(&[3; 60], from), "full");
        assert_eq!(inbox.full_drops(), 1);
        let mut out = Vec::new();
        assert_eq!(inbox.take(&mut out, 1), 1);
        assert!(inbox.is_pending());
        assert_eq!(inbox.take(&mut out, 8), 1);
        assert!(!inbox.is_pending());
        assert_eq!(out[0].frame, [1; 60]);
        assert_eq!(out[1].frame, [2; 70]);
        assert_eq!(out[1].from, from);
        inbox.recycle(&mut out);
        assert!(out.is_empty());
        assert_eq!(inbox.queue.lock().free.len(), 2);
        assert!(inbox.park(&[4; 10], from));
        assert_eq!(inbox.queue.lock().free.len(), 1);
    }

    #[test]
    fn tunnels_share_a_socket_one_per_vni_and_it_closes_after_the_last() {
        let table = SocketTable::new();
        let key = SocketKey {
            addr: Ipv4Addr::LOCALHOST,
            port: 0,
            group_on: None,
        };
        let a = table.get_or_open(key).unwrap();
        let b = table.get_or_open(key).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let (ia, ib) = (
            Arc::new(Inbox::new(4).unwrap()),
            Arc::new(Inbox::new(4).unwrap()),
        );
        let (pa, pb): (PortName, PortName) =
            ("vale0:t10".parse().unwrap(), "vale0:t20".parse().unwrap());
        a.join(10, &pa, &ia).unwrap();
        assert_eq!(b.join(10, &pb, &ib), Err(pa.clone()));
        b.join(20, &pb, &ib).unwrap();
        assert!(a.members().inbox(20).is_some());
        assert!(a.members().inbox(30).is_none());
        // Only the holder's inbox leaves.
        a.leave(10, &ib);
        assert_eq!(a.len(), 2);
        a.leave(10, &ia);
        b.leave(20, &ib);
        assert!(a.is_empty());
        assert_eq!(table.len(), 1);
        drop((a, b));
        assert!(table.is_empty());
    }
}
