//! The I/O of an offloaded VM port: the forwarding threads walk the guest's
//! e1000 rings themselves, with the model's own ring code
//! ([`e1000_model::offload::OffloadedRings`]) over the guest's memory.
//!
//! - [`PortIo::receive`] is one transmit round of the guest's TX ring into
//!   staging slots owned by the port (the batch's [`FrameRef`]s point there
//!   until the next `receive`); [`PortIo::deliver`] is receive rounds that
//!   copy the batch's frames straight into the guest's RX buffers (one copy
//!   from the source port's memory to the guest's), dropping what does not
//!   fit as a full ring.
//! - Interrupt causes the guest asked for are passed to the VMM by writing
//!   its call eventfds; the guest's kick (its TDT write) is the wake fd.
//! - The ring state is one lock (transmit and receive share
//!   `OffloadedRings`); the staging slots are the source side's own.
//! - [`OffloadedPort::revoke`] ends the port's access to guest memory: once
//!   it returns, no thread reads or writes it again, and
//!   [`OffloadedPort::hand_back`] is final.

use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use e1000_model::offload::{HandBack, Handover, HandoverError, OffloadedRings};
use e1000_model::NetBackend;
use parking_lot::Mutex;
use switch_port::eventfd::EventFd;
use switch_port::layout::{buf_stride_for, CACHE_LINE};

use super::guest_memory::{GuestMemory, GuestMemoryError};
use super::handover_fds::{HandoverFds, HandoverFdsError};
use crate::bridge::port::{FrameRef, PortIo, MIN_FRAME};
use crate::counters::{DropReason, PortCounters};
use crate::kick_watchdog::{signal_client, KickError};

/// Staging slots: the most frames one `receive` takes from the guest.
pub const STAGING_SLOTS: usize = 512;
/// Receive rounds one `deliver` runs at most (each is a bounded walk).
const DELIVER_ROUNDS: usize = 4;

/// The ring state and whether the port may still touch guest memory.
struct Rings {
    rings: OffloadedRings,
    revoked: bool,
}

/// The staging slots frames are gathered into from the guest's TX buffers.
struct Staging {
    bytes: Box<[u8]>,
    lens: Vec<u32>,
}

/// Counts of the offload itself (beside the model's error counters).
#[derive(Default)]
struct OffloadCounters {
    tx_calls: AtomicU64,
    rx_calls: AtomicU64,
    kicks: AtomicU64,
    guest_left_csb: AtomicU64,
    model_drops: AtomicU64,
    calls_stalled: AtomicU64,
}

/// The daemon's side of a VM port whose data path was handed over.
pub struct OffloadedPort {
    memory: GuestMemory,
    kick: EventFd,
    rx_call: EventFd,
    tx_call: EventFd,
    slot_size: usize,
    /// Bytes between staging slots: an odd number of cache lines, as port
    /// buffers are laid out (`switch_port::layout::buf_stride_for`).
    slot_stride: usize,
    rings: Mutex<Rings>,
    staging: Mutex<Staging>,
    /// The guest left CSB mode and the VMM was called once for it.
    left_signalled: AtomicBool,
    /// The VMM made a call block: it is not called again.
    calls_stalled: AtomicBool,
    counters: OffloadCounters,
}

/// A transmit backend over the staging slots.
struct StagingBackend<'a> {
    staging: &'a mut Staging,
    slot_size: usize,
    slot_stride: usize,
    limit: usize,
}

impl NetBackend for StagingBackend<'_> {
    fn tx_reserve(&mut self) -> Option<&mut [u8]> {
        let i = self.staging.lens.len();
        if i >= self.limit {
            return None;
        }
        let start = i * self.slot_stride;
        self.staging.bytes.get_mut(start..start + self.slot_size)
    }

    fn tx_commit(&mut self, len: usize) {
        if self.staging.lens.len() < self.limit {
            self.staging.lens.push(len.min(self.slot_size) as u32);
        }
    }

    fn tx_flush(&mut self) {}

    fn rx_peek(&mut self) -> Option<&[u8]> {
        None
    }

    fn rx_consume(&mut self) {}

    fn rx_flush(&mut self) {}
}

/// A receive backend over the frames of a delivery.
struct BatchBackend<'a> {
    frames: &'a [FrameRef],
    which: &'a [u16],
    next: usize,
    bytes: u64,
}

impl BatchBackend<'_> {
    /// The next frame named by `which` that exists (skipping bad indices).
    fn current(&mut self) -> Option<FrameRef> {
        while let Some(&i) = self.which.get(self.next) {
            if let Some(frame) = self.frames.get(i as usize) {
                return Some(*frame);
            }
            self.next += 1;
        }
        None
    }
}

