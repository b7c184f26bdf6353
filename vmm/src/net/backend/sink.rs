//! A port that drops every transmitted frame and never receives; TX space
//! is always there, so a guest that keeps sending never stalls the device.
//! Two uses: a test port for measuring a guest's transmit rate without a
//! switch ([`SinkPort::new`]), and the port a NIC holds while its switch
//! daemon is gone ([`SinkPort::link_down`]: drops are counted in
//! `link.tx_dropped` and nothing is published).

use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::Port;
use crate::stats::Stats;

const SLOT_SIZE: usize = 16384;

/// The sink port.
pub struct SinkPort {
    slot: Box<[u8]>,
    committed: usize,
    /// Link down: where drops are counted (and nothing counts as published).
    link_down: Option<Arc<Stats>>,
    /// Never signalled: there is never anything to receive.
    kick: EventFd,
}

impl SinkPort {
    /// A sink: committed frames count as published.
    pub fn new() -> std::io::Result<SinkPort> {
        Self::with(None)
    }

    /// A link-down port counting its drops into `stats`.
    pub fn link_down(stats: Arc<Stats>) -> std::io::Result<SinkPort> {
        Self::with(Some(stats))
    }

    fn with(link_down: Option<Arc<Stats>>) -> std::io::Result<SinkPort> {
        Ok(SinkPort {
            slot: vec![0u8; SLOT_SIZE].into_boxed_slice(),
            committed: 0,
            link_down,
            kick: EventFd::new(EFD_NONBLOCK)?,
        })
    }
}

impl Port for SinkPort {
    fn reserve(&mut self) -> Option<&mut [u8]> {
        Some(&mut self.slot)
    }

    fn commit(&mut self, _len: usize) {
        match &self.link_down {
            Some(stats) => stats.link.tx_dropped.inc(),
            None => self.committed += 1,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_down_drops_and_counts_what_the_guest_sends() {
        let stats = Arc::new(Stats::new());
        let mut port = SinkPort::link_down(Arc::clone(&stats)).unwrap();
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
