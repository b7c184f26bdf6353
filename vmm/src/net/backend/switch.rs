//! A vswitch port as the e1000's backend: the switch's client library's
//! [`PortClient`] is a [`Port`] as it is; this only opens it.

use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

use switch_port::client::{OffloadFds, OpenError};
use switch_port::control::client::ClientError;
use switch_port::mac::MacAddr;
use switch_port::protocol::ErrorCode;
use switch_port::{Interest, PortClient, PortConfig};

use super::{BackendError, Port};
use crate::e1000::offload::{HandBack, Handover};
use crate::net::offload::OffloadError;

/// Slots per ring of the VM's switch port: the switch drops what does not
/// fit, and a VM's threads get the CPU in slices of a millisecond or more on
/// a busy 2-core host (at 2 Mpps, 2000 frames), so the port buffers as much
/// as the guest's own 4096-descriptor rings.
pub const PORT_RING_SIZE: u32 = 4096;

/// Connects to the daemon at `socket` and opens `port` (`vale0:vm1`), asking
/// for [`PORT_RING_SIZE`] slots per ring when it creates the port; a port
/// that already exists with other sizes is opened as it is. The port is
/// locked to the NIC's `mac`: the switch drops frames the guest sends with
/// another source address, and no other port may use this one.
pub fn open(socket: &Path, port: &str, mac: [u8; 6]) -> Result<PortClient, BackendError> {
    let wanted = PortConfig {
        ring_size: Some(PORT_RING_SIZE),
        mac: Some(MacAddr(mac)),
        ..PortConfig::default()
    };
    PortClient::open(socket, port, wanted)
        .or_else(|e| {
            // Only a refusal of the sizes is worth a second request; a
            // daemon that is absent, silent or refusing for another reason
            // would only make the VMM wait twice before saying so.
            if !is_config_refusal(&e) {
                return Err(e);
            }
            let as_it_is = PortConfig {
                mac: Some(MacAddr(mac)),
                ..PortConfig::default()
            };
            PortClient::open(socket, port, as_it_is)
        })
        .map_err(|e| BackendError::Switch {
            port: port.to_string(),
            socket: socket.display().to_string(),
            source: Box::new(e),
        })
}

/// Whether the daemon refused the port's configuration (an existing port
/// with other ring or buffer sizes).
fn is_config_refusal(e: &OpenError) -> bool {
    matches!(
        e,
        OpenError::Control(ClientError::Refused {
            code: ErrorCode::BadConfig,
            ..
        })
    )
}

impl Port for PortClient {
    #[inline]
    fn reserve(&mut self) -> Option<&mut [u8]> {
        PortClient::reserve(self)
    }

    #[inline]
    fn commit(&mut self, len: usize) {
        PortClient::commit(self, len);
    }

    fn publish(&mut self) -> usize {
        PortClient::publish(self)
    }

    #[inline]
    fn peek(&mut self) -> Option<&[u8]> {
        PortClient::peek(self).map(|frame| &*frame)
    }

    #[inline]
    fn consume(&mut self) {
        PortClient::consume(self);
    }

    fn release_rx(&mut self) {
        PortClient::release_rx(self);
    }

    fn kick_fd(&self) -> RawFd {
        PortClient::kick_fd(self)
    }

    fn arm(&mut self, rx: bool, tx: bool) -> bool {
        PortClient::arm(self, Interest { rx, tx })
    }

    fn disarm(&mut self) {
        PortClient::disarm(self);
    }

    fn kicks_sent(&self) -> u64 {
        self.stats().kicks_sent
    }

    fn max_frame(&self) -> usize {
        PortClient::max_frame(self)
    }

    fn control_fd(&mut self) -> Option<RawFd> {
        Some(self.connection().stream().as_raw_fd())
    }

    fn can_offload(&self) -> bool {
        true
    }

    fn offload(
        &mut self,
        memory_size: u64,
        handover: &Handover,
        fds: OffloadFds,
    ) -> Result<(), OffloadError> {
        Ok(PortClient::offload(self, memory_size, handover, fds)?)
    }

    fn reclaim(&mut self) -> Result<HandBack, OffloadError> {
        Ok(PortClient::reclaim(self)?)
    }

    fn disconnect(&mut self) {
        // The link watcher (or the I/O thread, while offloaded) sees the end.
        let _ = self
            .connection()
            .stream()
            .shutdown(std::net::Shutdown::Both);
    }
}