impl NetBackend for BatchBackend<'_> {
    fn tx_reserve(&mut self) -> Option<&mut [u8]> {
        None
    }

    fn tx_commit(&mut self, _len: usize) {}

    fn tx_flush(&mut self) {}

    fn rx_peek(&mut self) -> Option<&[u8]> {
        let frame = self.current()?;
        // SAFETY: a frame of a live source port, readable for `len` bytes
        // while the forwarding batch holds it (see FrameRef).
        Some(unsafe { std::slice::from_raw_parts(frame.ptr, frame.len as usize) })
    }

    fn rx_consume(&mut self) {
        if let Some(frame) = self.current() {
            self.bytes += frame.len as u64;
            self.next += 1;
        }
    }

    fn rx_flush(&mut self) {}
}

/// Why an offload could not start.
#[derive(Debug, thiserror::Error)]
pub enum OffloadError {
    /// The descriptors are not a memfd and three eventfds.
    #[error("bad hand-over descriptors")]
    Fds(#[from] HandoverFdsError),
    /// The guest memory cannot be mapped safely.
    #[error("bad guest memory")]
    Memory(#[from] GuestMemoryError),
    /// The hand-over names a CSB or registers the daemon refuses.
    #[error("bad hand-over")]
    Handover(#[from] HandoverError),
}

impl OffloadedPort {
    /// Takes over `handover` with the descriptors of an offload request
    /// (checked: [`HandoverFds::split`]) and the first `memory_size` bytes
    /// of its guest memory ([`GuestMemory::map`]); see
    /// [`OffloadedPort::new`] for `slot_size`.
    pub fn open(
        fds: Vec<OwnedFd>,
        memory_size: u64,
        handover: &Handover,
        slot_size: usize,
    ) -> Result<OffloadedPort, OffloadError> {
        let fds = HandoverFds::split(fds)?;
        let memory = GuestMemory::map(fds.memory.as_fd(), memory_size)?;
        OffloadedPort::new(memory, fds, handover, slot_size)
    }

    /// Takes over the data path `handover` of the guest whose memory is
    /// `memory`, with the eventfds of `fds`; frames larger than
    /// `slot_size` (the port's buffer size) are dropped by the model as
    /// the VMM's backend would.
    pub fn new(
        memory: GuestMemory,
        fds: HandoverFds,
        handover: &Handover,
        slot_size: usize,
    ) -> Result<OffloadedPort, OffloadError> {
        let rings = OffloadedRings::new(handover, &memory)?;
        let slot_size = slot_size.max(MIN_FRAME as usize);
        let slot_stride = buf_stride_for(slot_size.next_multiple_of(CACHE_LINE) as u32) as usize;
        Ok(OffloadedPort {
            memory,
            kick: fds.kick,
            rx_call: fds.rx_call,
            tx_call: fds.tx_call,
            slot_size,
            slot_stride,
            rings: Mutex::new(Rings {
                rings,
                revoked: false,
            }),
            staging: Mutex::new(Staging {
                bytes: vec![0; STAGING_SLOTS * slot_stride].into_boxed_slice(),
                lens: Vec::with_capacity(STAGING_SLOTS),
            }),
            left_signalled: AtomicBool::new(false),
            calls_stalled: AtomicBool::new(false),
            counters: OffloadCounters::default(),
        })
    }

    /// Ends the port's access to guest memory: once this returns no thread
    /// walks the guest's rings again (a walk in progress has finished), and
    /// frames sent to the port are dropped as to a port without a client.
    pub fn revoke(&self) {
        self.rings.lock().revoked = true;
    }

    /// Whether [`OffloadedPort::revoke`] was called.
    pub fn revoked(&self) -> bool {
        self.rings.lock().revoked
    }

    /// The state to hand back to the VMM (final after
    /// [`OffloadedPort::revoke`]).
    pub fn hand_back(&self) -> HandBack {
        self.rings.lock().rings.hand_back()
    }

    /// Writes a call eventfd of the VMM. A VMM that made one block (see
    /// [`crate::kick_watchdog`]) is not called again.
    fn call(&self, fd: &EventFd, counter: &AtomicU64) {
        if self.calls_stalled.load(Ordering::Relaxed) {
            return;
        }
        if let Err(KickError::Stalled) = signal_client(fd) {
            self.calls_stalled.store(true, Ordering::Relaxed);
            self.counters.calls_stalled.fetch_add(1, Ordering::Relaxed);
            log::warn!(
                "a VMM made its offloaded port's call eventfd block: it is not called again"
            );
        }
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the guest still runs in CSB mode; when it left, calls the
    /// VMM once (transmit call) so it takes the data path back.
    fn guest_still_on(&self, rings: &mut Rings) -> bool {
        if rings.rings.guest_on(&self.memory) {
            self.left_signalled.store(false, Ordering::Relaxed);
            return true;
        }
        if !self.left_signalled.swap(true, Ordering::Relaxed) {
            self.counters.guest_left_csb.fetch_add(1, Ordering::Relaxed);
            self.call(&self.tx_call, &self.counters.tx_calls);
        }
        false
    }
}

impl PortIo for OffloadedPort {
    fn receive(&self, batch: &mut Vec<FrameRef>, max: usize, counters: &PortCounters) -> usize {
        let mut staging = self.staging.lock();
        staging.lens.clear();
        let causes = {
            let mut rings = self.rings.lock();
            if rings.revoked || !self.guest_still_on(&mut rings) {
                return 0;
            }
            let mut backend = StagingBackend {
                staging: &mut staging,
                slot_size: self.slot_size,
                slot_stride: self.slot_stride,
                limit: max.min(STAGING_SLOTS),
            };
            rings.rings.transmit(&self.memory, &mut backend).1
        };
        if causes != 0 {
            self.call(&self.tx_call, &self.counters.tx_calls);
        }
        let base = staging.bytes.as_ptr();
        let (mut taken, mut bytes, mut runts) = (0usize, 0u64, 0u64);
        for (i, &len) in staging.lens.iter().enumerate() {
            if len < MIN_FRAME {
                runts += 1;
                continue;
            }
            batch.push(FrameRef {
                // SAFETY: slot `i` lies inside the staging bytes (at most
                // STAGING_SLOTS slots were committed).
                ptr: unsafe { base.add(i * self.slot_stride) },
                len,
                readable: self.slot_size as u32,
            });
            taken += 1;
            bytes += len as u64;
        }
        counters.add_rx(taken as u64, bytes);
        counters.add_drops(DropReason::Runt, runts);
        taken
    }

    fn release(&self, _counters: &PortCounters) {
        // The guest's descriptors were given back by the transmit round
        // (the frames were copied to staging); the staging slots are
        // reused by the next receive.
    }

    fn deliver(&self, frames: &[FrameRef], which: &[u16], counters: &PortCounters) -> usize {
        let mut backend = BatchBackend {
            frames,
            which,
            next: 0,
            bytes: 0,
        };
        let (mut delivered, mut dropped, mut causes) = (0u64, 0u64, 0u32);
        let mut rings = self.rings.lock();
        if rings.revoked {
            drop(rings);
            counters.add_drops(DropReason::NoClient, which.len() as u64);
            return 0;
        }
        for _ in 0..DELIVER_ROUNDS {
            let (outcome, c) = rings.rings.receive(&self.memory, &mut backend);
            delivered += outcome.frames as u64;
            dropped += outcome.dropped as u64;
            causes |= c;
            if !outcome.more || outcome.waiting_for_buffers {
                break;
            }
        }
        // Every transmit count of this port is made here, under the lock.
        // The bytes are those of every frame the model took, including the
        // few its receive filters refused (it does not say which those were).
        counters.add_tx_serialized(delivered, backend.bytes);
        drop(rings);
        if causes != 0 {
            self.call(&self.rx_call, &self.counters.rx_calls);
        }
        counters.add_kick(causes != 0);
        let left = which.len().saturating_sub(backend.next) as u64;
        counters.add_drops(DropReason::RingFull, left);
        counters.add_drops(DropReason::Filtered, dropped);
        self.counters
            .model_drops
            .fetch_add(dropped, Ordering::Relaxed);
        delivered as usize
    }

    fn wake_fd(&self) -> Option<RawFd> {
        Some(self.kick.raw())
    }

    fn arm(&self) -> bool {
        let mut rings = self.rings.lock();
        if rings.revoked || !self.guest_still_on(&mut rings) {
            return false;
        }
        !rings.rings.prepare_sleep(&self.memory, false)
    }

    fn disarm(&self) {
        let mut rings = self.rings.lock();
        if !rings.revoked {
            rings.rings.enter_polling(&self.memory);
        }
    }

    fn on_wake(&self) {
        if self.kick.drain_shared() > 0 {
            self.counters.kicks.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn extra_stats(&self) -> Vec<(String, u64)> {
        let c = &self.counters;
        let mut out: Vec<(String, u64)> = [
            ("offload_tx_calls", &c.tx_calls),
            ("offload_rx_calls", &c.rx_calls),
            ("offload_kicks", &c.kicks),
            ("offload_guest_left_csb", &c.guest_left_csb),
            ("offload_model_drops", &c.model_drops),
            ("offload_calls_stalled", &c.calls_stalled),
        ]
        .into_iter()
        .map(|(name, v)| (name.to_owned(), v.load(Ordering::Relaxed)))
        .collect();
        let errors = serde_json::to_value(self.rings.lock().rings.errors()).unwrap_or_default();
        if let Some(fields) = errors.as_object() {
            for (name, value) in fields {
                if let Some(v) = value.as_u64().filter(|&v| v != 0) {
                    out.push((format!("e1000_{name}"), v));
                }
            }
        }
        out
    }

    fn shutdown(&self) {
        self.revoke();
    }
}
