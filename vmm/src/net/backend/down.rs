//! The port a NIC holds while its switch daemon is gone: every transmitted
//! frame is dropped and counted (`link.tx_dropped`), nothing is received,
//! and TX space is always there, so a guest that keeps sending never stalls
//! the device.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::Port;
use crate::stats::Stats;

const SLOT_SIZE: usize = 16384;

/// The link-down port.
pub struct DownPort {
    slot: Box<[u8]>,
    /// Never signalled: there is never anything to receive.
    kick: EventFd,
    stats: Arc<Stats>,
}

impl DownPort {
    /// A link-down port counting its drops into `stats`.
    pub fn new(stats: Arc<Stats>) -> std::io::Result<DownPort> {
        Ok(DownPort {
            slot: vec![0u8; SLOT_SIZE].into_boxed_slice(),
            kick: EventFd::new(EFD_NONBLOCK)?,
            stats,
        })
    }
}

impl Port for DownPort {
    fn reserve(&mut self) -> Option<&mut [u8]> {
        Some(&mut self.slot)
    }

    fn commit(&mut self, _len: usize) {
        self.stats.link.tx_dropped.inc();
    }

    fn publish(&mut self) -> usize {
        0
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_and_counts_what_the_guest_sends() {
        let stats = Arc::new(Stats::new());
        let mut port = DownPort::new(Arc::clone(&stats)).unwrap();
        for _ in 0..3 {
            assert!(port.reserve().is_some());
            port.commit(60);
        }
        assert_eq!(port.publish(), 0);
        assert!(port.peek().is_none());
        assert!(port.arm(false, true), "TX space is always there");
        assert!(!port.arm(true, false), "nothing to receive, ever");
        assert_eq!(stats.link.tx_dropped.get(), 3);
    }
}
