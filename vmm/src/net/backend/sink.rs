//! A test port that drops every transmitted frame and never receives: for
//! measuring a guest's transmit rate without a switch.

use std::os::fd::{AsRawFd, RawFd};

use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::Port;

const SLOT_SIZE: usize = 16384;

/// The sink port.
pub struct SinkPort {
    slot: Box<[u8]>,
    committed: usize,
    /// Never signalled: there is never anything to receive.
    kick: EventFd,
}

impl SinkPort {
    /// A sink.
    pub fn new() -> std::io::Result<SinkPort> {
        Ok(SinkPort {
            slot: vec![0u8; SLOT_SIZE].into_boxed_slice(),
            committed: 0,
            kick: EventFd::new(EFD_NONBLOCK)?,
        })
    }
}

impl Port for SinkPort {
    fn reserve(&mut self) -> Option<&mut [u8]> {
        Some(&mut self.slot)
    }

    fn commit(&mut self, _len: usize) {
        self.committed += 1;
    }

    fn publish(&mut self) -> usize {
        std::mem::take(&mut self.committed)
    }

    fn peek(&mut self) -> Option<&[u8]> {
        None
    }

    fn consume(&mut self) {}

    fn release_rx(&mut self) {}

    fn kick_fd(&self) -> RawFd {
        self.kick.as_raw_fd()
    }

    fn arm(&mut self, _rx: bool, tx: bool) -> bool {
        // TX space is always there.
        tx
    }

    fn disarm(&mut self) {
        let _ = self.kick.read();
    }

    fn kicks_sent(&self) -> u64 {
        0
    }

    fn max_frame(&self) -> usize {
        SLOT_SIZE
    }
}
