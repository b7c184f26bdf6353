//! Port security: what a port may send.
//!
//! - A port *locked* to a MAC address (`--mac`) may only send frames with
//!   that source address; others are dropped and counted as `spoofed`. The
//!   address is also pinned in the learning table, so no other port can
//!   take it (see [`super::learning`]).
//! - Storm control: a token bucket caps the frames a port may flood
//!   (broadcast, multicast, unknown unicast) per second; the excess is
//!   dropped and counted as `drop_storm`. The bucket holds a tenth of a
//!   second's worth, so short bursts pass.
//!
//! The forwarding thread that reads a port is the only one that takes its
//! tokens, so the bucket is plain relaxed atomics.

use std::sync::atomic::{AtomicU64, Ordering};

use switch_port::mac::MacAddr;

const NO_MAC: u64 = u64::MAX;
/// Token units per frame (tokens are kept in nano-frames).
const UNIT: u64 = 1_000_000_000;

/// A port's security settings and storm-control state.
#[derive(Debug)]
pub struct PortSecurity {
    mac: AtomicU64,
    storm_pps: AtomicU64,
    tokens: AtomicU64,
    last_ns: AtomicU64,
}

impl Default for PortSecurity {
    fn default() -> Self {
        PortSecurity {
            mac: AtomicU64::new(NO_MAC),
            storm_pps: AtomicU64::new(0),
            tokens: AtomicU64::new(0),
            last_ns: AtomicU64::new(0),
        }
    }
}

impl PortSecurity {
    /// Locks the port to `mac` (or unlocks it with `None`).
    pub fn set_mac(&self, mac: Option<MacAddr>) {
        self.mac
            .store(mac.map_or(NO_MAC, |m| m.to_u64()), Ordering::Release);
    }

    /// The address the port is locked to, if any.
    #[inline]
    pub fn mac(&self) -> Option<MacAddr> {
        match self.mac.load(Ordering::Acquire) {
            NO_MAC => None,
            m => Some(MacAddr::from_u64(m)),
        }
    }

    /// Caps flooded frames at `pps` a second (0: no cap).
    pub fn set_storm_pps(&self, pps: u64) {
        self.storm_pps.store(pps, Ordering::Relaxed);
        self.tokens.store(Self::capacity(pps), Ordering::Relaxed);
    }

    /// The flood cap in frames a second (0: none).
    pub fn storm_pps(&self) -> u64 {
        self.storm_pps.load(Ordering::Relaxed)
    }

    fn capacity(pps: u64) -> u64 {
        (pps / 10).max(1).saturating_mul(UNIT)
    }

    /// Whether the storm cap is on (then call [`PortSecurity::admit_flood`]).
    #[inline]
    pub fn storm_limited(&self) -> bool {
        self.storm_pps.load(Ordering::Relaxed) != 0
    }

    /// Takes a token for one flooded frame at monotonic time `now_ns`;
    /// false when the port is over its cap. Called by the port's forwarding
    /// thread (by one thread per queue of a multi-queue NIC port, whose
    /// unsynchronised updates make its cap approximate, never unsafe).
    #[inline]
    pub fn admit_flood(&self, now_ns: u64) -> bool {
        let pps = self.storm_pps.load(Ordering::Relaxed);
        if pps == 0 {
            return true;
        }
        let last = self.last_ns.load(Ordering::Relaxed);
        let mut tokens = self.tokens.load(Ordering::Relaxed);
        if now_ns > last {
            // At most a second of refill: no overflow, and the bucket is
            // full after a second anyway.
            let elapsed = (now_ns - last).min(UNIT);
            tokens = tokens
                .saturating_add(elapsed.saturating_mul(pps))
                .min(Self::capacity(pps));
            self.last_ns.store(now_ns, Ordering::Relaxed);
        }
        let admitted = tokens >= UNIT;
        if admitted {
            tokens -= UNIT;
        }
        self.tokens.store(tokens, Ordering::Relaxed);
        admitted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_is_set_and_cleared() {
        let s = PortSecurity::default();
        assert_eq!(s.mac(), None);
        let m = MacAddr::local(7);
        s.set_mac(Some(m));
        assert_eq!(s.mac(), Some(m));
        s.set_mac(None);
        assert_eq!(s.mac(), None);
    }

    #[test]
    fn the_storm_bucket_caps_floods_per_second() {
        let s = PortSecurity::default();
        assert!(s.admit_flood(0), "no cap by default");
        s.set_storm_pps(1000);
        let start = 5 * UNIT;
        // A full bucket: a tenth of a second's worth passes at once.
        let burst = (0..1000).filter(|_| s.admit_flood(start)).count();
        assert_eq!(burst, 100);
        // Then one frame a millisecond.
        assert!(!s.admit_flood(start + 500_000));
        assert!(s.admit_flood(start + 1_000_000));
        assert!(!s.admit_flood(start + 1_000_000));
        // Over one second at 10 frames a millisecond: about 1000 pass.
        let mut passed = 0;
        for i in 1..=10_000u64 {
            if s.admit_flood(start + 1_000_000 + i * 100_000) {
                passed += 1;
            }
        }
        assert!((999..=1001).contains(&passed), "{passed}");
        // A long pause refills to the bucket's size, no more.
        let later = start + 100 * UNIT;
        assert_eq!((0..1000).filter(|_| s.admit_flood(later)).count(), 100);
    }
}
