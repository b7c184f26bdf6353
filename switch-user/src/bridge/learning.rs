//! The L2 learning table: a set-associative hash of MAC addresses to ports,
//! with aging and a size limit, lock-free so that several forwarding threads
//! learn and look up at once.
//!
//! Each bucket holds four entries in one cache line. An entry is one atomic
//! word `valid | port << 48 | mac`, so an address and its port always change
//! together; the last-seen time sits beside it and is only written when the
//! second changes. Races between threads learning the same address settle on
//! one of the writers, which is what a hardware bridge does too.
//!
//! Port security lives here too. A *pinned* address (a port created or
//! opened with `--mac`) belongs to its port: it is never aged, moved or
//! evicted, and a frame from another port with it as source is reported as
//! [`Destination::Spoofed`]. Each port may hold at most its limit of learned
//! addresses (`--max-macs`), so one port's flood of new source addresses
//! cannot fill the table that every port shares. Only one forwarding thread
//! reads a given port (see the engine), so a port's count never overshoots
//! its limit. Buckets are chosen by a keyed hash (a random key per table), so
//! a port cannot pick addresses that crowd another's bucket.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use switch_port::mac::MacAddr;
use switch_port::protocol::LookupStats;

use super::lookup::{Destination, EthHeader, FdbEntry, Lookup, PortId};
use super::switch::MAX_PORTS_LIMIT;

const WAYS: usize = 4;
const VALID: u64 = 1 << 63;
const PINNED: u64 = 1 << 62;
const MAC_MASK: u64 = (1 << 48) - 1;
const PORT_SHIFT: u32 = 48;
const PORT_MASK: u64 = 0x3FFF;
/// Ports whose addresses the table counts (at least the switch's limit).
const COUNTED_PORTS: usize = MAX_PORTS_LIMIT;

/// Default number of addresses the table holds.
pub const DEFAULT_CAPACITY: usize = 4096;
/// Default time after which an address not seen again is forgotten.
pub const DEFAULT_MAX_AGE_SECS: u32 = 300;
/// Default number of addresses one client port may have learned at once.
pub const DEFAULT_MAX_MACS: u32 = 64;
/// No per-port limit (beyond the table's size).
pub const UNLIMITED: u32 = u32::MAX;

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
    key: u64,
    capacity: usize,
    max_age: u32,
    /// Learned (not pinned) addresses per port.
    per_port: Box<[AtomicU32]>,
    /// Limit of learned addresses per port.
    limits: Box<[AtomicU32]>,
    live: AtomicU64,
    learned: AtomicU64,
    moved: AtomicU64,
    refused: AtomicU64,
    port_limited: AtomicU64,
    aged: AtomicU64,
}

/// What learning a source address found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Learned {
    /// Learned, refreshed, or not learned for lack of room.
    Ok,
    /// The address is pinned to another port.
    Spoofed,
}

/// A random key for the bucket hash (from the kernel's generator; a clock
/// reading if that fails).
fn random_key() -> u64 {
    let mut key = 0u64;
    // SAFETY: getrandom writes at most 8 bytes into `key`.
    let n = unsafe { libc::getrandom((&raw mut key).cast(), 8, libc::GRND_NONBLOCK) };
    if n != 8 {
        key = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x5eed, |d| d.as_nanos() as u64);
    }
    key | 1
}

impl LearningTable {
    /// A table for `capacity` addresses (at least 4) that forgets an address
    /// `max_age_secs` after it was last seen; ports have no limit of their
    /// own until [`Lookup::set_port_limit`].
    pub fn new(capacity: usize, max_age_secs: u32) -> LearningTable {
        let capacity = capacity.max(WAYS);
        // Twice as many slots as the limit keeps bucket collisions rare.
        let buckets = (capacity * 2).div_ceil(WAYS).next_power_of_two();
        LearningTable {
            buckets: (0..buckets).map(|_| Bucket::default()).collect(),
            mask: buckets - 1,
            key: random_key(),
            capacity,
            max_age: max_age_secs,
            per_port: (0..COUNTED_PORTS).map(|_| AtomicU32::new(0)).collect(),
            limits: (0..COUNTED_PORTS)
                .map(|_| AtomicU32::new(UNLIMITED))
                .collect(),
            live: AtomicU64::new(0),
            learned: AtomicU64::new(0),
            moved: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            port_limited: AtomicU64::new(0),
            aged: AtomicU64::new(0),
        }
    }

