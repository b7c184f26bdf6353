//! The client library: open a switch port and move frames in batches.
//!
//! The crate's documentation has a complete example (two ports exchanging
//! a batch through a running daemon).
//!
//! Frames are borrows of the client: the buffer from [`PortClient::reserve`]
//! or [`PortClient::peek`] must be done with before the next call on the
//! client, so a frame can neither be used after its slot went back to the
//! switch nor after the client (and its mapping) is gone. Neither compiles:
//!
//! ```compile_fail,E0499
//! fn keep_a_frame(port: &mut switch_port::PortClient) -> u8 {
//!     let frame = port.peek().unwrap();
//!     port.consume();
//!     port.release_rx(); // the slot is the switch's again
//!     frame[0]
//! }
//! ```
//!
//! ```compile_fail,E0505
//! fn outlive_the_client(mut port: switch_port::PortClient) -> u8 {
//!     let frame = port.peek().unwrap();
//!     drop(port); // unmaps the rings
//!     frame[0]
//! }
//! ```
//!
//! [`PortClient::open`] sends `open_port` (control protocol version
//! [`crate::protocol::VERSION`] in the header) and checks what comes back as
//! `docs/port-protocol.md` §5.1 requires: three descriptors, the memfd's
//! shrink and grow seals, its size and the region header.
//!
//! Kicks follow the specification's §6.4 (also summed up in
//! [`crate::layout`]): `publish` stores TX `head`, issues a full barrier and
//! writes `to_switch` only when TX `consumer_needs_kick` is set; `wait` polls
//! for a bounded time, then sets RX `consumer_needs_kick` and/or TX
//! `producer_needs_kick`, issues a full barrier, re-checks, and sleeps on
//! `to_client` ([`PortClient::kick_fd`]), which carries both the "frames
//! arrived" and the "TX slots freed" wake-ups.
//!
//! A VMM whose port serves an e1000 in CSB mode may hand the data path to the
//! daemon ([`PortClient::offload`], `offload_port` with the guest's memory
//! and three eventfds) and take it back ([`PortClient::reclaim`]); the port's
//! rings are not used meanwhile.

use std::io;
use std::os::fd::RawFd;
use std::path::Path;
use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::control::client::{ClientError, Connection};
use crate::eventfd::EventFd;
use crate::layout::Layout;
use crate::mac::MacAddr;
use crate::names::{NameError, PortName};
use crate::protocol::{Request, Response};
use crate::region::{Region, RegionError};
use crate::ring::{RingView, Slot};

/// Sizes asked for when the port is created (ignored when it exists and
/// matches; an explicit size that differs is refused).
#[derive(Clone, Copy, Debug, Default)]
pub struct PortConfig {
    /// Slots per ring (default 1024).
    pub ring_size: Option<u32>,
    /// Bytes per buffer (default 2048; up to 16384 for jumbo frames).
    pub buf_size: Option<u32>,
    /// This client's MAC address: the switch drops frames from it with any
    /// other source address, and no other port may use this one.
    pub mac: Option<MacAddr>,
}

/// Opening a port failed.
#[derive(Debug, Error)]
pub enum OpenError {
    /// The name is invalid.
    #[error(transparent)]
    Name(#[from] NameError),
    /// The daemon could not be reached or refused.
    #[error(transparent)]
    Control(#[from] ClientError),
    /// The region could not be mapped or is invalid.
    #[error("cannot map the port's memory")]
    Region(#[from] RegionError),
    /// The daemon answered something unexpected.
    #[error("unexpected answer from the daemon: {0}")]
    Protocol(String),
}

/// What [`PortClient::wait`] waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interest {
    /// Frames to receive.
    pub rx: bool,
    /// Free TX slots.
    pub tx: bool,
}

impl Interest {
    /// Frames to receive.
    pub const RX: Interest = Interest {
        rx: true,
        tx: false,
    };
    /// Free TX slots.
    pub const TX: Interest = Interest {
        rx: false,
        tx: true,
    };
    /// Either.
    pub const BOTH: Interest = Interest { rx: true, tx: true };
}

/// Client-side counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Kicks sent to the switch.
    pub kicks_sent: u64,
    /// Publishes that needed no kick.
    pub kicks_suppressed: u64,
    /// Times `wait` slept on the eventfd.
    pub sleeps: u64,
}

/// The descriptors an offload hands to the daemon, in the order
/// `offload_port` carries them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffloadFds {
    /// The guest memory's memfd (sealed against shrinking).
    pub memory: RawFd,
    /// The eventfd the guest's TDT write signals (the daemon sleeps on it).
    pub kick: RawFd,
    /// The eventfd the daemon writes when the guest asked for a receive
    /// interrupt.
    pub rx_call: RawFd,
    /// The eventfd the daemon writes when the guest asked for a transmit
    /// interrupt (or left CSB mode).
    pub tx_call: RawFd,
}

