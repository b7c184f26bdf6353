//! A test port that answers test-frame pings (testframe kind 2) with pongs,
//! as a `vswitch pktgen pong` peer would, and drops every other frame: lets a
//! guest's `ping` workload run without a switch.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, RawFd};

use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::Port;

const SLOT_SIZE: usize = 16384;
const DEFAULT_CAPACITY: usize = 1024;

/// The pong port.
pub struct PongPort {
    slot: Box<[u8]>,
    /// Pongs committed but not yet published.
    pending: Vec<Vec<u8>>,
    /// Pongs waiting to be received, oldest first.
    queue: VecDeque<Vec<u8>>,
    capacity: usize,
    rx_armed: bool,
    kick: EventFd,
    /// Transmitted frames that were not pings.
    pub ignored: u64,
    /// Pongs dropped because the receive queue was full.
    pub dropped: u64,
}

impl PongPort {
    /// A pong port holding up to 1024 unreceived pongs.
    pub fn new() -> std::io::Result<PongPort> {
        PongPort::with_capacity(DEFAULT_CAPACITY)
    }

    /// A pong port holding up to `capacity` unreceived pongs.
    pub fn with_capacity(capacity: usize) -> std::io::Result<PongPort> {
        Ok(PongPort {
            slot: vec![0u8; SLOT_SIZE].into_boxed_slice(),
            pending: Vec::new(),
            queue: VecDeque::new(),
            capacity,
            rx_armed: false,
            kick: EventFd::new(EFD_NONBLOCK)?,
            ignored: 0,
            dropped: 0,
        })
    }
}

impl Port for PongPort {
    fn reserve(&mut self) -> Option<&mut [u8]> {
        Some(&mut self.slot)
    }

    fn commit(&mut self, len: usize) {
        let mut frame = self.slot[..len.min(SLOT_SIZE)].to_vec();
        match testframe::make_pong(&mut frame) {
            Ok(h) if h.kind == testframe::Kind::Pong => self.pending.push(frame),
            _ => self.ignored += 1,
        }
    }

    fn publish(&mut self) -> usize {
        let n = self.pending.len();
        for frame in self.pending.drain(..) {
            if self.queue.len() < self.capacity {
                self.queue.push_back(frame);
            } else {
                self.dropped += 1;
            }
        }
        if n > 0 && self.rx_armed {
            // The receiver asked for a kick: wake it, like the switch would.
            self.rx_armed = false;
            let _ = self.kick.write(1);
        }
        n
    }

    fn peek(&mut self) -> Option<&[u8]> {
        self.queue.front().map(Vec::as_slice)
    }

    fn consume(&mut self) {
        self.queue.pop_front();
    }

    fn release_rx(&mut self) {}

    fn kick_fd(&self) -> RawFd {
        self.kick.as_raw_fd()
    }

    fn arm(&mut self, rx: bool, tx: bool) -> bool {
        if rx {
            self.rx_armed = true;
        }
        tx || (rx && !self.queue.is_empty())
    }

    fn disarm(&mut self) {
        self.rx_armed = false;
        let _ = self.kick.read();
    }

    fn kicks_sent(&self) -> u64 {
        0
    }

    fn max_frame(&self) -> usize {
        SLOT_SIZE
    }
}
