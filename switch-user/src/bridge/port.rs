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
/// source side); several may call `deliver` at once (its destination side),
/// so implementations lock their producer state there. Nothing here may
/// block: a full destination drops and counts.
pub trait PortIo: Send + Sync {
    /// Gathers up to `max` frames from the port into `batch` (appending),
    /// dropping and counting invalid ones; returns how many were appended.
    fn receive(&self, batch: &mut Vec<FrameRef>, max: usize, counters: &PortCounters) -> usize;
    /// Gives back the frames of the last `receive` (they have been copied).
    fn release(&self, counters: &PortCounters);
    /// Copies the frames `frames[i]` for `i` in `which` to the port; counts
    /// what it delivered and what it dropped; returns frames delivered.
    fn deliver(&self, frames: &[FrameRef], which: &[u16], counters: &PortCounters) -> usize;
    /// A hint that `count` frames will shortly be delivered: start loading
    /// where they will be written. Changes nothing.
    fn prepare(&self, _count: usize) {}
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
    /// Asks to be woken through `wake_fd` when frames arrive. Returns true if
    /// frames are already waiting (the caller must not sleep).
    fn arm(&self) -> bool;
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

    /// True once the client wrote something invalid into its rings.
    pub fn errored(&self) -> bool {
        let c = self.counters.snapshot();
        c.bad_index + c.drop_bad_slot > 0
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
    fn deliver(&self, frames: &[FrameRef], which: &[u16], counters: &PortCounters) -> usize {
        (**self).deliver(frames, which, counters)
    }
    fn prepare(&self, count: usize) {
        (**self).prepare(count)
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
    fn arm(&self) -> bool {
        (**self).arm()
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
