//! Time for the device model: the host's CLOCK_MONOTONIC in nanoseconds, and a
//! timerfd armed at absolute deadlines on that clock (the e1000 moderation
//! timers), so a deadline from the model goes to the kernel unchanged.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Nanoseconds of CLOCK_MONOTONIC.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec to a valid pointer;
    // CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// A non-blocking timerfd on CLOCK_MONOTONIC.
#[derive(Debug)]
pub struct DeadlineTimer {
    fd: OwnedFd,
}

impl DeadlineTimer {
    /// A disarmed timer.
    pub fn new() -> io::Result<DeadlineTimer> {
        // SAFETY: timerfd_create with valid flags; the result is checked.
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(DeadlineTimer { fd })
    }

    fn settime(&self, flags: i32, value: libc::itimerspec) -> io::Result<()> {
        // SAFETY: our timerfd, a valid itimerspec, no old value requested.
        let r = unsafe {
            libc::timerfd_settime(self.fd.as_raw_fd(), flags, &value, std::ptr::null_mut())
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn timespec(ns: u64) -> libc::timespec {
        libc::timespec {
            tv_sec: (ns / 1_000_000_000) as libc::time_t,
            tv_nsec: (ns % 1_000_000_000) as libc::c_long,
        }
    }

    /// Fires once at `deadline_ns` on [`monotonic_ns`]'s clock (at once if past).
    pub fn arm_at(&self, deadline_ns: u64) -> io::Result<()> {
        let value = libc::itimerspec {
            it_interval: Self::timespec(0),
            // An all-zero value would disarm: the earliest deadline is 1 ns.
            it_value: Self::timespec(deadline_ns.max(1)),
        };
        self.settime(libc::TFD_TIMER_ABSTIME, value)
    }

    /// Fires every `period`, first after one period.
    pub fn arm_periodic(&self, period: Duration) -> io::Result<()> {
        let ns = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX).max(1);
        let value = libc::itimerspec {
            it_interval: Self::timespec(ns),
            it_value: Self::timespec(ns),
        };
        self.settime(0, value)
    }

    /// Stops the timer.
    pub fn disarm(&self) -> io::Result<()> {
        let value = libc::itimerspec {
            it_interval: Self::timespec(0),
            it_value: Self::timespec(0),
        };
        self.settime(0, value)
    }

    /// Reads and resets the expiration count (0 if it has not fired).
    pub fn take_expirations(&self) -> u64 {
        let mut count: u64 = 0;
        // SAFETY: reading 8 bytes into a valid u64 from our non-blocking fd.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), (&mut count as *mut u64).cast(), 8) };
        if n == 8 {
            count
        } else {
            0
        }
    }

    /// The descriptor, for epoll.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_at_absolute_deadline() {
        let t = DeadlineTimer::new().unwrap();
        assert_eq!(t.take_expirations(), 0);
        let start = monotonic_ns();
        t.arm_at(start + 2_000_000).unwrap();
        let mut waited = 0;
        while t.take_expirations() == 0 {
            std::thread::sleep(Duration::from_micros(200));
            waited += 1;
            assert!(waited < 10_000, "timer never fired");
        }
        assert!(monotonic_ns() >= start + 2_000_000);
        t.arm_at(0).unwrap();
        std::thread::sleep(Duration::from_millis(1));
        assert_eq!(t.take_expirations(), 1, "a past deadline fires at once");
        t.arm_at(monotonic_ns() + 1_000_000_000).unwrap();
        t.disarm().unwrap();
    }
}
