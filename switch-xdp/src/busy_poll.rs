//! Busy polling of an AF_XDP socket: `SO_PREFER_BUSY_POLL`, `SO_BUSY_POLL`
//! and `SO_BUSY_POLL_BUDGET` on the socket, then a non-blocking `recvfrom`
//! per receive batch ([`drive`]) in which the kernel runs the queue's NAPI
//! poll on the calling thread (up to the budget) instead of in softirq.
//!
//! Preferring busy poll only keeps the softirq away when the device defers
//! its interrupts: `napi_defer_hard_irqs` and `gro_flush_timeout` in
//! `/sys/class/net/IFACE/` (e.g. 2 and 200000). These are system settings of
//! the device, which the caller leaves to the administrator.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use thiserror::Error;

/// Microseconds `SO_BUSY_POLL` lets a blocking call spin (the non-blocking
/// [`drive`] polls once whatever it is; it must only be non-zero).
pub const BUSY_POLL_USECS: u32 = 20;
/// The largest NAPI budget the kernel accepts (`U16_MAX`).
pub const MAX_BUDGET: u32 = u16::MAX as u32;

/// Why busy polling could not be turned on.
#[derive(Debug, Error)]
pub enum BusyPollError {
    /// The budget is out of range.
    #[error("busy-poll budget {0}: 1 to {MAX_BUDGET} frames")]
    Budget(u32),
    /// The kernel refused an option (before Linux 5.11 the last two do not
    /// exist; raising them needs CAP_NET_ADMIN).
    #[error("setsockopt {option}")]
    Option {
        /// The option.
        option: &'static str,
        /// Why.
        source: io::Error,
    },
}

fn set(
    fd: BorrowedFd<'_>,
    option: &'static str,
    name: i32,
    value: u32,
) -> Result<(), BusyPollError> {
    crate::sockopt::set(
        fd.as_raw_fd(),
        libc::SOL_SOCKET,
        name,
        &(value as libc::c_int),
    )
    .map_err(|source| BusyPollError::Option { option, source })
}

/// Prefers busy polling on `fd` with `budget` frames per poll.
pub fn enable(fd: BorrowedFd<'_>, budget: u32) -> Result<(), BusyPollError> {
    if budget == 0 || budget > MAX_BUDGET {
        return Err(BusyPollError::Budget(budget));
    }
    set(fd, "SO_PREFER_BUSY_POLL", libc::SO_PREFER_BUSY_POLL, 1)?;
    set(fd, "SO_BUSY_POLL", libc::SO_BUSY_POLL, BUSY_POLL_USECS)?;
    set(fd, "SO_BUSY_POLL_BUDGET", libc::SO_BUSY_POLL_BUDGET, budget)
}

/// Busy-polls the socket's queue once: a non-blocking zero-length
/// `recvfrom`, in which the kernel runs the NAPI poll of the queue the
/// socket last received from. Errors other than "try again" are returned.
pub fn drive(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: a zero-length recvfrom into no buffer and no address on an
    // open socket; the kernel writes nothing.
    let ret = unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            std::ptr::null_mut(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    if ret < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::ENOBUFS) => Ok(()),
            _ => Err(e),
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::fd::{AsFd, FromRawFd, OwnedFd};

    use super::*;

    fn udp_socket() -> OwnedFd {
        // SAFETY: plain socket(2), checked below.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        assert!(fd >= 0);
        // SAFETY: a new descriptor nothing else owns.
        unsafe { OwnedFd::from_raw_fd(fd) }
    }

    #[test]
    fn budgets_out_of_range_are_refused_before_the_kernel() {
        let s = udp_socket();
        for bad in [0, MAX_BUDGET + 1] {
            let e = enable(s.as_fd(), bad).unwrap_err();
            assert!(matches!(e, BusyPollError::Budget(b) if b == bad), "{e}");
            assert!(e.to_string().contains("1 to 65535"), "{e}");
        }
    }

    #[test]
    fn the_readable_options_read_back_as_set() {
        let s = udp_socket();
        if let Err(e) = enable(s.as_fd(), 64) {
            // Not root (raising the options needs CAP_NET_ADMIN).
            eprintln!("skipped: {e}");
            return;
        }
        let get = |name: i32| {
            let mut value: libc::c_int = -1;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: getsockopt writes at most `len` bytes into `value`.
            let ret = unsafe {
                libc::getsockopt(
                    s.as_raw_fd(),
                    libc::SOL_SOCKET,
                    name,
                    (&mut value as *mut libc::c_int).cast(),
                    &mut len,
                )
            };
            assert_eq!(ret, 0, "{}", io::Error::last_os_error());
            value
        };
        assert_eq!(get(libc::SO_PREFER_BUSY_POLL), 1);
        assert_eq!(get(libc::SO_BUSY_POLL), BUSY_POLL_USECS as i32);
        // Linux has no getsockopt for SO_BUSY_POLL_BUDGET.
        drive(s.as_fd()).unwrap();
    }
}
