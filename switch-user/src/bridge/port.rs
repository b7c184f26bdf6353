//! A switch port as the bridge sees it: a name, a number, counters, and the
//! I/O behind it ([`PortIo`]): a shared-memory client port, a NIC queue set or
//! the host's TAP, all forwarded the same way.

use std::os::fd::RawFd;

use switch_port::names::PortName;
use switch_port::protocol::PortKind;

use super::lookup::PortId;
use super::port_security::PortSecurity;
use super::vlan::PortVlan;
use crate::counters::PortCounters;

/// Smallest frame the switch forwards: an Ethernet header. Every port's
/// [`PortIo::receive`] drops (and counts) shorter ones.
pub const MIN_FRAME: u32 = 14;

/// One frame of a batch, in the memory of the port it came from.
///
/// The bytes stay valid until the source port's [`PortIo::release`]; the
/// forwarding batch holds the source port alive meanwhile.
#[derive(Clone, Copy, Debug)]
pub struct FrameRef {
    /// First byte of the frame.
    pub ptr: *const u8,
    /// Frame length.
    pub len: u32,
    /// Bytes readable from `ptr` (at least `len`). Copies read only `len`
    /// (see [`super::frame_copy`]): past it lies other traffic.
    pub readable: u32,
}

impl FrameRef {
    /// Copies the 14-byte Ethernet header out of the frame.
    ///
    /// # Safety
    /// `ptr` must be readable for `len >= 14` bytes.
    #[inline]
    pub unsafe fn header(&self) -> [u8; 14] {
        let mut h = [0u8; 14];
        // SAFETY: the caller guarantees 14 readable bytes.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr, h.as_mut_ptr(), 14) };
        h
    }
}

/// The I/O of a port, called by the forwarding threads.
///
/// One thread at a time calls `receive`/`release` for a given port (its
/// source side), or for a given lane of a port with several receive lanes
/// ([`PortIo::lanes`], a NIC's queues: each lane is a source of its own
/// forwarding thread); several may call `deliver` at once (its destination
/// side), so implementations lock their producer state there. Nothing here
/// may block: a full destination drops and counts.
pub trait PortIo: Send + Sync {
    /// Gathers up to `max` frames from the port into `batch` (appending),
    /// dropping and counting invalid ones; returns how many were appended.
    fn receive(&self, batch: &mut Vec<FrameRef>, max: usize, counters: &PortCounters) -> usize;
    /// Gives back the frames of the last `receive` (they have been copied).
    fn release(&self, counters: &PortCounters);
    /// Independent receive lanes (a NIC's queues): the engine makes each a
    /// source of its own, so different threads may serve them. 1 for most
    /// ports, whose lane 0 is the whole port.
    fn lanes(&self) -> usize {
        1
    }
    /// [`PortIo::receive`] from lane `lane` (below [`PortIo::lanes`]) only.
    fn receive_lane(
        &self,
        _lane: usize,
        batch: &mut Vec<FrameRef>,
        max: usize,
        counters: &PortCounters,
    ) -> usize {
        self.receive(batch, max, counters)
    }
    /// [`PortIo::release`] of the frames of the last `receive_lane(lane)`.
    fn release_lane(&self, _lane: usize, counters: &PortCounters) {
        self.release(counters)
    }
    /// Copies the frames `frames[i]` for `i` in `which` to the port; counts
    /// what it delivered and what it dropped; returns frames delivered.
    fn deliver(&self, frames: &[FrameRef], which: &[u16], counters: &PortCounters) -> usize;
    /// A hint that `count` frames will shortly be delivered: start loading
    /// where they will be written. Changes nothing.
    fn prepare(&self, _count: usize) {}
    /// An earlier hint than [`PortIo::prepare`]: start loading what
    /// `prepare` itself will read. Changes nothing.
    fn prepare_early(&self, _count: usize) {}
    /// [`PortIo::deliver`] without the decision whether to wake the client:
    /// when it returns true, the caller must issue a `SeqCst` fence after it
    /// (one fence may serve several ports) and then call
    /// [`PortIo::kick_if_waiting`]. So a batch to many ports pays one fence.
    fn deliver_unkicked(
        &self,
        frames: &[FrameRef],
        which: &[u16],
        counters: &PortCounters,
    ) -> bool {
        self.deliver(frames, which, counters);
        false
    }
    /// Wakes the client if it asked to be (after [`PortIo::deliver_unkicked`]
    /// and a fence).
    fn kick_if_waiting(&self, _counters: &PortCounters) {}
    /// An fd that becomes readable when frames may be waiting after
    /// [`PortIo::arm`] (for the forwarder's epoll), if any.
    fn wake_fd(&self) -> Option<RawFd>;
    /// [`PortIo::wake_fd`] of lane `lane` only.
    fn lane_wake_fd(&self, _lane: usize) -> Option<RawFd> {
        self.wake_fd()
    }
    /// Asks to be woken through `wake_fd` when frames arrive. Returns true if
    /// frames are already waiting (the caller must not sleep).
    fn arm(&self) -> bool;
    /// [`PortIo::arm`] for lane `lane` only (woken through its
    /// [`PortIo::lane_wake_fd`]).
    fn arm_lane(&self, _lane: usize) -> bool {
        self.arm()
    }
    /// The forwarder is polling again: wake-ups are not needed.
    fn disarm(&self);
    /// Called by the forwarder after `wake_fd` was readable (e.g. drain it).
    fn on_wake(&self) {}
    /// The port is broken (its device went away) and should be removed.
    fn failed(&self) -> bool {
        false
    }
    /// Counters of the kind of port beyond the common ones (XDP and socket
    /// counters of a NIC port), for `vswitch stats`.
    fn extra_stats(&self) -> Vec<(String, u64)> {
        Vec::new()
    }
    /// Releases what must not outlive a detach (e.g. the XDP program) now,
    /// even if forwarding threads still hold the port for a moment.
    fn shutdown(&self) {}
}