impl OffloadFds {
    /// The descriptors in protocol order.
    pub fn in_order(&self) -> [RawFd; 4] {
        [self.memory, self.kick, self.rx_call, self.tx_call]
    }
}

/// An open switch port.
pub struct PortClient {
    conn: Connection,
    name: PortName,
    region: Region,
    layout: Layout,
    to_switch: EventFd,
    to_client: EventFd,
    tx_cur: u32,
    tx_head: u32,
    tx_tail: u32,
    rx_cur: u32,
    rx_head: u32,
    rx_tail: u32,
    stats: ClientStats,
}

impl PortClient {
    /// Connects to the daemon at `socket` and opens `port` (e.g. `vale0:vm1`),
    /// creating it if it does not exist. Each read of the daemon's answer
    /// waits at most [`DEFAULT_TIMEOUT`](crate::control::client::DEFAULT_TIMEOUT).
    pub fn open(socket: &Path, port: &str, config: PortConfig) -> Result<PortClient, OpenError> {
        PortClient::open_with_timeout(
            socket,
            port,
            config,
            Some(crate::control::client::DEFAULT_TIMEOUT),
        )
    }

    /// [`PortClient::open`], with each read of a control answer waiting at
    /// most `timeout` (`None`: forever); see [`Connection::connect_with_timeout`].
    pub fn open_with_timeout(
        socket: &Path,
        port: &str,
        config: PortConfig,
        timeout: Option<Duration>,
    ) -> Result<PortClient, OpenError> {
        let name = PortName::parse(port)?;
        let mut conn = Connection::connect_with_timeout(socket, timeout)?;
        let (response, fds) = conn.call(&Request::OpenPort {
            port: name.clone(),
            ring_size: config.ring_size,
            buf_size: config.buf_size,
            mac: config.mac,
        })?;
        let Response::PortOpened {
            ring_size,
            buf_size,
            ..
        } = response
        else {
            return Err(OpenError::Protocol(format!("{response:?}")));
        };
        let mut fds = fds.into_iter();
        let (Some(memfd), Some(to_switch), Some(to_client)) = (fds.next(), fds.next(), fds.next())
        else {
            return Err(OpenError::Protocol(
                "port opened without its three fds".into(),
            ));
        };
        let region = Region::from_fd(memfd)?;
        let layout = *region.layout();
        if layout.ring_size != ring_size || layout.buf_size != buf_size {
            return Err(OpenError::Protocol(
                "region sizes differ from the answer".into(),
            ));
        }
        let mask = layout.ring_size - 1;
        let tx_head = region.tx_ring().head().load(Ordering::Acquire) & mask;
        let rx_head = region.rx_ring().head().load(Ordering::Acquire) & mask;
        let mut client = PortClient {
            conn,
            name,
            region,
            layout,
            to_switch: EventFd::from_owned(to_switch),
            to_client: EventFd::from_owned(to_client),
            tx_cur: tx_head,
            tx_head,
            tx_tail: tx_head,
            rx_cur: rx_head,
            rx_head,
            rx_tail: rx_head,
            stats: ClientStats::default(),
        };
        client.refresh_tx();
        client.refresh_rx();
        Ok(client)
    }

    /// The port's name.
    pub fn name(&self) -> &PortName {
        &self.name
    }

    /// The port's geometry.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Largest frame a slot holds.
    pub fn max_frame(&self) -> usize {
        self.layout.buf_size as usize
    }

    /// Client-side counters.
    pub fn stats(&self) -> ClientStats {
        self.stats
    }

    /// The control connection (kept open: the port lives while it does).
    pub fn connection(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// Hands the e1000 data path behind this port to the daemon
    /// (`offload_port` on the connection that opened it): `memory_size`
    /// bytes of guest memory from guest-physical 0 in `fds.memory`, the
    /// state in `handover`. On success the daemon walks the guest's rings;
    /// this client's rings are idle until [`PortClient::reclaim`]. A
    /// refusal (an older daemon, a bad hand-over) is
    /// [`ClientError::Refused`] and changes nothing.
    pub fn offload(
        &mut self,
        memory_size: u64,
        handover: &e1000_model::offload::Handover,
        fds: OffloadFds,
    ) -> Result<(), ClientError> {
        let request = Request::OffloadPort {
            port: self.name.clone(),
            memory_size,
            handover: handover.clone(),
        };
        match self.conn.call_with_fds(&request, &fds.in_order())? {
            (Response::Done, _) => Ok(()),
            (other, _) => Err(ClientError::BadResponse(format!(
                "{other:?} to offload_port"
            ))),
        }
    }

    /// Takes the offloaded data path back (`reclaim_port`): the daemon
    /// stops touching the guest's memory and returns the data path's state.
    pub fn reclaim(&mut self) -> Result<e1000_model::offload::HandBack, ClientError> {
        let request = Request::ReclaimPort {
            port: self.name.clone(),
        };
        match self.conn.call(&request)? {
            (Response::Reclaimed { port, hand_back }, _) if port == self.name => Ok(hand_back),
            (other, _) => Err(ClientError::BadResponse(format!(
                "{other:?} to reclaim_port"
            ))),
        }
    }

    /// The raw TX ring, for tools and robustness tests: writing to it
    /// bypasses this library's bookkeeping. The view borrows the client.
    pub fn raw_tx_ring(&self) -> RingView<'_> {
        self.tx()
    }

