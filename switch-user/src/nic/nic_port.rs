//! A NIC attached to a switch: one AF_XDP socket per receive queue, the XDP
//! steering program that feeds them, and promiscuous mode so that frames for
//! the guests' MACs reach us. Received frames are lent to the forwarding
//! batch straight from the sockets' UMEM and returned to the fill ring when
//! the batch is done; on the way out frames are copied into free UMEM frames.
//! Each queue is a receive lane of its own ([`PortIo::lanes`]), so the
//! engine may serve the queues from different forwarding threads.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use switch_port::error_chain::Chain;
use switch_xdp::{busy_poll, iface, Promiscuous, XdpSteering, XskQueue};

use super::checksum;
use crate::bridge::forward::MAX_BATCH;
use crate::bridge::port::MIN_FRAME;
use crate::bridge::port::{FrameRef, PortIo};
use crate::counters::{DropReason, PortCounters};
use crate::epoll::Epoll;

/// The I/O of a NIC port.
pub struct NicPort {
    iface: String,
    queues: Vec<Mutex<XskQueue>>,
    steering: Mutex<Option<XdpSteering>>,
    promiscuous: Mutex<Option<Promiscuous>>,
    wake: Epoll,
    max_frame: usize,
    ifindex: u32,
    /// Complete partial TCP/UDP checksums of received frames.
    complete_checksums: bool,
    /// Frames whose checksum was completed.
    checksums_completed: AtomicU64,
    /// Busy-poll each queue before taking its frames (the sockets have
    /// `SO_PREFER_BUSY_POLL` set: see [`switch_xdp::busy_poll`]).
    busy_poll: bool,
    /// Busy polls that failed.
    busy_poll_errors: AtomicU64,
}

impl NicPort {
    /// Wraps the sockets (one per queue, already registered with `steering`).
    pub fn new(
        iface: &str,
        queues: Vec<XskQueue>,
        steering: XdpSteering,
        promiscuous: Option<Promiscuous>,
    ) -> std::io::Result<NicPort> {
        let wake = Epoll::new()?;
        for (i, q) in queues.iter().enumerate() {
            wake.add(q.as_raw_fd(), i as u64)?;
        }
        let max_frame = queues
            .iter()
            .map(XskQueue::max_frame_len)
            .min()
            .unwrap_or(0);
        let ifindex =
            iface::ifindex(iface).map_err(|e| std::io::Error::other(Chain(&e).to_string()))?;
        Ok(NicPort {
            iface: iface.to_owned(),
            ifindex,
            queues: queues.into_iter().map(Mutex::new).collect(),
            steering: Mutex::new(Some(steering)),
            promiscuous: Mutex::new(promiscuous),
            wake,
            max_frame,
            complete_checksums: false,
            checksums_completed: AtomicU64::new(0),
            busy_poll: false,
            busy_poll_errors: AtomicU64::new(0),
        })
    }

    /// Completes partial TCP/UDP checksums of received frames when `on`
    /// (see [`super::checksum`]).
    pub fn with_checksum_completion(mut self, on: bool) -> NicPort {
        self.complete_checksums = on;
        self
    }

    /// Busy-polls each queue once per receive batch when `on` (the
    /// sockets must have busy polling enabled, see
    /// [`switch_xdp::busy_poll::enable`]).
    pub fn with_busy_poll(mut self, on: bool) -> NicPort {
        self.busy_poll = on;
        self
    }

    /// The interface.
    pub fn interface(&self) -> &str {
        &self.iface
    }

    /// Number of queues with a socket.
    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }
}

