//! The daemon's side of a shared-memory client port: it consumes the client's
//! TX ring and produces into its RX ring, validating every index, length and
//! buffer number the client wrote before using it.
//!
//! A port without a client ([`ShmPort::set_client`]) reads nothing from its
//! TX ring and drops (and counts) what is sent to it, so nothing queues for
//! whoever opens it next. The registry gives a persistent port whose client
//! left a new `ShmPort` (new memory, new eventfds); the old one is revoked
//! first, so the departed client's mapping sees nothing after that.

use std::os::fd::RawFd;
use std::sync::atomic::{fence, AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use switch_port::eventfd::EventFd;
use switch_port::layout::{Layout, CACHE_LINE, SLOT_SIZE};
use switch_port::region::Region;
use switch_port::ring::{RingView, Slot};

use super::frame_copy::copy_frame;
use super::port::{FrameRef, PortIo, MIN_FRAME};
use super::prefetch;
use crate::counters::{DropReason, PortCounters};
use crate::kick_watchdog::{signal_client, KickError};

/// Most frames of a delivery whose destination buffers are prefetched.
const PREPARE_MAX: usize = 16;

#[derive(Default)]
struct SourceState {
    /// Next TX slot the switch reads.
    next: u32,
    /// Slots taken by the last `receive`, returned by `release`.
    pending: u32,
}

#[derive(Default)]
struct SinkState {
    /// Next RX slot the switch fills (the published `tail`).
    tail: u32,
}

/// The daemon's view of a client port.
pub struct ShmPort {
    region: Arc<Region>,
    layout: Layout,
    to_switch: EventFd,
    to_client: EventFd,
    source: Mutex<SourceState>,
    sink: Mutex<SinkState>,
    /// A client has the port open: changed only under both locks.
    client: AtomicBool,
    /// The RX tail as last published, read without the lock by
    /// [`PortIo::prepare_early`] to find the slots the next frames take.
    tail_hint: AtomicU32,
    /// The client made a kick block (see [`crate::kick_watchdog`]): it is
    /// not kicked again.
    kicks_stalled: AtomicBool,
}

impl ShmPort {
    /// Wraps a freshly created region and the two kick eventfds, for a
    /// client that is opening it.
    pub fn new(region: Arc<Region>, to_switch: EventFd, to_client: EventFd) -> ShmPort {
        let layout = *region.layout();
        ShmPort {
            region,
            layout,
            to_switch,
            to_client,
            source: Mutex::new(SourceState::default()),
            sink: Mutex::new(SinkState::default()),
            client: AtomicBool::new(true),
            tail_hint: AtomicU32::new(0),
            kicks_stalled: AtomicBool::new(false),
        }
    }

    /// Records whether a client has the port. Without one, nothing is read
    /// from the TX ring and frames sent to the port are dropped (counted as
    /// `drop_no_client`). Once this returns `false`, no forwarding thread
    /// reads from or writes into the region's rings any more: both sides'
    /// locks are taken, so a batch in progress has finished.
    pub fn set_client(&self, present: bool) {
        let _source = self.source.lock();
        let _sink = self.sink.lock();
        self.client.store(present, Ordering::Release);
    }

    /// Whether a client has the port.
    pub fn has_client(&self) -> bool {
        self.client.load(Ordering::Acquire)
    }

    /// The region, to pass its memfd to a client.
    pub fn region(&self) -> &Arc<Region> {
        &self.region
    }

    /// The eventfd the client writes to wake the switch.
    pub fn to_switch(&self) -> &EventFd {
        &self.to_switch
    }

    /// The eventfd the switch writes to wake the client.
    pub fn to_client(&self) -> &EventFd {
        &self.to_client
    }

    /// Frames the client published that the switch has not read yet (0 when
    /// the client's head is out of range).
    pub fn tx_backlog(&self) -> u32 {
        let tx = self.region.tx_ring();
        let head = tx.head().load(Ordering::Acquire);
        if head >= tx.size() {
            return 0;
        }
        tx.distance(self.source.lock().next, head)
    }

    /// Starts loading what a delivery reads and writes besides the slots and
    /// buffers: the sink lock and the RX ring's indices.
    #[inline]
    fn prefetch_header(&self) {
        let rx = self.region.rx_ring();
        prefetch::write((&raw const self.sink).cast());
        prefetch::read(rx.head().as_ptr().cast_const().cast());
        prefetch::write(rx.tail().as_ptr().cast_const().cast());
        prefetch::read(rx.consumer_needs_kick().as_ptr().cast_const().cast());
    }

    /// Reads the client's `head` of `ring`; `None` (and counted) if out of range.
    #[inline]
    fn client_head(&self, ring: RingView<'_>, counters: &PortCounters) -> Option<u32> {
        let head = ring.head().load(Ordering::Acquire);
        if head < ring.size() {
            Some(head)
        } else {
            counters.add_bad_index();
            None
        }
    }

    /// Copies the frames `frames[i]` for `i` in `which` into the RX ring and
    /// publishes them, leaving the decision to kick to the caller; returns
    /// the frames delivered and whether any were published.
    fn publish(
        &self,
        frames: &[FrameRef],
        which: &[u16],
        counters: &PortCounters,
    ) -> (usize, bool) {
        let region = &*self.region;
        let rx = region.rx_ring();
        let mut st = self.sink.lock();
        if !self.client.load(Ordering::Relaxed) {
            drop(st);
            counters.add_drops(DropReason::NoClient, which.len() as u64);
            return (0, false);
        }
        let head = self.client_head(rx, counters);
        // The switch may fill up to the slot before the client's head.
        let mut free = head.map_or(0, |h| rx.distance(st.tail, h.wrapping_sub(1)));
        let buf_size = self.layout.buf_size;
        let (mut delivered, mut bytes, mut too_long, mut full) = (0usize, 0u64, 0u64, 0u64);
        for &i in which {
            let Some(frame) = frames.get(i as usize) else {
                continue;
            };
            if frame.len > buf_size {
                too_long += 1;
                continue;
            }
            if free == 0 {
                full += 1;
                continue;
            }
            let slot = rx.read_slot(st.tail);
            let (buf, buffer) = match region.buffer(slot.buf) {
                Some(b) => (slot.buf, b),
                None => {
                    // The client put a bad buffer index in its slot: use the
                    // slot's own buffer instead and count the client's error.
                    counters.add_bad_index();
                    let home = self.layout.ring_size + (st.tail & (rx.size() - 1));
                    match region.buffer(home) {
                        Some(b) => (home, b),
                        None => continue,
                    }
                }
            };
            // SAFETY: the source is readable for `len` bytes (a frame of a
            // live source port, see FrameRef); the destination buffer holds
            // `buf_size >= len` bytes inside this port's region; the two are
            // in different ports' memory, so they do not overlap.
            unsafe {
                copy_frame(
                    buffer.as_ptr(),
                    frame.ptr,
                    frame.len as usize,
                    buf_size as usize,
                )
            };
            rx.write_slot(
                st.tail,
                Slot {
                    buf,
                    len: frame.len as u16,
                    flags: 0,
                },
            );
            st.tail = rx.advance(st.tail, 1);
            free -= 1;
            delivered += 1;
            bytes += frame.len as u64;
        }
        if delivered > 0 {
            rx.tail().store(st.tail, Ordering::Release);
            self.tail_hint.store(st.tail, Ordering::Relaxed);
        }
        // Every transmit count of this port is made here, under the sink lock.
        counters.add_tx_serialized(delivered as u64, bytes);
        drop(st);
        counters.add_drops(DropReason::TooLong, too_long);
        counters.add_drops(DropReason::RingFull, full);
        (delivered, delivered > 0)
    }

    #[inline]
    fn kick_client_if(&self, flag_set: bool, counters: &PortCounters) {
        let send = flag_set && !self.kicks_stalled.load(Ordering::Relaxed);
        if send {
            if let Err(e) = signal_client(&self.to_client) {
                self.kick_failed(e, counters);
            }
        }
        counters.add_kick(send);
    }

    /// A kick failed: a client that made it block gets no kick again (it
    /// must poll), so that it cannot hold a forwarding thread twice.
    #[cold]
    fn kick_failed(&self, error: KickError, counters: &PortCounters) {
        if matches!(error, KickError::Stalled) {
            if !self.kicks_stalled.swap(true, Ordering::Relaxed) {
                log::warn!("a client made its port's kick block: it gets no kick again ({error})");
            }
            counters.add_kick_stalled();
        }
    }
}

impl PortIo for ShmPort {
    fn receive(&self, batch: &mut Vec<FrameRef>, max: usize, counters: &PortCounters) -> usize {
        let region = &*self.region;
        let tx = region.tx_ring();
        let mut st = self.source.lock();
        if !self.client.load(Ordering::Relaxed) {
            return 0;
        }
        let Some(head) = self.client_head(tx, counters) else {
            return 0;
        };
        let n = tx.distance(st.next, head).min(max as u32);
        let buf_size = self.layout.buf_size;
        let (mut taken, mut bytes, mut runts, mut bad) = (0usize, 0u64, 0u64, 0u64);
        let mut index = st.next;
        for _ in 0..n {
            let slot = tx.read_slot(index);
            index = tx.advance(index, 1);
            let len = slot.len as u32;
            let Some(buffer) = region.buffer(slot.buf).filter(|_| len <= buf_size) else {
                bad += 1;
                continue;
            };
            if len < MIN_FRAME {
                runts += 1;
                continue;
            }
            batch.push(FrameRef {
                ptr: buffer.as_ptr(),
                len,
                readable: buf_size,
            });
            taken += 1;
            bytes += len as u64;
        }
        st.pending = n;
        counters.add_rx(taken as u64, bytes);
        counters.add_drops(DropReason::Runt, runts);
        counters.add_drops(DropReason::BadSlot, bad);
        taken
    }

    fn release(&self, counters: &PortCounters) {
        let tx = self.region.tx_ring();
        let mut st = self.source.lock();
        if st.pending == 0 {
            return;
        }
        st.next = tx.advance(st.next, st.pending);
        st.pending = 0;
        tx.tail()
            .store(tx.advance(st.next, tx.size() - 1), Ordering::Release);
        fence(Ordering::SeqCst);
        let waiting = tx.producer_needs_kick().load(Ordering::Relaxed) != 0;
        self.kick_client_if(waiting, counters);
    }

    fn deliver(&self, frames: &[FrameRef], which: &[u16], counters: &PortCounters) -> usize {
        let (delivered, published) = self.publish(frames, which, counters);
        if published {
            fence(Ordering::SeqCst);
            self.kick_if_waiting(counters);
        }
        delivered
    }

    fn prepare(&self, count: usize) {
        // The published tail is where the next frames go (another thread
        // delivering meanwhile only makes the hint wrong).
        // The ring's indices and the first slots were asked for by
        // `prepare_early`, a few destinations ago: these loads find them.
        let rx = self.region.rx_ring();
        let mut index = rx.tail().load(Ordering::Relaxed);
        if index >= rx.size() {
            return;
        }
        for _ in 0..count.min(PREPARE_MAX) {
            if let Some(buffer) = self.region.buffer(rx.read_slot(index).buf) {
                prefetch::write(buffer.as_ptr());
            }
            index = rx.advance(index, 1);
        }
    }

    fn prepare_early(&self, count: usize) {
        self.prefetch_header();
        // The slots the frames will take, from the tail last published
        // (a hint: a wrong one costs a wasted prefetch).
        let rx = self.region.rx_ring();
        let tail = self.tail_hint.load(Ordering::Relaxed);
        let per_line = (CACHE_LINE / SLOT_SIZE) as u32;
        let slots = count.min(PREPARE_MAX) as u32;
        let mut i = 0;
        while i < slots {
            prefetch::read(rx.slot_address(tail.wrapping_add(i)));
            i += per_line - (tail.wrapping_add(i) % per_line);
        }
    }

    fn deliver_unkicked(
        &self,
        frames: &[FrameRef],
        which: &[u16],
        counters: &PortCounters,
    ) -> bool {
        self.publish(frames, which, counters).1
    }

    fn kick_if_waiting(&self, counters: &PortCounters) {
        let rx = self.region.rx_ring();
        let waiting = rx.consumer_needs_kick().load(Ordering::Relaxed) != 0;
        self.kick_client_if(waiting, counters);
    }

    fn wake_fd(&self) -> Option<RawFd> {
        Some(self.to_switch.raw())
    }

    fn arm(&self) -> bool {
        let tx = self.region.tx_ring();
        tx.consumer_needs_kick().store(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let head = tx.head().load(Ordering::Acquire);
        let st = self.source.lock();
        self.client.load(Ordering::Relaxed) && head < tx.size() && head != st.next
    }

    fn disarm(&self) {
        self.region
            .tx_ring()
            .consumer_needs_kick()
            .store(0, Ordering::Relaxed);
    }

    fn on_wake(&self) {
        self.to_switch.drain_shared();
    }

    fn shutdown(&self) {
        self.set_client(false);
    }
}