    #[inline]
    fn bucket(&self, mac: u64) -> &Bucket {
        let mut x = (mac ^ self.key).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        x ^= x >> 29;
        x = x.wrapping_mul(self.key.rotate_left(17) | 1);
        let hash = x >> 32;
        &self.buckets[hash as usize & self.mask]
    }

    #[inline]
    fn owner(key: u64) -> PortId {
        ((key >> PORT_SHIFT) & PORT_MASK) as PortId
    }

    /// Whether `port` may learn one more address (counts a refusal if not).
    #[inline]
    fn has_room(&self, port: PortId) -> bool {
        let i = port as usize;
        let (Some(count), Some(limit)) = (self.per_port.get(i), self.limits.get(i)) else {
            return false;
        };
        if count.load(Ordering::Relaxed) < limit.load(Ordering::Relaxed) {
            true
        } else {
            self.port_limited.fetch_add(1, Ordering::Relaxed);
            false
        }
    }

    #[inline]
    fn count(&self, port: PortId, added: bool) {
        if let Some(c) = self.per_port.get(port as usize) {
            if added {
                c.fetch_add(1, Ordering::Relaxed);
            } else {
                c.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Addresses `port` has learned now (pinned ones not included).
    pub fn learned_by(&self, port: PortId) -> u32 {
        self.per_port
            .get(port as usize)
            .map_or(0, |c| c.load(Ordering::Relaxed))
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
                if key & PINNED == 0 && self.expired(bucket.seen[way].load(Ordering::Relaxed), now)
                {
                    return None;
                }
                return Some(Self::owner(key));
            }
        }
        None
    }

    /// Records that `mac` was seen on `port` at `now`.
    #[inline]
    pub fn learn(&self, mac: MacAddr, port: PortId, now: u32) -> Learned {
        if mac.is_multicast() || mac.is_zero() {
            return Learned::Ok;
        }
        let mac = mac.to_u64();
        let wanted = VALID | (port as u64 & PORT_MASK) << PORT_SHIFT | mac;
        let bucket = self.bucket(mac);
        for way in 0..WAYS {
            let key = bucket.keys[way].load(Ordering::Acquire);
            if key & VALID != 0 && key & MAC_MASK == mac {
                if key & PINNED != 0 {
                    return if Self::owner(key) == port {
                        Learned::Ok
                    } else {
                        Learned::Spoofed
                    };
                }
                if key != wanted {
                    // A move: the new port must have room; otherwise the
                    // address stays where it was.
                    if !self.has_room(port) {
                        return Learned::Ok;
                    }
                    if bucket.keys[way]
                        .compare_exchange(key, wanted, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                    {
                        self.count(Self::owner(key), false);
                        self.count(port, true);
                        self.moved.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if bucket.seen[way].load(Ordering::Relaxed) != now {
                    bucket.seen[way].store(now, Ordering::Relaxed);
                }
                return Learned::Ok;
            }
        }
        if self.has_room(port) {
            self.insert(bucket, wanted, now);
        }
        Learned::Ok
    }

    #[cold]
    fn insert(&self, bucket: &Bucket, wanted: u64, now: u32) {
        for way in 0..WAYS {
            let key = bucket.keys[way].load(Ordering::Acquire);
            let free = key & VALID == 0;
            let stale = !free
                && key & PINNED == 0
                && self.expired(bucket.seen[way].load(Ordering::Relaxed), now);
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
                    self.count(Self::owner(key), false);
                    self.aged.fetch_add(1, Ordering::Relaxed);
                }
                self.count(Self::owner(wanted), true);
                self.learned.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Pins `mac` to `port`: it is never aged, moved or evicted, and frames
    /// from other ports with it as source are [`Destination::Spoofed`]. Takes
    /// the place of a learned entry of the address, or of a learned entry of
    /// its bucket when the bucket is full; fails (false) when the address is
    /// pinned to another port or its bucket holds only pinned addresses.
    pub fn pin(&self, mac: MacAddr, port: PortId) -> bool {
        if mac.is_multicast() || mac.is_zero() {
            return false;
        }
        let mac = mac.to_u64();
        let wanted = VALID | PINNED | (port as u64 & PORT_MASK) << PORT_SHIFT | mac;
        let bucket = self.bucket(mac);
        // The address itself first, then a free way, then a learned one;
        // retried when a forwarding thread changes the way meanwhile.
        for _ in 0..8 {
            let mut choice = None;
            for way in 0..WAYS {
                let key = bucket.keys[way].load(Ordering::Acquire);
                if key & VALID != 0 && key & MAC_MASK == mac {
                    if key & PINNED != 0 && Self::owner(key) != port {
                        return false;
                    }
                    choice = Some((way, key));
                    break;
                }
                let better = match choice {
                    None => key & PINNED == 0,
                    Some((_, chosen)) => chosen & VALID != 0 && key & VALID == 0,
                };
                if better {
                    choice = Some((way, key));
                }
            }
            let Some((way, key)) = choice else {
                return false;
            };
            if bucket.keys[way]
                .compare_exchange(key, wanted, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            if key & VALID == 0 {
                self.live.fetch_add(1, Ordering::Relaxed);
            } else if key & PINNED == 0 {
                self.count(Self::owner(key), false);
            }
            // A thread may have learned the address in another way meanwhile.
            for other in (0..WAYS).filter(|&w| w != way) {
                let key = bucket.keys[other].load(Ordering::Acquire);
                if key & VALID != 0
                    && key & PINNED == 0
                    && key & MAC_MASK == mac
                    && bucket.keys[other]
                        .compare_exchange(key, 0, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                {
                    self.live.fetch_sub(1, Ordering::Relaxed);
                    self.count(Self::owner(key), false);
                }
            }
            return true;
        }
        false
    }

    /// Removes the pin of `mac` to `port`, if it has one.
    pub fn unpin(&self, mac: MacAddr, port: PortId) {
        let mac = mac.to_u64();
        self.remove_where(|key, _| {
            key & PINNED != 0 && key & MAC_MASK == mac && Self::owner(key) == port
        });
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
                    if key & PINNED == 0 {
                        self.count(Self::owner(key), false);
                    }
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
        if self.learn(header.src, source, now) == Learned::Spoofed {
            return Destination::Spoofed;
        }
        if header.dst.is_multicast() {
            return Destination::Flood;
        }
        match self.find(header.dst, now) {
            Some(port) => Destination::Port(port),
            None => Destination::Flood,
        }
    }

    fn forget_port(&self, port: PortId) {
        self.remove_where(|key, _| Self::owner(key) == port);
        if let Some(limit) = self.limits.get(port as usize) {
            limit.store(UNLIMITED, Ordering::Relaxed);
        }
    }

    fn set_port_limit(&self, port: PortId, max: u32) {
        if let Some(limit) = self.limits.get(port as usize) {
            limit.store(max, Ordering::Relaxed);
        }
    }

    fn pin(&self, mac: MacAddr, port: PortId) -> bool {
        LearningTable::pin(self, mac, port)
    }

    fn unpin(&self, mac: MacAddr, port: PortId) {
        LearningTable::unpin(self, mac, port)
    }

    fn age(&self, now: u32) {
        let aged = self.remove_where(|key, seen| key & PINNED == 0 && self.expired(seen, now));
        self.aged.fetch_add(aged, Ordering::Relaxed);
    }

    fn entries(&self, now: u32) -> Vec<FdbEntry> {
        let mut out = Vec::new();
        for bucket in self.buckets.iter() {
            for way in 0..WAYS {
                let key = bucket.keys[way].load(Ordering::Acquire);
                let seen = bucket.seen[way].load(Ordering::Relaxed);
                if key & VALID != 0 && (key & PINNED != 0 || !self.expired(seen, now)) {
                    out.push(FdbEntry {
                        mac: MacAddr::from_u64(key & MAC_MASK),
                        port: Self::owner(key),
                        age_secs: if key & PINNED != 0 {
                            0
                        } else {
                            now.wrapping_sub(seen)
                        },
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
            port_limited: self.port_limited.load(Ordering::Relaxed),
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

    #[test]
    fn a_pinned_address_stays_with_its_port() {
        let t = LearningTable::new(64, 10);
        assert!(t.pin(mac(1), 1));
        assert!(!t.pin(mac(1), 2), "pinned to another port");
        // Another port sending with it as source is a spoofer; nothing moves.
        assert_eq!(
            t.lookup(&hdr(MacAddr::BROADCAST, mac(1)), 2, 0),
            Destination::Spoofed
        );
        assert_eq!(t.lookup(&hdr(mac(1), mac(3)), 3, 0), Destination::Port(1));
        assert_eq!(t.stats().moved, 0);
        // Its own port is fine, and the pin never ages.
        assert_eq!(
            t.lookup(&hdr(MacAddr::BROADCAST, mac(1)), 1, 0),
            Destination::Flood
        );
        t.age(1000);
        assert_eq!(t.find(mac(1), 1000), Some(1));
        assert_eq!(t.entries(1000).len(), 1);
        t.unpin(mac(1), 1);
        assert_eq!(t.find(mac(1), 1000), None);
        assert_eq!(t.stats().entries, 0);
    }

    #[test]
    fn pinning_takes_over_a_learned_entry() {
        let t = LearningTable::new(64, 300);
        t.learn(mac(1), 2, 0);
        assert_eq!(t.learned_by(2), 1);
        assert!(t.pin(mac(1), 1));
        assert_eq!(t.find(mac(1), 0), Some(1));
        assert_eq!((t.learned_by(2), t.stats().entries), (0, 1));
        t.forget_port(1);
        assert_eq!(t.find(mac(1), 0), None);
    }

    #[test]
    fn a_port_past_its_limit_learns_nothing_and_others_still_learn() {
        let t = LearningTable::new(4096, 300);
        t.set_port_limit(1, 64);
        t.set_port_limit(2, 64);
        for n in 0..100_000 {
            t.learn(mac(1_000_000 + n), 1, 0);
        }
        assert_eq!(t.learned_by(1), 64);
        assert_eq!(t.stats().port_limited, 100_000 - 64);
        for n in 0..64 {
            t.learn(mac(n), 2, 0);
        }
        assert_eq!(t.learned_by(2), 64);
        assert!((0..64).all(|n| t.find(mac(n), 0) == Some(2)));
        // A port at its limit cannot take another's address either.
        t.learn(mac(5), 1, 0);
        assert_eq!(t.find(mac(5), 0), Some(2));
        // Aging frees room again.
        t.age(1000);
        assert_eq!((t.learned_by(1), t.learned_by(2)), (0, 0));
        t.learn(mac(7), 1, 1000);
        assert_eq!(t.learned_by(1), 1);
    }

    #[test]
    fn moves_keep_per_port_counts() {
        let t = LearningTable::new(64, 300);
        t.learn(mac(1), 1, 0);
        t.learn(mac(1), 2, 0);
        assert_eq!((t.learned_by(1), t.learned_by(2)), (0, 1));
        t.forget_port(2);
        assert_eq!((t.learned_by(2), t.stats().entries), (0, 0));
    }
}