impl NicPort {
    /// Takes up to `max` frames from queue `index` into `batch` (holding
    /// them until that queue's `release_held`), busy-polling it first when
    /// asked; returns what it took and dropped.
    fn take_from(&self, index: usize, batch: &mut Vec<FrameRef>, max: usize) -> Taken {
        let (mut taken, mut bytes, mut runts, mut completed) = (0usize, 0u64, 0u64, 0u64);
        let complete = self.complete_checksums;
        let mut queue = self.queues[index].lock();
        if self.busy_poll && busy_poll::drive(queue.fd()).is_err() {
            self.busy_poll_errors.fetch_add(1, Ordering::Relaxed);
        }
        let too_long_before = queue.local_stats().rx_too_long;
        queue.receive_held(max, |ptr, len, room| {
            if len < MIN_FRAME as usize {
                runts += 1;
                return;
            }
            if complete {
                // SAFETY: the frame's `len` bytes are ours alone until
                // `release_held` (XskQueue::receive_held's contract), and
                // no other reference to them exists yet.
                let frame = unsafe { std::slice::from_raw_parts_mut(ptr, len) };
                completed += u64::from(checksum::complete_partial(frame));
            }
            batch.push(FrameRef {
                ptr,
                len: len as u32,
                readable: room as u32,
            });
            taken += 1;
            bytes += len as u64;
        });
        let too_long = queue.local_stats().rx_too_long - too_long_before;
        if completed > 0 {
            self.checksums_completed
                .fetch_add(completed, Ordering::Relaxed);
        }
        Taken {
            frames: taken,
            bytes,
            runts,
            too_long,
        }
    }
}

/// What [`NicPort::take_from`] took from one queue.
struct Taken {
    /// Frames put into the batch.
    frames: usize,
    /// Their bytes.
    bytes: u64,
    /// Frames too short for an Ethernet header, dropped.
    runts: u64,
    /// Multi-buffer packets beyond the port's largest frame, dropped.
    too_long: u64,
}

impl Taken {
    /// Adds the counts to the port's counters.
    fn count(&self, counters: &PortCounters) {
        counters.add_rx(self.frames as u64, self.bytes);
        counters.add_drops(DropReason::Runt, self.runts);
        counters.add_drops(DropReason::TooLong, self.too_long);
    }
}

impl PortIo for NicPort {
    // The whole port as one source: what the engine uses for a NIC with
    // one queue (a NIC with several gets a source per queue, the lanes
    // below), and what tests that forward one batch call.
    fn receive(&self, batch: &mut Vec<FrameRef>, max: usize, counters: &PortCounters) -> usize {
        let max = max.min(MAX_BATCH);
        let mut taken = 0;
        for index in 0..self.queues.len() {
            if taken >= max {
                break;
            }
            let got = self.take_from(index, batch, max - taken);
            got.count(counters);
            taken += got.frames;
        }
        taken
    }

    fn release(&self, counters: &PortCounters) {
        for lane in 0..self.queues.len() {
            self.release_lane(lane, counters);
        }
    }

    fn lanes(&self) -> usize {
        self.queues.len()
    }

    fn receive_lane(
        &self,
        lane: usize,
        batch: &mut Vec<FrameRef>,
        max: usize,
        counters: &PortCounters,
    ) -> usize {
        if lane >= self.queues.len() {
            return 0;
        }
        let got = self.take_from(lane, batch, max.min(MAX_BATCH));
        got.count(counters);
        got.frames
    }

    fn release_lane(&self, lane: usize, _counters: &PortCounters) {
        if let Some(queue) = self.queues.get(lane) {
            let mut queue = queue.lock();
            if queue.held() > 0 {
                queue.release_held();
            }
        }
    }

    fn deliver(&self, frames: &[FrameRef], which: &[u16], counters: &PortCounters) -> usize {
        let mut too_long = 0u64;
        let mut slices: Vec<&[u8]> = Vec::with_capacity(which.len());
        for &i in which {
            let Some(f) = frames.get(i as usize) else {
                continue;
            };
            if f.len as usize > self.max_frame {
                too_long += 1;
                continue;
            }
            // SAFETY: a batch frame is readable for `len` bytes until the
            // batch ends (FrameRef's contract), which outlives this call.
            slices.push(unsafe { std::slice::from_raw_parts(f.ptr, f.len as usize) });
        }
        counters.add_drops(DropReason::TooLong, too_long);
        if slices.is_empty() {
            return 0;
        }
        // Any free queue will do; wait for the first one otherwise.
        let mut queue = self
            .queues
            .iter()
            .find_map(|q| q.try_lock())
            .unwrap_or_else(|| self.queues[0].lock());
        let mut iter = slices.iter().copied();
        let taken = queue.transmit(iter.by_ref());
        drop(queue);
        let bytes: u64 = slices[..taken].iter().map(|s| s.len() as u64).sum();
        counters.add_tx(taken as u64, bytes);
        counters.add_drops(DropReason::RingFull, (slices.len() - taken) as u64);
        taken
    }

