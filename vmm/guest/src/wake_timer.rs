//! The LAPIC timer as a one-shot wake-up for idle waits (a tickless idle).
//!
//! The guest has no periodic tick: every interrupt costs an injection, a
//! handler and an EOI exit, and on nested paravirtual KVM that is tens of
//! microseconds of a host core (a 10 ms tick kept an idle VMM at ~4% of a
//! core). A waiting loop that idles asks for an interrupt no later than its
//! next deadline instead ([`wake_by`]), and only when no interrupt already
//! pending would come earlier: a loop that idles again and again towards
//! the same deadline arms the timer once.

use crate::apic;
use crate::tsc;
use core::sync::atomic::{AtomicU64, Ordering::SeqCst};

/// TSC value by which the armed one-shot fires; 0 while none is pending.
/// Set before the timer is armed and cleared by its handler, so that a
/// nonzero value always means an interrupt is coming.
static ARMED_BY: AtomicU64 = AtomicU64::new(0);

/// Makes sure a timer interrupt comes no later than about `tsc_value` (at
/// once if that is past): arms the one-shot unless the pending one fires
/// first. One LAPIC register write (an exit) when it arms.
pub fn wake_by(tsc_value: u64) {
    let armed = ARMED_BY.load(SeqCst);
    if armed != 0 && armed <= tsc_value {
        return;
    }
    let now = tsc::now();
    // Not 0: that value means "none pending".
    ARMED_BY.store(tsc_value.max(1), SeqCst);
    let ns = tsc::ticks_to_ns(tsc_value.saturating_sub(now));
    apic::timer_oneshot(count_for_ns(ns));
}

/// Called by the timer's interrupt handler: nothing is pending any more.
pub fn fired() {
    ARMED_BY.store(0, SeqCst);
}

/// The initial count that makes the one-shot fire after `ns` nanoseconds:
/// at least 1 (0 would stop the timer), at most the register's range
/// (about 68 s; a wait that long wakes early and arms again).
pub fn count_for_ns(ns: u64) -> u32 {
    let count = ns as u128 * apic::TIMER_COUNT_HZ as u128 / 1_000_000_000;
    count.clamp(1, u32::MAX as u128) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_never_zero_and_saturate() {
        assert_eq!(count_for_ns(0), 1);
        assert_eq!(count_for_ns(1), 1);
        // 62.5 MHz: 16 ns a count.
        assert_eq!(count_for_ns(1_000_000_000), 62_500_000);
        assert_eq!(count_for_ns(10_000_000), 625_000);
        assert_eq!(count_for_ns(u64::MAX), u32::MAX);
    }
}
