//! The daemon's clocks: a coarse one in seconds since it started, for
//! aging, monotonic nanoseconds for storm control and pktgen's stamps, and
//! wall-clock nanoseconds for capture timestamps.

/// Seconds since a fixed start.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start_ns: u64,
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Clock {
        Clock {
            start_ns: monotonic_ns(),
        }
    }

    /// Whole seconds since the start.
    #[inline]
    pub fn secs(&self) -> u32 {
        self.secs_at(monotonic_ns())
    }

    /// Whole seconds from the start to `ns` (a [`monotonic_ns`] reading
    /// the caller already has).
    #[inline]
    pub fn secs_at(&self, ns: u64) -> u32 {
        (ns.saturating_sub(self.start_ns) / 1_000_000_000) as u32
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
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// Wall-clock nanoseconds (`CLOCK_REALTIME`), the capture timestamps.
pub fn realtime_ns() -> u64 {
    clock_ns(libc::CLOCK_REALTIME)
}

/// Nanoseconds of the clock `id`.
#[inline]
fn clock_ns(id: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into a valid timespec.
    unsafe { libc::clock_gettime(id, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