    fn wake_fd(&self) -> Option<RawFd> {
        Some(self.wake.raw())
    }

    fn arm(&self) -> bool {
        self.queues
            .iter()
            .any(|q| q.lock().wait_readable(Duration::ZERO).unwrap_or(false))
    }

    fn lane_wake_fd(&self, lane: usize) -> Option<RawFd> {
        self.queues.get(lane).map(|q| q.lock().as_raw_fd())
    }

    fn arm_lane(&self, lane: usize) -> bool {
        self.queues
            .get(lane)
            .is_some_and(|q| q.lock().wait_readable(Duration::ZERO).unwrap_or(false))
    }

    fn disarm(&self) {}

    fn failed(&self) -> bool {
        interface_gone(&self.iface, self.ifindex)
    }

    fn extra_stats(&self) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        if let Some(steering) = self.steering.lock().as_ref() {
            if let Ok(c) = steering.total_counters() {
                out.push(("xdp_redirected".into(), c.redirected));
                out.push(("xdp_passed".into(), c.passed));
                out.push(("xdp_dropped".into(), c.dropped));
                out.push(("xdp_redirect_failures".into(), c.redirect_failures));
            }
        }
        let mut sum = switch_xdp::XskStats::default();
        for q in &self.queues {
            if let Ok(s) = q.lock().stats() {
                sum.rx_packets += s.rx_packets;
                sum.tx_packets += s.tx_packets;
                sum.tx_completed += s.tx_completed;
                sum.tx_rejected += s.tx_rejected;
                sum.invalid_descs += s.invalid_descs;
                sum.rx_multi_buffer += s.rx_multi_buffer;
                sum.tx_multi_buffer += s.tx_multi_buffer;
                sum.rx_too_long += s.rx_too_long;
                sum.rx_broken += s.rx_broken;
                sum.rx_dropped += s.rx_dropped;
                sum.rx_ring_full += s.rx_ring_full;
                sum.rx_fill_ring_empty += s.rx_fill_ring_empty;
                sum.rx_invalid_descs += s.rx_invalid_descs;
                sum.tx_invalid_descs += s.tx_invalid_descs;
                sum.tx_ring_empty += s.tx_ring_empty;
            }
        }
        out.extend([
            ("xsk_queues".to_owned(), self.queues.len() as u64),
            ("xsk_rx".to_owned(), sum.rx_packets),
            ("xsk_tx".to_owned(), sum.tx_packets),
            ("xsk_tx_completed".to_owned(), sum.tx_completed),
            ("xsk_rx_dropped".to_owned(), sum.rx_dropped),
            ("xsk_rx_ring_full".to_owned(), sum.rx_ring_full),
            ("xsk_fill_ring_empty".to_owned(), sum.rx_fill_ring_empty),
            ("xsk_tx_ring_empty".to_owned(), sum.tx_ring_empty),
            (
                "xsk_invalid_descs".to_owned(),
                sum.invalid_descs + sum.rx_invalid_descs + sum.tx_invalid_descs,
            ),
            ("xsk_tx_rejected".to_owned(), sum.tx_rejected),
            ("xsk_max_frame".to_owned(), self.max_frame as u64),
            ("xsk_rx_multi_buffer".to_owned(), sum.rx_multi_buffer),
            ("xsk_tx_multi_buffer".to_owned(), sum.tx_multi_buffer),
            ("xsk_rx_too_long".to_owned(), sum.rx_too_long),
            ("xsk_rx_broken".to_owned(), sum.rx_broken),
            (
                "checksums_completed".to_owned(),
                self.checksums_completed.load(Ordering::Relaxed),
            ),
        ]);
        if self.busy_poll {
            out.push((
                "busy_poll_errors".to_owned(),
                self.busy_poll_errors.load(Ordering::Relaxed),
            ));
        }
        out
    }

    fn shutdown(&self) {
        if let Some(steering) = self.steering.lock().take() {
            steering.detach();
        }
        self.promiscuous.lock().take();
    }
}

/// True when `iface` no longer names the interface with index `ifindex`
/// (deleted, or deleted and another one created under the same name).
pub fn interface_gone(iface: &str, ifindex: u32) -> bool {
    iface::ifindex(iface).map_or(true, |now| now != ifindex)
}
