//! The L2 learning table: a set-associative hash of MAC addresses to ports,
//! with aging and a size limit, lock-free so that several forwarding threads
//! learn and look up at once.
//!
//! Each bucket holds four entries in one cache line. An entry is one atomic
//! word `valid | port << 48 | mac`, so an address and its port always change
//! together; the last-seen time sits beside it and is only written when the
//! second changes. Races between threads learning the same address settle on
//! one of the writers, which is what a hardware bridge does too.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use switch_port::mac::MacAddr;
use switch_port::protocol::LookupStats;

use super::lookup::{Destination, EthHeader, FdbEntry, Lookup, PortId};

const WAYS: usize = 4;
const VALID: u64 = 1 << 63;
const MAC_MASK: u64 = (1 << 48) - 1;
const PORT_SHIFT: u32 = 48;
const PORT_MASK: u64 = 0x7FFF;

/// Default number of addresses the table holds.
pub const DEFAULT_CAPACITY: usize = 4096;
/// Default time after which an address not seen again is forgotten.
pub const DEFAULT_MAX_AGE_SECS: u32 = 300;

#[repr(align(64))]
#[derive(Default)]
struct Bucket {
    keys: [AtomicU64; WAYS],
    seen: [AtomicU32; WAYS],
}

/// The learning bridge's forwarding table.
pub struct LearningTable {
    buckets: Box<[Bucket]>,
    mask: usize,
    capacity: usize,
    max_age: u32,
    live: AtomicU64,
    learned: AtomicU64,
    moved: AtomicU64,
    refused: AtomicU64,
    aged: AtomicU64,
}

impl LearningTable {
    /// A table for `capacity` addresses (at least 4) that forgets an address
    /// `max_age_secs` after it was last seen.
    pub fn new(capacity: usize, max_age_secs: u32) -> LearningTable {
        let capacity = capacity.max(WAYS);
        // Twice as many slots as the limit keeps bucket collisions rare.
        let buckets = (capacity * 2).div_ceil(WAYS).next_power_of_two();
        LearningTable {
            buckets: (0..buckets).map(|_| Bucket::default()).collect(),
            mask: buckets - 1,
            capacity,
            max_age: max_age_secs,
            live: AtomicU64::new(0),
            learned: AtomicU64::new(0),
            moved: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            aged: AtomicU64::new(0),
        }
    }

    #[inline]
    fn bucket(&self, mac: u64) -> &Bucket {
        let hash = mac.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        &self.buckets[hash as usize & self.mask]
    }

    #[inline]
    fn expired(&self, seen: u32, now: u32) -> bool {
        now.wrapping_sub(seen) > self.max_age
    }

    /// The port `mac` was last seen on, if it is known and fresh.
    #[inline]
    pub fn find(&self, mac: MacAddr, now: u32) -> Option<PortId> {
        let mac = mac.to_u64();
        let bucket = self.bucket(mac);
        for way in 0..WAYS {
            let key = bucket.keys[way].load(Ordering::Acquire);
            if key & VALID != 0 && key & MAC_MASK == mac {
                if self.expired(bucket.seen[way].load(Ordering::Relaxed), now) {
                    return None;
                }
                return Some(((key >> PORT_SHIFT) & PORT_MASK) as PortId);
            }
        }
        None
    }