/// The receive side a forwarding batch reads: the whole port, or one lane
/// of it (see [`PortIo::lanes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// Every lane ([`PortIo::receive`]).
    All,
    /// One lane ([`PortIo::receive_lane`]).
    One(usize),
}

/// A port of a switch.
pub struct Port {
    /// Full name, `switch:port`.
    pub name: PortName,
    /// Number inside the switch.
    pub id: PortId,
    /// What kind of port.
    pub kind: PortKind,
    /// Counters.
    pub counters: PortCounters,
    /// Source-address lock and storm control.
    pub security: PortSecurity,
    /// The 802.1Q VLAN mode.
    pub vlan: PortVlan,
    /// The I/O.
    pub io: Box<dyn PortIo>,
}

impl Port {
    /// Wraps port I/O.
    pub fn new(name: PortName, id: PortId, kind: PortKind, io: Box<dyn PortIo>) -> Port {
        Port {
            name,
            id,
            kind,
            counters: PortCounters::default(),
            security: PortSecurity::default(),
            vlan: PortVlan::default(),
            io,
        }
    }

    /// A port taking the place of `previous` (same name, number and kind)
    /// with new I/O; the counters and the VLAN mode carry on from the
    /// previous port's, the security settings start unset.
    pub fn succeed(previous: &Port, io: Box<dyn PortIo>) -> Port {
        let vlan = PortVlan::default();
        vlan.set(previous.vlan.mode().as_ref());
        Port {
            name: previous.name.clone(),
            id: previous.id,
            kind: previous.kind,
            counters: PortCounters::starting_at(&previous.counters.snapshot()),
            security: PortSecurity::default(),
            vlan,
            io,
        }
    }

    /// Receives up to `max` frames from `lane` into `batch` (see
    /// [`PortIo::receive`]).
    #[inline]
    pub fn receive_from(&self, lane: Lane, batch: &mut Vec<FrameRef>, max: usize) -> usize {
        match lane {
            Lane::All => self.io.receive(batch, max, &self.counters),
            Lane::One(l) => self.io.receive_lane(l, batch, max, &self.counters),
        }
    }

    /// Gives back the frames of the last [`Port::receive_from`] of `lane`.
    #[inline]
    pub fn release_from(&self, lane: Lane) {
        match lane {
            Lane::All => self.io.release(&self.counters),
            Lane::One(l) => self.io.release_lane(l, &self.counters),
        }
    }

    /// The descriptor that becomes readable when `lane` has work.
    pub fn wake_fd_of(&self, lane: Lane) -> Option<RawFd> {
        match lane {
            Lane::All => self.io.wake_fd(),
            Lane::One(l) => self.io.lane_wake_fd(l),
        }
    }

    /// Asks `lane`'s producer for a kick; true if work is already there.
    pub fn arm_lane_of(&self, lane: Lane) -> bool {
        match lane {
            Lane::All => self.io.arm(),
            Lane::One(l) => self.io.arm_lane(l),
        }
    }

    /// True once the client wrote something invalid into its rings, or made
    /// a kick block.
    pub fn errored(&self) -> bool {
        let c = self.counters.snapshot();
        c.bad_index + c.drop_bad_slot + c.kicks_stalled > 0
    }
}

impl std::fmt::Debug for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Port")
            .field("name", &self.name)
            .field("id", &self.id)
            .field("kind", &self.kind)
            .finish()
    }
}

impl<T: PortIo + ?Sized> PortIo for std::sync::Arc<T> {
    fn receive(&self, batch: &mut Vec<FrameRef>, max: usize, counters: &PortCounters) -> usize {
        (**self).receive(batch, max, counters)
    }
    fn release(&self, counters: &PortCounters) {
        (**self).release(counters)
    }
    fn lanes(&self) -> usize {
        (**self).lanes()
    }
    fn receive_lane(
        &self,
        lane: usize,
        batch: &mut Vec<FrameRef>,
        max: usize,
        counters: &PortCounters,
    ) -> usize {
        (**self).receive_lane(lane, batch, max, counters)
    }
    fn release_lane(&self, lane: usize, counters: &PortCounters) {
        (**self).release_lane(lane, counters)
    }
    fn deliver(&self, frames: &[FrameRef], which: &[u16], counters: &PortCounters) -> usize {
        (**self).deliver(frames, which, counters)
    }
    fn prepare(&self, count: usize) {
        (**self).prepare(count)
    }
    fn prepare_early(&self, count: usize) {
        (**self).prepare_early(count)
    }
    fn deliver_unkicked(
        &self,
        frames: &[FrameRef],
        which: &[u16],
        counters: &PortCounters,
    ) -> bool {
        (**self).deliver_unkicked(frames, which, counters)
    }
    fn kick_if_waiting(&self, counters: &PortCounters) {
        (**self).kick_if_waiting(counters)
    }
    fn wake_fd(&self) -> Option<RawFd> {
        (**self).wake_fd()
    }
    fn lane_wake_fd(&self, lane: usize) -> Option<RawFd> {
        (**self).lane_wake_fd(lane)
    }
    fn arm(&self) -> bool {
        (**self).arm()
    }
    fn arm_lane(&self, lane: usize) -> bool {
        (**self).arm_lane(lane)
    }
    fn disarm(&self) {
        (**self).disarm()
    }
    fn on_wake(&self) {
        (**self).on_wake()
    }
    fn failed(&self) -> bool {
        (**self).failed()
    }
    fn extra_stats(&self) -> Vec<(String, u64)> {
        (**self).extra_stats()
    }
    fn shutdown(&self) {
        (**self).shutdown()
    }
}
