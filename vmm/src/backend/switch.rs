//! A vswitch port as the e1000's backend, through the switch's client library.

use std::os::fd::RawFd;
use std::path::Path;

use switch_user::port::{Interest, PortClient, PortConfig};

use super::{BackendError, PortIo};

/// Slots per ring of the VM's switch port: the switch drops what does not
/// fit, and a VM's threads get the CPU in slices of a millisecond or more on
/// a busy 2-core host (at 2 Mpps, 2000 frames), so the port buffers as much
/// as the guest's own 4096-descriptor rings.
pub const PORT_RING_SIZE: u32 = 4096;

/// An open vswitch port.
pub struct SwitchPort {
    client: PortClient,
}

impl SwitchPort {
    /// Connects to the daemon at `socket` and opens `port` (`vale0:vm1`),
    /// asking for [`PORT_RING_SIZE`] slots per ring when it creates the
    /// port; a port that already exists with other sizes is opened as it is.
    pub fn open(socket: &Path, port: &str) -> Result<SwitchPort, BackendError> {
        let wanted = PortConfig {
            ring_size: Some(PORT_RING_SIZE),
            ..PortConfig::default()
        };
        let client = PortClient::open(socket, port, wanted)
            .or_else(|_| PortClient::open(socket, port, PortConfig::default()))
            .map_err(|e| BackendError::Switch {
                port: port.to_string(),
                socket: socket.display().to_string(),
                source: Box::new(e),
            })?;
        Ok(SwitchPort { client })
    }
}

impl PortIo for SwitchPort {
    #[inline]
    fn reserve(&mut self) -> Option<&mut [u8]> {
        self.client.reserve()
    }

    #[inline]
    fn commit(&mut self, len: usize) {
        self.client.commit(len);
    }

    fn publish(&mut self) -> usize {
        self.client.publish()
    }

    #[inline]
    fn peek(&mut self) -> Option<&[u8]> {
        self.client.peek().map(|frame| &*frame)
    }

    #[inline]
    fn consume(&mut self) {
        self.client.consume();
    }

    fn release_rx(&mut self) {
        self.client.release_rx();
    }

    fn kick_fd(&self) -> RawFd {
        self.client.kick_fd()
    }

    fn arm(&mut self, rx: bool, tx: bool) -> bool {
        self.client.arm(Interest { rx, tx })
    }

    fn disarm(&mut self) {
        self.client.disarm();
    }

    fn kicks_sent(&self) -> u64 {
        self.client.stats().kicks_sent
    }

    fn max_frame(&self) -> usize {
        self.client.max_frame()
    }
}