    /// Records that `mac` was seen on `port` at `now`.
    #[inline]
    pub fn learn(&self, mac: MacAddr, port: PortId, now: u32) {
        if mac.is_multicast() || mac.is_zero() {
            return;
        }
        let mac = mac.to_u64();
        let wanted = VALID | (port as u64 & PORT_MASK) << PORT_SHIFT | mac;
        let bucket = self.bucket(mac);
        for way in 0..WAYS {
            let key = bucket.keys[way].load(Ordering::Acquire);
            if key & VALID != 0 && key & MAC_MASK == mac {
                if key != wanted
                    && bucket.keys[way]
                        .compare_exchange(key, wanted, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                {
                    self.moved.fetch_add(1, Ordering::Relaxed);
                }
                if bucket.seen[way].load(Ordering::Relaxed) != now {
                    bucket.seen[way].store(now, Ordering::Relaxed);
                }
                return;
            }
        }
        self.insert(bucket, wanted, now);
    }

    #[cold]
    fn insert(&self, bucket: &Bucket, wanted: u64, now: u32) {
        for way in 0..WAYS {
            let key = bucket.keys[way].load(Ordering::Acquire);
            let free = key & VALID == 0;
            let stale = !free && self.expired(bucket.seen[way].load(Ordering::Relaxed), now);
            if !free && !stale {
                continue;
            }
            if free && self.live.load(Ordering::Relaxed) >= self.capacity as u64 {
                break;
            }
            // Publish the time first so a racing reader never sees the new
            // key with the old, expired time.
            bucket.seen[way].store(now, Ordering::Relaxed);
            if bucket.keys[way]
                .compare_exchange(key, wanted, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                if free {
                    self.live.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.aged.fetch_add(1, Ordering::Relaxed);
                }
                self.learned.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    fn remove_where(&self, mut condition: impl FnMut(u64, u32) -> bool) -> u64 {
        let mut removed = 0;
        for bucket in self.buckets.iter() {
            for way in 0..WAYS {
                let key = bucket.keys[way].load(Ordering::Acquire);
                if key & VALID != 0
                    && condition(key, bucket.seen[way].load(Ordering::Relaxed))
                    && bucket.keys[way]
                        .compare_exchange(key, 0, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                {
                    self.live.fetch_sub(1, Ordering::Relaxed);
                    removed += 1;
                }
            }
        }
        removed
    }
}

impl Lookup for LearningTable {
    #[inline]
    fn lookup(&self, header: &EthHeader, source: PortId, now: u32) -> Destination {
        self.learn(header.src, source, now);
        if header.dst.is_multicast() {
            return Destination::Flood;
        }
        match self.find(header.dst, now) {
            Some(port) => Destination::Port(port),
            None => Destination::Flood,
        }
    }

    fn forget_port(&self, port: PortId) {
        self.remove_where(|key, _| ((key >> PORT_SHIFT) & PORT_MASK) as PortId == port);
    }

    fn age(&self, now: u32) {
        let aged = self.remove_where(|_, seen| self.expired(seen, now));
        self.aged.fetch_add(aged, Ordering::Relaxed);
    }

    fn entries(&self, now: u32) -> Vec<FdbEntry> {
        let mut out = Vec::new();
        for bucket in self.buckets.iter() {
            for way in 0..WAYS {
                let key = bucket.keys[way].load(Ordering::Acquire);
                let seen = bucket.seen[way].load(Ordering::Relaxed);
                if key & VALID != 0 && !self.expired(seen, now) {
                    out.push(FdbEntry {
                        mac: MacAddr::from_u64(key & MAC_MASK),
                        port: ((key >> PORT_SHIFT) & PORT_MASK) as PortId,
                        age_secs: now.wrapping_sub(seen),
                    });
                }
            }
        }
        out.sort_by_key(|e| e.mac);
        out
    }

    fn stats(&self) -> LookupStats {
        LookupStats {
            entries: self.live.load(Ordering::Relaxed),
            capacity: self.capacity as u64,
            learned: self.learned.load(Ordering::Relaxed),
            moved: self.moved.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            aged: self.aged.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u32) -> MacAddr {
        MacAddr::local(n)
    }

    fn hdr(dst: MacAddr, src: MacAddr) -> EthHeader {
        EthHeader {
            dst,
            src,
            ethertype: 0x0800,
        }
    }

    #[test]
    fn learns_moves_and_floods() {
        let t = LearningTable::new(64, 300);
        assert_eq!(t.lookup(&hdr(mac(2), mac(1)), 1, 0), Destination::Flood);
        assert_eq!(t.lookup(&hdr(mac(1), mac(2)), 2, 0), Destination::Port(1));
        assert_eq!(t.lookup(&hdr(mac(2), mac(1)), 1, 0), Destination::Port(2));
        // mac(1) moves to port 3.
        t.lookup(&hdr(MacAddr::BROADCAST, mac(1)), 3, 1);
        assert_eq!(t.find(mac(1), 1), Some(3));
        assert_eq!(t.stats().moved, 1);
        assert_eq!(
            t.lookup(&hdr(MacAddr::BROADCAST, mac(2)), 2, 1),
            Destination::Flood
        );
    }

    #[test]
    fn never_learns_multicast_sources() {
        let t = LearningTable::new(64, 300);
        t.learn("01:00:5e:00:00:01".parse().unwrap(), 1, 0);
        t.learn(MacAddr::BROADCAST, 1, 0);
        t.learn(MacAddr([0; 6]), 1, 0);
        assert_eq!(t.stats().entries, 0);
    }

    #[test]
    fn ages_out() {
        let t = LearningTable::new(64, 10);
        t.learn(mac(1), 1, 100);
        assert_eq!(t.find(mac(1), 110), Some(1));
        assert_eq!(t.find(mac(1), 111), None);
        t.age(111);
        assert_eq!(t.stats().entries, 0);
        assert_eq!(t.stats().aged, 1);
    }

    #[test]
    fn refuses_past_capacity_and_counts() {
        let t = LearningTable::new(16, 300);
        for n in 0..1000 {
            t.learn(mac(n), 1, 0);
        }
        let s = t.stats();
        assert_eq!(s.entries, 16);
        assert_eq!(s.refused, 1000 - 16);
        assert_eq!(t.entries(0).len(), 16);
    }

    #[test]
    fn forget_port_removes_its_entries() {
        let t = LearningTable::new(64, 300);
        t.learn(mac(1), 1, 0);
        t.learn(mac(2), 2, 0);
        t.forget_port(1);
        assert_eq!(t.find(mac(1), 0), None);
        assert_eq!(t.find(mac(2), 0), Some(2));
        assert_eq!(t.stats().entries, 1);
    }
}
