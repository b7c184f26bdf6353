//! Time from the TSC (readable at CPL3: CR4.TSD is clear). Its frequency
//! comes from the `tsc_khz=` argument; without it the guest measures it
//! against PIT channel 2 (QEMU has a PIT; our VMM always passes `tsc_khz`).

use crate::port::{inb, outb};
use core::sync::atomic::{AtomicU64, Ordering};

static KHZ: AtomicU64 = AtomicU64::new(1_000_000);

/// The TSC now.
#[inline]
pub fn now() -> u64 {
    // SAFETY: RDTSC has no side effects and is allowed at CPL3 (CR4.TSD=0).
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Sets the TSC frequency in kHz (ignored if 0).
pub fn set_khz(khz: u64) {
    if khz != 0 {
        KHZ.store(khz, Ordering::Relaxed);
    }
}

/// The TSC frequency in kHz.
pub fn khz() -> u64 {
    KHZ.load(Ordering::Relaxed)
}

/// Converts TSC ticks to nanoseconds.
#[inline]
pub fn ticks_to_ns(ticks: u64) -> u64 {
    ((ticks as u128 * 1_000_000) / khz() as u128) as u64
}

/// Converts TSC ticks to seconds.
pub fn ticks_to_secs(ticks: u64) -> f64 {
    ticks as f64 / (khz() as f64 * 1000.0)
}

/// Converts microseconds to TSC ticks.
#[inline]
pub fn us_to_ticks(us: u64) -> u64 {
    ((us as u128 * khz() as u128) / 1000) as u64
}

/// Converts milliseconds to TSC ticks.
#[inline]
pub fn ms_to_ticks(ms: u64) -> u64 {
    ms.saturating_mul(khz())
}

/// The TSC as nanoseconds since it started (the frames' timestamp clock).
#[inline]
pub fn now_ns() -> u64 {
    ticks_to_ns(now())
}

/// A point in time after which something is late.
#[derive(Clone, Copy, Debug)]
pub struct Deadline(u64);

impl Deadline {
    /// `ticks` from now.
    pub fn after_ticks(ticks: u64) -> Deadline {
        Deadline(now().saturating_add(ticks))
    }

    /// `ms` milliseconds from now.
    pub fn after_ms(ms: u64) -> Deadline {
        Deadline::after_ticks(ms_to_ticks(ms))
    }

    /// Never.
    pub const fn never() -> Deadline {
        Deadline(u64::MAX)
    }

    /// True once the deadline is past.
    #[inline]
    pub fn passed(&self) -> bool {
        now() >= self.0
    }

    /// The TSC value of the deadline.
    pub fn tsc(&self) -> u64 {
        self.0
    }
}

/// Busy-waits for `us` microseconds (no exits).
pub fn spin_us(us: u64) {
    let end = now() + us_to_ticks(us);
    while now() < end {
        core::hint::spin_loop();
    }
}

const PIT_HZ: u64 = 1_193_182;

/// Measures the TSC frequency against PIT channel 2 over 50 ms; `None` if
/// there is no PIT or the result is implausible.
pub fn calibrate_with_pit() -> Option<u64> {
    const COUNT: u64 = PIT_HZ / 20;
    // SAFETY: ports 0x42/0x43 (PIT channel 2) and 0x61 (its gate); nothing
    // else in the guest uses them.
    unsafe {
        let gate = inb(0x61);
        outb(0x61, (gate & !0x02) | 0x01); // gate on, speaker off
        outb(0x43, 0xB0); // channel 2, lobyte/hibyte, mode 0, binary
        outb(0x42, (COUNT & 0xFF) as u8);
        outb(0x42, (COUNT >> 8) as u8);
        let start = now();
        let mut done = false;
        // Each read is an exit (~20 us), so 100k reads bound this to ~2 s.
        for _ in 0..100_000 {
            if inb(0x61) & 0x20 != 0 {
                done = true;
                break;
            }
        }
        let ticks = now() - start;
        outb(0x61, gate);
        if !done {
            return None;
        }
        let khz = ticks * PIT_HZ / (COUNT * 1000);
        (100_000..=10_000_000).contains(&khz).then_some(khz)
    }
}
