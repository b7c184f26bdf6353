//! The host stack as a switch port: a TAP interface the host configures with
//! an address (OVS's internal port). AF_XDP takes the NIC's receive path, so
//! this is how the host keeps talking to the guests and the wire.

use std::os::fd::{AsRawFd, RawFd};

use parking_lot::Mutex;
use switch_xdp::Tap;

use super::staging::Staging;
use crate::bridge::forward::MAX_BATCH;
use crate::bridge::port::MIN_FRAME;
use crate::bridge::port::{FrameRef, PortIo};
use crate::counters::{DropReason, PortCounters};

/// Largest frame the host port carries at least (more when the NIC's MTU
/// asks for it): a 9000-byte MTU with room to spare.
pub const HOST_MAX_FRAME: usize = 9216;

/// The I/O of a host port.
pub struct HostPort {
    tap: Mutex<Tap>,
    staging: Mutex<Staging>,
    /// The longest frame carried either way; longer ones are dropped as too long.
    max_frame: usize,
    fd: RawFd,
    /// The NIC this host port belongs to: it goes when the NIC goes.
    nic: (String, u32),
}

impl HostPort {
    /// Wraps a TAP serving the host side of NIC `nic` (name, ifindex),
    /// carrying frames up to `max_frame` bytes.
    pub fn new(tap: Tap, nic: (String, u32), max_frame: usize) -> HostPort {
        let fd = tap.as_raw_fd();
        HostPort {
            tap: Mutex::new(tap),
            staging: Mutex::new(Staging::new(MAX_BATCH.min(64), max_frame)),
            max_frame,
            fd,
            nic,
        }
    }
}

impl PortIo for HostPort {
    fn receive(&self, batch: &mut Vec<FrameRef>, max: usize, counters: &PortCounters) -> usize {
        let mut staging = self.staging.lock();
        staging.clear();
        let limit = max.min(64);
        let (mut taken, mut bytes, mut runts, mut too_long) = (0usize, 0u64, 0u64, 0u64);
        let result = self.tap.lock().receive(limit, |frame| {
            if frame.len() < MIN_FRAME as usize {
                runts += 1;
                return;
            }
            match staging.stage(frame) {
                Some(f) => {
                    batch.push(f);
                    taken += 1;
                    bytes += frame.len() as u64;
                }
                None => too_long += 1,
            }
        });
        if let Err(e) = result {
            log::debug!("host port read: {e}");
        }
        counters.add_rx(taken as u64, bytes);
        counters.add_drops(DropReason::Runt, runts);
        counters.add_drops(DropReason::TooLong, too_long);
        taken
    }

    fn release(&self, _counters: &PortCounters) {}

    fn deliver(&self, frames: &[FrameRef], which: &[u16], counters: &PortCounters) -> usize {
        let mut slices: Vec<&[u8]> = Vec::with_capacity(which.len());
        let mut too_long = 0u64;
        for &i in which {
            if let Some(f) = frames.get(i as usize) {
                if f.len as usize > self.max_frame {
                    too_long += 1;
                    continue;
                }
                // SAFETY: a batch frame is readable for `len` bytes until the
                // batch ends, which outlives this call.
                slices.push(unsafe { std::slice::from_raw_parts(f.ptr, f.len as usize) });
            }
        }
        counters.add_drops(DropReason::TooLong, too_long);
        let mut tap = self.tap.lock();
        let before = tap.stats();
        let mut iter = slices.iter().copied();
        if let Err(e) = tap.transmit(iter.by_ref()) {
            log::debug!("host port write: {e}");
        }
        let after = tap.stats();
        drop(tap);
        let written = (after.tx_packets - before.tx_packets) as usize;
        counters.add_tx(written as u64, after.tx_bytes - before.tx_bytes);
        counters.add_drops(
            DropReason::RingFull,
            (slices.len() - written.min(slices.len())) as u64,
        );
        written
    }

    fn wake_fd(&self) -> Option<RawFd> {
        Some(self.fd)
    }

    fn arm(&self) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout.
        unsafe { libc::poll(&mut pfd, 1, 0) > 0 }
    }

    fn disarm(&self) {}

    fn failed(&self) -> bool {
        super::nic_port::interface_gone(&self.nic.0, self.nic.1)
    }

    fn extra_stats(&self) -> Vec<(String, u64)> {
        let s = self.tap.lock().stats();
        vec![
            ("tap_rx".into(), s.rx_packets),
            ("tap_tx".into(), s.tx_packets),
            ("tap_tx_dropped".into(), s.tx_dropped),
        ]
    }
}