    /// The raw RX ring, for tools and robustness tests.
    pub fn raw_rx_ring(&self) -> RingView<'_> {
        self.rx()
    }

    #[inline]
    fn tx(&self) -> RingView<'_> {
        self.region.tx_ring()
    }

    #[inline]
    fn rx(&self) -> RingView<'_> {
        self.region.rx_ring()
    }

    /// The eventfd the switch writes to wake this client (for an external
    /// epoll; use [`PortClient::arm`] before sleeping on it).
    pub fn kick_fd(&self) -> RawFd {
        self.to_client.raw()
    }

    #[inline]
    fn refresh_tx(&mut self) -> u32 {
        let tx = self.region.tx_ring();
        self.tx_tail = tx.tail().load(Ordering::Acquire) & (tx.size() - 1);
        tx.distance(self.tx_cur, self.tx_tail)
    }

    #[inline]
    fn refresh_rx(&mut self) -> u32 {
        let rx = self.region.rx_ring();
        self.rx_tail = rx.tail().load(Ordering::Acquire) & (rx.size() - 1);
        rx.distance(self.rx_cur, self.rx_tail)
    }

    /// Free TX slots now.
    pub fn tx_free(&mut self) -> u32 {
        self.refresh_tx()
    }

    /// Frames waiting in the RX ring now.
    pub fn rx_ready(&mut self) -> u32 {
        self.refresh_rx()
    }

    /// The buffer index held by slot `index` of `ring`, or the slot's home
    /// buffer when the slot holds an index out of range.
    fn buffer_of(&self, ring: RingView<'_>, index: u32, home: u32) -> (u32, *mut u8) {
        let slot = ring.read_slot(index);
        let buf = if slot.buf < self.layout.num_bufs {
            slot.buf
        } else {
            home
        };
        let ptr = self
            .region
            .buffer(buf)
            .or_else(|| self.region.buffer(home))
            .expect("home buffer index is in range by construction");
        (buf, ptr.as_ptr())
    }

    /// The buffer of the next free TX slot, or `None` when the ring is full.
    /// Fill it and call [`PortClient::commit`]; nothing is sent before
    /// [`PortClient::publish`].
    #[inline]
    pub fn reserve(&mut self) -> Option<&mut [u8]> {
        if self.tx_cur == self.tx_tail && self.refresh_tx() == 0 {
            return None;
        }
        let home = self.tx_cur & (self.layout.ring_size - 1);
        let (_, ptr) = self.buffer_of(self.tx(), self.tx_cur, home);
        // SAFETY: the buffer lies inside our mapping and belongs to this side
        // while its slot is in the client's range; `&mut self` keeps it unique.
        Some(unsafe { std::slice::from_raw_parts_mut(ptr, self.layout.buf_size as usize) })
    }

    /// Commits the reserved slot with a frame of `len` bytes (clamped to the
    /// buffer size).
    #[inline]
    pub fn commit(&mut self, len: usize) {
        let tx = self.region.tx_ring();
        let home = self.tx_cur & (self.layout.ring_size - 1);
        let (buf, _) = self.buffer_of(tx, self.tx_cur, home);
        let len = len.min(self.layout.buf_size as usize) as u16;
        tx.write_slot(self.tx_cur, Slot { buf, len, flags: 0 });
        self.tx_cur = tx.advance(self.tx_cur, 1);
    }

    /// Publishes every committed frame and kicks the switch if it sleeps.
    /// Returns the number of frames published.
    #[inline]
    pub fn publish(&mut self) -> usize {
        let tx = self.region.tx_ring();
        let n = tx.distance(self.tx_head, self.tx_cur);
        if n == 0 {
            return 0;
        }
        self.tx_head = self.tx_cur;
        tx.cur().store(self.tx_cur, Ordering::Relaxed);
        tx.head().store(self.tx_cur, Ordering::Release);
        fence(Ordering::SeqCst);
        if tx.consumer_needs_kick().load(Ordering::Relaxed) != 0 {
            self.to_switch.signal();
            self.stats.kicks_sent += 1;
        } else {
            self.stats.kicks_suppressed += 1;
        }
        n as usize
    }

    /// Copies `frames` into free slots and publishes them; returns how many
    /// fit (the rest did not: the ring was full).
    pub fn send<'a>(&mut self, frames: impl IntoIterator<Item = &'a [u8]>) -> usize {
        let mut n = 0;
        for frame in frames {
            let Some(buf) = self.reserve() else { break };
            let len = frame.len().min(buf.len());
            buf[..len].copy_from_slice(&frame[..len]);
            self.commit(len);
            n += 1;
        }
        self.publish();
        n
    }

    /// The next received frame, or `None` when the RX ring is empty. Call
    /// [`PortClient::consume`] when done with it.
    #[inline]
    pub fn peek(&mut self) -> Option<&mut [u8]> {
        if self.rx_cur == self.rx_tail && self.refresh_rx() == 0 {
            return None;
        }
        let rx = self.rx();
        let slot = rx.read_slot(self.rx_cur);
        let len = (slot.len as usize).min(self.layout.buf_size as usize);
        let home = self.layout.ring_size + (self.rx_cur & (self.layout.ring_size - 1));
        let (_, ptr) = self.buffer_of(rx, self.rx_cur, home);
        // SAFETY: as in reserve; `len` is clamped to the buffer size.
        Some(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
    }

    /// Moves past the frame returned by `peek` (its slot is returned to the
    /// switch at the next [`PortClient::release_rx`]).
    #[inline]
    pub fn consume(&mut self) {
        if self.rx_cur != self.rx_tail {
            self.rx_cur = self.rx().advance(self.rx_cur, 1);
        }
    }

    /// Returns every consumed RX slot to the switch.
    #[inline]
    pub fn release_rx(&mut self) {
        if self.rx_head != self.rx_cur {
            self.rx_head = self.rx_cur;
            let rx = self.rx();
            rx.cur().store(self.rx_cur, Ordering::Relaxed);
            rx.head().store(self.rx_cur, Ordering::Release);
        }
    }

    /// Calls `f` on up to `max` received frames, then returns their slots at
    /// once. Returns the number of frames.
    pub fn recv(&mut self, max: usize, mut f: impl FnMut(&mut [u8])) -> usize {
        let mut n = 0;
        while n < max {
            let Some(frame) = self.peek() else { break };
            f(frame);
            self.consume();
            n += 1;
        }
        self.release_rx();
        n
    }

    fn ready(&mut self, interest: Interest) -> bool {
        (interest.rx && self.refresh_rx() > 0) || (interest.tx && self.refresh_tx() > 0)
    }

    /// Sets the need-kick flags for `interest` and re-checks; returns true
    /// when already ready (then do not sleep). For external event loops that
    /// poll [`PortClient::kick_fd`].
    pub fn arm(&mut self, interest: Interest) -> bool {
        if interest.rx {
            self.rx().consumer_needs_kick().store(1, Ordering::Relaxed);
        }
        if interest.tx {
            self.tx().producer_needs_kick().store(1, Ordering::Relaxed);
        }
        fence(Ordering::SeqCst);
        self.ready(interest)
    }

    /// Clears the need-kick flags (this side is polling again) and drains the eventfd.
    pub fn disarm(&mut self) {
        self.rx().consumer_needs_kick().store(0, Ordering::Relaxed);
        self.tx().producer_needs_kick().store(0, Ordering::Relaxed);
        self.to_client.drain();
    }

    /// Waits until `interest` is ready: polls for up to `spin`, then sleeps on
    /// the eventfd until kicked or `timeout` (None: forever) passes. Returns
    /// whether it is ready.
    pub fn wait(
        &mut self,
        interest: Interest,
        spin: Duration,
        timeout: Option<Duration>,
    ) -> io::Result<bool> {
        let start = Instant::now();
        loop {
            if self.ready(interest) {
                return Ok(true);
            }
            if start.elapsed() >= spin {
                break;
            }
            std::thread::yield_now();
        }
        let deadline = timeout.map(|t| start + t);
        loop {
            if self.arm(interest) {
                self.disarm();
                return Ok(true);
            }
            let left_ms = match deadline {
                None => -1,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        self.disarm();
                        return Ok(false);
                    }
                    left.as_millis().clamp(1, i32::MAX as u128) as i32
                }
            };
            self.stats.sleeps += 1;
            self.to_client.wait(left_ms)?;
            self.disarm();
            if self.ready(interest) {
                return Ok(true);
            }
        }
    }
}
