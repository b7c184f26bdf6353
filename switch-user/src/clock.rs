//! The daemon's coarse clock, in seconds since it started, for aging.

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
