//! The daemon's clocks: a coarse one in seconds since it started, for
//! aging, and monotonic nanoseconds for storm control and pktgen's stamps.

use std::time::Instant;

/// Seconds since a fixed start.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Clock {
        Clock {
            start: Instant::now(),
        }
    }

    /// Whole seconds since the start.
    #[inline]
    pub fn secs(&self) -> u32 {
        self.start.elapsed().as_secs() as u32
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// Monotonic nanoseconds (`CLOCK_MONOTONIC`), for storm control and the
/// timestamps pktgen writes into frames.
#[inline]
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
