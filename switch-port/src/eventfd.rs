//! Kicks: a non-blocking eventfd, written to wake the other side and drained
//! by the side that sleeps on it.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// A non-blocking, close-on-exec eventfd.
#[derive(Debug)]
pub struct EventFd(OwnedFd);

impl EventFd {
    /// Creates a fresh eventfd.
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: eventfd with valid flags; the result is checked.
        let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh fd we own.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(raw) }))
    }

    /// Wraps an eventfd received from the other side.
    pub fn from_owned(fd: OwnedFd) -> EventFd {
        EventFd(fd)
    }

    /// Adds one to the counter, waking a sleeper.
    #[inline]
    pub fn signal(&self) {
        // A write to our own eventfd cannot fail but for a full counter,
        // which try_signal already counts as success.
        let _ = self.try_signal();
    }

    /// [`EventFd::signal`] that reports what went wrong: a full counter on
    /// a non-blocking descriptor (`EAGAIN`) already means a pending wake-up
    /// and is success; any other failure is returned, `EINTR` among them
    /// when a signal interrupted a write the peer made block (see
    /// `switch-user`'s kick watchdog).
    #[inline]
    pub fn try_signal(&self) -> io::Result<()> {
        let one: u64 = 1;
        // SAFETY: writing 8 bytes from a valid u64 to our fd.
        let n = unsafe { libc::write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8) };
        if n == 8 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::WouldBlock {
            Ok(())
        } else {
            Err(err)
        }
    }

    /// Resets the counter; returns how many signals were pending.
    #[inline]
    pub fn drain(&self) -> u64 {
        let mut value: u64 = 0;
        // SAFETY: reading 8 bytes into a valid u64 from our non-blocking fd.
        let n = unsafe { libc::read(self.0.as_raw_fd(), (&mut value as *mut u64).cast(), 8) };
        if n == 8 {
            value
        } else {
            0
        }
    }

    /// [`EventFd::drain`] of an eventfd shared with an untrusted peer (the
    /// daemon's side of a client's kick): never blocks, even when the peer
    /// (which shares the open file and so its flags) cleared O_NONBLOCK and
    /// drained the counter first, because the read asks for RWF_NOWAIT
    /// itself. Uses preadv2(2): a client under a seccomp filter keeps
    /// [`EventFd::drain`].
    #[inline]
    pub fn drain_shared(&self) -> u64 {
        let mut value: u64 = 0;
        let iov = libc::iovec {
            iov_base: (&mut value as *mut u64).cast(),
            iov_len: 8,
        };
        // SAFETY: one iovec over a valid u64; offset -1 reads at the current
        // position, as read(2) does.
        let n = unsafe { libc::preadv2(self.0.as_raw_fd(), &iov, 1, -1, libc::RWF_NOWAIT) };
        if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EOPNOTSUPP) {
            // A kernel without RWF_NOWAIT for eventfds.
            return self.drain();
        }
        if n == 8 {
            value
        } else {
            0
        }
    }

    /// Waits until signalled or `timeout_ms` passes (-1: forever). Returns
    /// true when signalled (the counter is left for `drain`).
    pub fn wait(&self, timeout_ms: i32) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        loop {
            // SAFETY: poll on one valid pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
            if n >= 0 {
                return Ok(n > 0);
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }

    /// The raw fd, for epoll.
    pub fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// Duplicates the fd (for sending it to a client).
    pub fn try_clone(&self) -> io::Result<EventFd> {
        Ok(EventFd(self.0.try_clone()?))
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer that shares the eventfd clears O_NONBLOCK on it: draining an
    /// empty counter still returns at once.
    #[test]
    fn draining_a_shared_eventfd_never_blocks_even_when_the_peer_clears_nonblock() {
        let fd = EventFd::new().unwrap();
        let peer = fd.try_clone().unwrap();
        // SAFETY: F_SETFL on a valid fd we own.
        assert_eq!(unsafe { libc::fcntl(peer.raw(), libc::F_SETFL, 0) }, 0);
        assert_eq!(fd.drain_shared(), 0);
        fd.signal();
        fd.signal();
        assert_eq!(fd.drain_shared(), 2);
        assert_eq!(fd.drain_shared(), 0);
    }
}
