//! The four descriptors of an `offload_port` request, checked: the guest
//! memory's memfd and three eventfds (the guest's kick, the receive and
//! the transmit call), in the protocol's order.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use switch_port::eventfd::EventFd;
use switch_port::protocol::OFFLOAD_FDS;

/// The descriptors of an offload request.
#[derive(Debug)]
pub struct HandoverFds {
    /// The guest memory's memfd (checked when mapped).
    pub memory: OwnedFd,
    /// Signalled by the guest's TDT write: the forwarding thread sleeps on it.
    pub kick: EventFd,
    /// Written when the guest asked for a receive interrupt.
    pub rx_call: EventFd,
    /// Written when the guest asked for a transmit interrupt (and when the
    /// guest left CSB mode, so the VMM takes the data path back).
    pub tx_call: EventFd,
}

/// The descriptors are not what an offload request carries.
#[derive(Debug, thiserror::Error)]
pub enum HandoverFdsError {
    /// Not [`OFFLOAD_FDS`] of them.
    #[error("{0} file descriptors attached, an offload carries {OFFLOAD_FDS}")]
    Count(usize),
    /// One that must be an eventfd is not.
    #[error("the {0} fd is not an eventfd")]
    NotEventFd(&'static str),
    /// Making it non-blocking failed.
    #[error("cannot make the {0} eventfd non-blocking")]
    Flags(&'static str, #[source] io::Error),
}

/// Whether `fd` is an eventfd (its `/proc/self/fd` link names one).
fn is_eventfd(fd: &OwnedFd) -> bool {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .is_ok_and(|target| target.as_os_str() == "anon_inode:[eventfd]")
}

/// Checks that `fd` is an eventfd and makes it non-blocking: the
/// forwarding threads write and drain it and must never block on it. (The
/// flag is the open file's, shared with the VMM, which uses its ends
/// non-blocking too.)
fn eventfd(fd: OwnedFd, role: &'static str) -> Result<EventFd, HandoverFdsError> {
    if !is_eventfd(&fd) {
        return Err(HandoverFdsError::NotEventFd(role));
    }
    // SAFETY: fcntl F_GETFL / F_SETFL on an fd we own.
    let set = unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        flags >= 0 && libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) == 0
    };
    if !set {
        return Err(HandoverFdsError::Flags(role, io::Error::last_os_error()));
    }
    Ok(EventFd::from_owned(fd))
}

impl HandoverFds {
    /// Takes the descriptors of a request in the protocol's order, checking
    /// their number and that the last three are eventfds.
    pub fn split(fds: Vec<OwnedFd>) -> Result<HandoverFds, HandoverFdsError> {
        let count = fds.len();
        let Ok([memory, kick, rx_call, tx_call]) = <[OwnedFd; OFFLOAD_FDS]>::try_from(fds) else {
            return Err(HandoverFdsError::Count(count));
        };
        Ok(HandoverFds {
            memory,
            kick: eventfd(kick, "kick")?,
            rx_call: eventfd(rx_call, "receive call")?,
            tx_call: eventfd(tx_call, "transmit call")?,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::vm_port::guest_memory::sealed_memfd;

    pub(crate) fn efd() -> OwnedFd {
        use std::os::fd::AsFd;
        let e = EventFd::new().unwrap();
        e.as_fd().try_clone_to_owned().unwrap()
    }

    #[test]
    fn takes_a_memfd_and_three_eventfds_in_order() {
        let fds = vec![sealed_memfd(4096, libc::F_SEAL_SHRINK), efd(), efd(), efd()];
        let split = HandoverFds::split(fds).unwrap();
        split.tx_call.signal();
        assert_eq!(split.tx_call.drain(), 1);
        assert_eq!(split.kick.drain(), 0, "non-blocking: nothing pending");
    }

    #[test]
    fn refuses_other_counts_and_kinds() {
        assert!(matches!(
            HandoverFds::split(vec![efd(), efd(), efd()]),
            Err(HandoverFdsError::Count(3))
        ));
        let memfd_as_kick = vec![
            sealed_memfd(4096, libc::F_SEAL_SHRINK),
            sealed_memfd(4096, libc::F_SEAL_SHRINK),
            efd(),
            efd(),
        ];
        assert!(matches!(
            HandoverFds::split(memfd_as_kick),
            Err(HandoverFdsError::NotEventFd("kick"))
        ));
    }
}
