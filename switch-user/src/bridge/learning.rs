//! The L2 learning table: a bucketized cuckoo hash of (VLAN, MAC address)
//! pairs to ports, with aging and a size limit, that several forwarding
//! threads look up at once without locks.
//!
//! Each bucket holds four entries in one cache line. An entry is one atomic
//! word `valid | port << 48 | mac`, so an address and its port always change
//! together; the entry's VLAN (0: none) and last-seen time sit beside it,
//! the time only written when the second changes. A way's VLAN changes only
//! while its word is cleared, and a reader checks the word again after the
//! VLAN, so it never pairs an address with another entry's VLAN. The same
//! address in two VLANs is two entries. Every address has two candidate
//! buckets, both from one
//! keyed hash (a random key per table, so a tenant cannot pick addresses
//! that crowd a bucket). It is placed in its first bucket when that has
//! room, so a lookup usually reads one cache line; otherwise in its second,
//! and when both are full, entries are moved to their other bucket along the
//! shortest path to a free way (cuckoo displacement). The table has twice as
//! many ways as its capacity, so any set of addresses up to the capacity
//! fits, whatever its pattern (sequential, one OUI, random).
//!
//! Lookups and refreshes of a known address (the per-frame work) take no
//! lock. Changes of the address words (new addresses, moves, pins, removal)
//! are made under one writer lock; a displacement is bracketed by a sequence
//! counter, and a lookup that misses while one ran looks again, so a moved
//! address is never reported unknown.
//!
//! Port security lives here too. A *pinned* address (a port created or
//! opened with `--mac`) belongs to its port: it is never aged, moved or
//! evicted, and a frame from another port with it as source is reported as
//! [`Destination::Spoofed`]. Each port may hold at most its limit of learned
//! addresses (`--max-macs`), so one port's flood of new source addresses
//! cannot fill the table that every port shares. The limit is checked again
//! under the writer lock, so it holds even for a port that several
//! forwarding threads read at once (a NIC with a thread per queue).

use std::sync::atomic::{fence, AtomicU16, AtomicU32, AtomicU64, Ordering};

use parking_lot::Mutex;
use switch_port::mac::MacAddr;
use switch_port::protocol::LookupStats;

use super::lookup::{Destination, EthHeader, FdbEntry, Lookup, PortId};
use super::prefetch;
use super::switch::MAX_PORTS_LIMIT;
use super::zeroed_array::{Zeroable, ZeroedArray};

const WAYS: usize = 4;
const VALID: u64 = 1 << 63;
const PINNED: u64 = 1 << 62;
const MAC_MASK: u64 = (1 << 48) - 1;
const PORT_SHIFT: u32 = 48;
const PORT_MASK: u64 = 0x3FFF;
/// Ports whose addresses the table counts (at least the switch's limit).
const COUNTED_PORTS: usize = MAX_PORTS_LIMIT;
/// Buckets a displacement search visits at most.
const MAX_SEARCH: usize = 256;
/// Buckets removed under one hold of the writer lock (aging a large table
/// must not hold up learning for long).
const REMOVE_CHUNK: usize = 1024;

/// Entries from which lookups prefetch their buckets: below, the buckets
/// in use (at most one cache line each) fit in a core's cache.
const PREFETCH_MIN_ENTRIES: u64 = 8192;

/// Default number of addresses the table holds.
pub const DEFAULT_CAPACITY: usize = 4096;
/// Default time after which an address not seen again is forgotten.
pub const DEFAULT_MAX_AGE_SECS: u32 = 300;
/// Default number of addresses one client port may have learned at once.
pub const DEFAULT_MAX_MACS: u32 = 64;
/// No per-port limit (beyond the table's size).
pub const UNLIMITED: u32 = u32::MAX;

#[repr(align(64))]
struct Bucket {
    keys: [AtomicU64; WAYS],
    seen: [AtomicU32; WAYS],
    vlans: [AtomicU16; WAYS],
}

// SAFETY: a bucket is atomics only: all zero is an empty bucket, and none
// has a Drop.
unsafe impl Zeroable for Bucket {}

/// An entry's place: bucket number and way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Place {
    bucket: usize,
    way: usize,
}

/// One bucket visited by a displacement search: reached by moving the entry
/// in `way` of node `parent`'s bucket to its other bucket, this one.
#[derive(Clone, Copy)]
struct Node {
    bucket: usize,
    parent: usize,
    way: usize,
}

const ROOT: usize = usize::MAX;

/// The learning bridge's forwarding table.
pub struct LearningTable {
    buckets: ZeroedArray<Bucket>,
    mask: usize,
    hash_key: [u64; 4],
    capacity: usize,
    max_age: u32,
    /// Held by whoever changes an address word.
    writer: Mutex<()>,
    /// Odd while a displacement moves entries between buckets.
    moving: AtomicU64,
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

/// A random key for the bucket hash (from the kernel's generator; derived
/// from a clock reading if that fails).
fn random_key() -> [u64; 4] {
    let mut key = [0u64; 4];
    // SAFETY: getrandom writes at most 32 bytes into the 32-byte `key`.
    let n = unsafe { libc::getrandom(key.as_mut_ptr().cast(), 32, libc::GRND_NONBLOCK) };
    if n != 32 {
        let mut seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x5eed, |d| d.as_nanos() as u64);
        for k in &mut key {
            seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
            *k = fold_mul(seed, 0xBF58_476D_1CE4_E5B9) ^ seed;
        }
    }
    key
}

/// The two halves of a 128-bit product folded together: every output bit
/// depends on every input bit of both factors.
#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = a as u128 * b as u128;
    p as u64 ^ (p >> 64) as u64
}

/// What the bucket hash takes: the address and its VLAN in one word.
#[inline]
fn ident(mac: u64, vlan: u16) -> u64 {
    mac | u64::from(vlan) << 48
}

impl LearningTable {
    /// A table for `capacity` addresses (at least 4) that forgets an address
    /// `max_age_secs` after it was last seen; ports have no limit of their
    /// own until [`Lookup::set_port_limit`].
    pub fn new(capacity: usize, max_age_secs: u32) -> LearningTable {
        Self::with_key(capacity, max_age_secs, random_key())
    }

    fn with_key(capacity: usize, max_age_secs: u32, hash_key: [u64; 4]) -> LearningTable {
        let capacity = capacity.max(WAYS);
        // Twice as many ways as addresses: at that load nearly every address
        // sits in its first bucket and displacement paths are short.
        let buckets = (capacity * 2).div_ceil(WAYS).next_power_of_two().max(2);
        LearningTable {
            buckets: ZeroedArray::new(buckets),
            mask: buckets - 1,
            hash_key,
            capacity,
            max_age: max_age_secs,
            writer: Mutex::new(()),
            moving: AtomicU64::new(0),
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

    /// The two candidate buckets of an address in a VLAN ([`ident`]),
    /// different from each other.
    #[inline(always)]
    fn candidates(&self, ident: u64) -> (usize, usize) {
        // Two rounds: one leaves addresses that count in their high bytes
        // clustered (the low bits of the product do not change).
        let [k0, k1, k2, k3] = self.hash_key;
        let h = fold_mul(fold_mul(ident ^ k0, k1 | 1) ^ k2, k3 | 1);
        let first = h as usize & self.mask;
        let mut second = (h >> 32) as usize & self.mask;
        if second == first {
            second ^= 1;
        }
        (first, second)
    }

    /// The candidate bucket of the address in `key` (of VLAN `vlan`) other
    /// than `bucket`.
    #[inline]
    fn other_bucket(&self, key: u64, vlan: u16, bucket: usize) -> usize {
        let (first, second) = self.candidates(ident(key & MAC_MASK, vlan));
        if first == bucket {
            second
        } else {
            first
        }
    }

    /// Starts loading the first bucket of `mac` in `vlan` into the cache.
    #[inline]
    pub fn prefetch(&self, mac: MacAddr, vlan: u16) {
        let (first, _) = self.candidates(ident(mac.to_u64(), vlan));
        prefetch::read((&raw const self.buckets[first]).cast());
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

    /// The way of `bucket` holding `mac` in `vlan`, and its word.
    #[inline(always)]
    fn scan(&self, bucket: usize, mac: u64, vlan: u16) -> Option<(Place, u64)> {
        let b = &self.buckets[bucket];
        for way in 0..WAYS {
            let key = b.keys[way].load(Ordering::Acquire);
            // The word again after the VLAN: unchanged, the pair is one
            // entry's (a writer clears the word before changing the VLAN).
            if key & VALID != 0
                && key & MAC_MASK == mac
                && b.vlans[way].load(Ordering::Acquire) == vlan
                && b.keys[way].load(Ordering::Relaxed) == key
            {
                return Some((Place { bucket, way }, key));
            }
        }
        None
    }

    /// Where `mac` in `vlan` is, and its word: its first bucket, then its
    /// second. Always inlined (with [`Self::scan`] and
    /// [`Self::candidates`]): left to the compiler it became a call per
    /// table operation, two per frame, returning through memory.
    #[inline(always)]
    fn locate(&self, mac: u64, vlan: u16) -> Option<(Place, u64)> {
        let (first, second) = self.candidates(ident(mac, vlan));
        self.scan(first, mac, vlan)
            .or_else(|| self.scan(second, mac, vlan))
            .or_else(|| self.locate_again(mac, vlan, first, second))
    }

    /// A miss, confirmed: looks again until no displacement ran meanwhile
    /// (an entry being moved may have been missed in both buckets).
    #[cold]
    fn locate_again(
        &self,
        mac: u64,
        vlan: u16,
        first: usize,
        second: usize,
    ) -> Option<(Place, u64)> {
        for _ in 0..1024 {
            let before = self.moving.load(Ordering::Acquire);
            if before & 1 != 0 {
                std::hint::spin_loop();
                continue;
            }
            let found = self
                .scan(first, mac, vlan)
                .or_else(|| self.scan(second, mac, vlan));
            fence(Ordering::Acquire);
            if self.moving.load(Ordering::Relaxed) == before {
                return found;
            }
        }
        None
    }

    /// The port `mac` (without VLAN) was last seen on, if it is known and
    /// fresh.
    #[inline]
    pub fn find(&self, mac: MacAddr, now: u32) -> Option<PortId> {
        self.find_in(0, mac, now)
    }

    /// The port `mac` was last seen on in `vlan`, if it is known and fresh.
    #[inline]
    pub fn find_in(&self, vlan: u16, mac: MacAddr, now: u32) -> Option<PortId> {
        let (place, key) = self.locate(mac.to_u64(), vlan)?;
        if key & PINNED == 0
            && self.expired(
                self.buckets[place.bucket].seen[place.way].load(Ordering::Relaxed),
                now,
            )
        {
            return None;
        }
        Some(Self::owner(key))
    }

    /// Records that `mac` (without VLAN) was seen on `port` at `now`.
    #[inline]
    pub fn learn(&self, mac: MacAddr, port: PortId, now: u32) -> Learned {
        self.learn_in(0, mac, port, now)
    }

    /// Records that `mac` was seen in `vlan` on `port` at `now`.
    #[inline]
    pub fn learn_in(&self, vlan: u16, mac: MacAddr, port: PortId, now: u32) -> Learned {
        if mac.is_multicast() || mac.is_zero() {
            return Learned::Ok;
        }
        let mac = mac.to_u64();
        let wanted = VALID | (port as u64 & PORT_MASK) << PORT_SHIFT | mac;
        match self.locate(mac, vlan) {
            Some((_, key)) if key & PINNED != 0 => {
                if Self::owner(key) == port {
                    Learned::Ok
                } else {
                    Learned::Spoofed
                }
            }
            Some((place, key)) if key == wanted => {
                let seen = &self.buckets[place.bucket].seen[place.way];
                if seen.load(Ordering::Relaxed) != now {
                    seen.store(now, Ordering::Relaxed);
                }
                Learned::Ok
            }
            // A move, or a new address: the port must have room; otherwise
            // the address stays where it was (or unknown).
            _ => {
                if self.has_room(port) {
                    self.learn_locked(mac, vlan, wanted, now);
                }
                Learned::Ok
            }
        }
    }

    /// Moves `mac` to the port in `wanted`, or adds it, under the writer lock.
    #[cold]
    fn learn_locked(&self, mac: u64, vlan: u16, wanted: u64, now: u32) {
        let _writer = self.writer.lock();
        // Counts change only under this lock: checked here, the limit is
        // exact even when other threads learn for the same port.
        if !self.has_room(Self::owner(wanted)) {
            return;
        }
        match self.locate(mac, vlan) {
            Some((place, key)) => {
                // Another thread may have moved or pinned it meanwhile.
                if key & PINNED == 0 && key != wanted {
                    let b = &self.buckets[place.bucket];
                    b.seen[place.way].store(now, Ordering::Relaxed);
                    b.keys[place.way].store(wanted, Ordering::Release);
                    self.count(Self::owner(key), false);
                    self.count(Self::owner(wanted), true);
                    self.moved.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => {
                // A free way while there is room, else an expired entry's.
                let grow = self.live.load(Ordering::Relaxed) < self.capacity as u64;
                if (grow && self.place(mac, vlan, wanted, now, None, true))
                    || self.place(mac, vlan, wanted, now, Some(now), false)
                {
                    self.count(Self::owner(wanted), true);
                    self.learned.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.refused.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Whether the way at `place` may take a new entry: it is free (and
    /// `grow` allows one more entry), or holds a learned entry expired at
    /// `now` (when given).
    #[inline]
    fn usable(&self, place: Place, grow: bool, now: Option<u32>) -> bool {
        let b = &self.buckets[place.bucket];
        let key = b.keys[place.way].load(Ordering::Relaxed);
        if key & VALID == 0 {
            return grow;
        }
        key & PINNED == 0
            && now.is_some_and(|now| self.expired(b.seen[place.way].load(Ordering::Relaxed), now))
    }

    /// A usable way of `bucket` (see [`Self::usable`]).
    fn usable_way(&self, bucket: usize, grow: bool, now: Option<u32>) -> Option<Place> {
        (0..WAYS)
            .map(|way| Place { bucket, way })
            .find(|&p| self.usable(p, grow, now))
    }

    /// Puts `wanted` (the word of `mac` in `vlan`, not in the table) into
    /// one of its buckets, displacing entries to their other bucket if both
    /// are full. Counts the entry it adds or the expired entry it replaces.
    /// Under the writer lock. False when no usable way is within reach.
    fn place(
        &self,
        mac: u64,
        vlan: u16,
        wanted: u64,
        seen: u32,
        now: Option<u32>,
        grow: bool,
    ) -> bool {
        let (first, second) = self.candidates(ident(mac, vlan));
        let target = match self
            .usable_way(first, grow, now)
            .or_else(|| self.usable_way(second, grow, now))
        {
            Some(place) => place,
            None => match self.displace(first, second, grow, now) {
                Some(place) => place,
                None => return false,
            },
        };
        self.store(target, wanted, vlan, seen);
        true
    }

    /// Writes `key` of `vlan` seen at `seen` into the way at `place`,
    /// counting the entry it adds or the expired one it replaces. Under the
    /// writer lock.
    fn store(&self, place: Place, key: u64, vlan: u16, seen: u32) {
        let old = self.buckets[place.bucket].keys[place.way].load(Ordering::Relaxed);
        if old & VALID == 0 {
            self.live.fetch_add(1, Ordering::Relaxed);
        } else {
            self.count(Self::owner(old), false);
            self.aged.fetch_add(1, Ordering::Relaxed);
        }
        self.write_way(place, key, vlan, seen);
    }

    /// Writes an entry into the way at `place` (no counting). The time
    /// first, so a reader never sees the new word with the old, expired
    /// time; a VLAN change only while the word is cleared (see
    /// [`Self::scan`]). Under the writer lock.
    #[inline]
    fn write_way(&self, place: Place, key: u64, vlan: u16, seen: u32) {
        let b = &self.buckets[place.bucket];
        if b.vlans[place.way].load(Ordering::Relaxed) != vlan {
            b.keys[place.way].store(0, Ordering::Relaxed);
            // Release: a reader that sees the new VLAN sees the cleared word.
            b.vlans[place.way].store(vlan, Ordering::Release);
        }
        b.seen[place.way].store(seen, Ordering::Relaxed);
        b.keys[place.way].store(key, Ordering::Release);
    }

    /// Frees a way in bucket `first` or `second` (both full) by moving
    /// entries to their other bucket, along the shortest path found (breadth
    /// first) to a usable way. Returns the freed way. Under the writer lock.
    #[cold]
    fn displace(&self, first: usize, second: usize, grow: bool, now: Option<u32>) -> Option<Place> {
        let mut nodes: Vec<Node> = Vec::with_capacity(MAX_SEARCH);
        for bucket in [first, second] {
            nodes.push(Node {
                bucket,
                parent: ROOT,
                way: 0,
            });
        }
        let on_path = |nodes: &[Node], mut n: usize, bucket: usize| {
            while n != ROOT {
                if nodes[n].bucket == bucket {
                    return true;
                }
                n = nodes[n].parent;
            }
            false
        };
        let mut next = 0;
        while next < nodes.len() {
            let node = nodes[next];
            for way in 0..WAYS {
                let key = self.buckets[node.bucket].keys[way].load(Ordering::Relaxed);
                if key & VALID == 0 {
                    continue;
                }
                let vlan = self.buckets[node.bucket].vlans[way].load(Ordering::Relaxed);
                let other = self.other_bucket(key, vlan, node.bucket);
                if on_path(&nodes, next, other) {
                    continue;
                }
                if let Some(free) = self.usable_way(other, grow, now) {
                    let from = Place {
                        bucket: node.bucket,
                        way,
                    };
                    return Some(self.shift(&nodes, next, from, free));
                }
                if nodes.len() < MAX_SEARCH {
                    nodes.push(Node {
                        bucket: other,
                        parent: next,
                        way,
                    });
                }
            }
            next += 1;
        }
        None
    }

    /// Moves the entry at `from` (in node `n`'s bucket) to `to`, then the
    /// entry that led to node `n` into the way that freed, and so on up to a
    /// root; returns the root's freed way. Readers that miss meanwhile look
    /// again (see [`Self::locate_again`]).
    fn shift(&self, nodes: &[Node], mut n: usize, mut from: Place, mut to: Place) -> Place {
        let version = self.moving.load(Ordering::Relaxed);
        self.moving.store(version + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        loop {
            let (src, dst) = (&self.buckets[from.bucket], &self.buckets[to.bucket]);
            let replaced = dst.keys[to.way].load(Ordering::Relaxed);
            if replaced & VALID != 0 {
                // The path's end held an expired learned entry.
                self.live.fetch_sub(1, Ordering::Relaxed);
                self.count(Self::owner(replaced), false);
                self.aged.fetch_add(1, Ordering::Relaxed);
            }
            // Copied first, then cleared: for a moment it is in both places.
            self.write_way(
                to,
                src.keys[from.way].load(Ordering::Relaxed),
                src.vlans[from.way].load(Ordering::Relaxed),
                src.seen[from.way].load(Ordering::Relaxed),
            );
            src.keys[from.way].store(0, Ordering::Release);
            to = from;
            let node = nodes[n];
            if node.parent == ROOT {
                break;
            }
            from = Place {
                bucket: nodes[node.parent].bucket,
                way: node.way,
            };
            n = node.parent;
        }
        self.moving.store(version + 2, Ordering::Release);
        to
    }

    /// Pins `mac` to `port`: it is never aged, moved or evicted, and frames
    /// from other ports with it as source are [`Destination::Spoofed`]. Takes
    /// the place of a learned entry of the address, or a free way (even when
    /// the table is full), or else the way of a learned address of its
    /// buckets; fails (false) when the address is pinned to another port or
    /// its buckets hold only pinned addresses.
    ///
    /// The pin is for `vlan` (0: none): the same address in another VLAN is
    /// another entry.
    pub fn pin(&self, mac: MacAddr, vlan: u16, port: PortId) -> bool {
        if mac.is_multicast() || mac.is_zero() {
            return false;
        }
        let mac = mac.to_u64();
        let wanted = VALID | PINNED | (port as u64 & PORT_MASK) << PORT_SHIFT | mac;
        let _writer = self.writer.lock();
        if let Some((place, key)) = self.locate(mac, vlan) {
            if key & PINNED != 0 {
                return Self::owner(key) == port;
            }
            self.count(Self::owner(key), false);
            self.buckets[place.bucket].keys[place.way].store(wanted, Ordering::Release);
            return true;
        }
        if self.place(mac, vlan, wanted, 0, None, true) {
            return true;
        }
        // Both buckets are full and nothing could move: evict a learned entry.
        let (first, second) = self.candidates(ident(mac, vlan));
        let victim = [first, second]
            .into_iter()
            .flat_map(|bucket| (0..WAYS).map(move |way| Place { bucket, way }))
            .find(|p| self.buckets[p.bucket].keys[p.way].load(Ordering::Relaxed) & PINNED == 0);
        let Some(place) = victim else {
            return false;
        };
        let b = &self.buckets[place.bucket];
        self.count(
            Self::owner(b.keys[place.way].load(Ordering::Relaxed)),
            false,
        );
        self.write_way(place, wanted, vlan, 0);
        true
    }

    /// Removes the pin of `mac` in `vlan` to `port`, if it has one.
    pub fn unpin(&self, mac: MacAddr, vlan: u16, port: PortId) {
        let mac = mac.to_u64();
        let _writer = self.writer.lock();
        if let Some((place, key)) = self.locate(mac, vlan) {
            if key & PINNED != 0 && Self::owner(key) == port {
                self.buckets[place.bucket].keys[place.way].store(0, Ordering::Release);
                self.live.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Removes every entry for which `condition(word, seen)` holds; returns
    /// how many. Takes the writer lock for a chunk of buckets at a time.
    fn remove_where(&self, mut condition: impl FnMut(u64, u32) -> bool) -> u64 {
        let mut removed = 0;
        for chunk in self.buckets.chunks(REMOVE_CHUNK) {
            let _writer = self.writer.lock();
            for bucket in chunk {
                for way in 0..WAYS {
                    let key = bucket.keys[way].load(Ordering::Relaxed);
                    if key & VALID != 0 && condition(key, bucket.seen[way].load(Ordering::Relaxed))
                    {
                        bucket.keys[way].store(0, Ordering::Release);
                        self.live.fetch_sub(1, Ordering::Relaxed);
                        if key & PINNED == 0 {
                            self.count(Self::owner(key), false);
                        }
                        removed += 1;
                    }
                }
            }
        }
        removed
    }

    /// Share of the entries that sit in their first bucket (what a lookup
    /// reads first), in [0, 1]; 1 for an empty table.
    pub fn first_bucket_share(&self) -> f64 {
        let (mut first, mut all) = (0u64, 0u64);
        for (i, bucket) in self.buckets.iter().enumerate() {
            for way in 0..WAYS {
                let key = bucket.keys[way].load(Ordering::Relaxed);
                if key & VALID != 0 {
                    all += 1;
                    let vlan = bucket.vlans[way].load(Ordering::Relaxed);
                    first += u64::from(self.candidates(ident(key & MAC_MASK, vlan)).0 == i);
                }
            }
        }
        if all == 0 {
            1.0
        } else {
            first as f64 / all as f64
        }
    }
}

impl Lookup for LearningTable {
    #[inline]
    fn lookup(&self, header: &EthHeader, source: PortId, now: u32) -> Destination {
        if self.learn_in(header.vlan, header.src, source, now) == Learned::Spoofed {
            return Destination::Spoofed;
        }
        self.lookup_seen_source(header, source, now)
    }

    #[inline]
    fn lookup_seen_source(&self, header: &EthHeader, _source: PortId, now: u32) -> Destination {
        if header.dst.is_multicast() {
            return Destination::Flood;
        }
        match self.find_in(header.vlan, header.dst, now) {
            Some(port) => Destination::Port(port),
            None => Destination::Flood,
        }
    }

    #[inline]
    fn prefetch(&self, header: &EthHeader) {
        LearningTable::prefetch(self, header.dst, header.vlan);
    }

    #[inline]
    fn prefetch_useful(&self) -> bool {
        self.live.load(Ordering::Relaxed) >= PREFETCH_MIN_ENTRIES
    }

    fn forget_port(&self, port: PortId) {
        self.remove_where(|key, _| Self::owner(key) == port);
        if let Some(limit) = self.limits.get(port as usize) {
            limit.store(UNLIMITED, Ordering::Relaxed);
        }
    }

    fn forget_learned(&self, port: PortId) {
        self.remove_where(|key, _| key & PINNED == 0 && Self::owner(key) == port);
    }

    fn set_port_limit(&self, port: PortId, max: u32) {
        if let Some(limit) = self.limits.get(port as usize) {
            limit.store(max, Ordering::Relaxed);
        }
    }

    fn pin(&self, mac: MacAddr, vlan: u16, port: PortId) -> bool {
        LearningTable::pin(self, mac, vlan, port)
    }

    fn unpin(&self, mac: MacAddr, vlan: u16, port: PortId) {
        LearningTable::unpin(self, mac, vlan, port)
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
                let vlan = bucket.vlans[way].load(Ordering::Acquire);
                if key & VALID != 0 && (key & PINNED != 0 || !self.expired(seen, now)) {
                    out.push(FdbEntry {
                        mac: MacAddr::from_u64(key & MAC_MASK),
                        vlan,
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
        out.sort_by_key(|e| (e.vlan, e.mac));
        // An entry being moved to its other bucket may be seen twice.
        out.dedup_by_key(|e| (e.vlan, e.mac));
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
            vlan: 0,
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
    fn the_port_limit_holds_with_two_threads_learning_for_one_port() {
        let t = LearningTable::new(4096, 300);
        t.set_port_limit(1, 10);
        std::thread::scope(|scope| {
            for half in 0..2u32 {
                let t = &t;
                scope.spawn(move || {
                    for n in 0..1000 {
                        t.learn(mac(half * 1000 + n + 1), 1, 0);
                    }
                });
            }
        });
        assert_eq!(t.learned_by(1), 10);
        assert_eq!(t.stats().entries, 10);
    }

    #[test]
    fn forget_learned_keeps_the_ports_pins_and_limit() {
        let t = LearningTable::new(64, 300);
        assert!(t.pin(mac(1), 0, 1));
        t.set_port_limit(1, 2);
        t.learn(mac(2), 1, 0);
        t.learn(mac(3), 2, 0);
        t.forget_learned(1);
        assert_eq!(t.find(mac(1), 0), Some(1));
        assert_eq!(t.find(mac(2), 0), None);
        assert_eq!(t.find(mac(3), 0), Some(2));
        assert_eq!((t.learned_by(1), t.stats().entries), (0, 2));
        t.learn(mac(4), 1, 0);
        t.learn(mac(5), 1, 0);
        t.learn(mac(6), 1, 0);
        assert_eq!(t.learned_by(1), 2, "the limit still holds");
    }

    #[test]
    fn a_pinned_address_stays_with_its_port() {
        let t = LearningTable::new(64, 10);
        assert!(t.pin(mac(1), 0, 1));
        assert!(!t.pin(mac(1), 0, 2), "pinned to another port");
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
        t.unpin(mac(1), 0, 1);
        assert_eq!(t.find(mac(1), 1000), None);
        assert_eq!(t.stats().entries, 0);
    }

    #[test]
    fn pinning_takes_over_a_learned_entry() {
        let t = LearningTable::new(64, 300);
        t.learn(mac(1), 2, 0);
        assert_eq!(t.learned_by(2), 1);
        assert!(t.pin(mac(1), 0, 1));
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
    fn one_address_in_two_vlans_is_two_entries() {
        let t = LearningTable::new(64, 300);
        let vhdr = |dst, src, vlan| EthHeader {
            vlan,
            ..hdr(dst, src)
        };
        t.learn_in(10, mac(1), 1, 0);
        t.learn_in(20, mac(1), 2, 0);
        assert_eq!(t.find_in(10, mac(1), 0), Some(1));
        assert_eq!(t.find_in(20, mac(1), 0), Some(2));
        assert_eq!(t.find(mac(1), 0), None, "not learned without a VLAN");
        assert_eq!((t.stats().moved, t.stats().entries), (0, 2));
        // Lookups see the frame's VLAN only.
        assert_eq!(
            t.lookup(&vhdr(mac(1), mac(9), 20), 3, 0),
            Destination::Port(2)
        );
        assert_eq!(
            t.lookup(&vhdr(mac(1), mac(9), 30), 3, 0),
            Destination::Flood
        );
        // A pin holds in its VLAN; the address is free in another.
        assert!(t.pin(mac(5), 10, 4));
        assert_eq!(
            t.lookup(&vhdr(MacAddr::BROADCAST, mac(5), 10), 3, 0),
            Destination::Spoofed
        );
        assert_eq!(
            t.lookup(&vhdr(MacAddr::BROADCAST, mac(5), 20), 3, 0),
            Destination::Flood
        );
        let listed: Vec<(u16, MacAddr, PortId)> = t
            .entries(0)
            .iter()
            .map(|e| (e.vlan, e.mac, e.port))
            .collect();
        assert!(listed.contains(&(10, mac(5), 4)) && listed.contains(&(20, mac(5), 3)));
        t.unpin(mac(5), 10, 4);
        assert_eq!(t.find_in(10, mac(5), 0), None);
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

#[cfg(test)]
mod fill_tests {
    //! Filling the table with address patterns, and a seeded random sequence
    //! of operations checked against a plain map.

    use std::collections::HashMap;

    use super::*;

    /// A small deterministic generator (splitmix64).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn unicast(value: u64) -> MacAddr {
        // Clear the group bit of the first byte.
        MacAddr::from_u64(value & MAC_MASK & !(1 << 40))
    }

    /// `n` distinct unicast addresses of a pattern.
    fn pattern(name: &str, n: usize, seed: u64) -> Vec<MacAddr> {
        let mut rng = Rng(seed);
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::with_capacity(n);
        let mut i = 0u64;
        while out.len() < n {
            let mac = match name {
                // As VMs are usually numbered: 02:56:00:00:00:01, ...:02, ...
                "sequential" => MacAddr::local(i as u32 + 1),
                "random" => unicast(rng.next()),
                // One vendor's prefix, the rest random.
                "one oui" => MacAddr::from_u64(0x0016_3E00_0000 | (rng.next() & 0xFF_FFFF)),
                // Counting in the high bytes, the low bytes fixed.
                "high bytes" => unicast(0x0200_0000_0042 | (i + 1) << 16),
                // Successive addresses differ in one byte (a Gray-like walk
                // over the low three bytes).
                "one byte apart" => {
                    let g = i ^ (i >> 1);
                    MacAddr::from_u64(0x0256_0000_0000 | g)
                }
                other => panic!("no pattern {other}"),
            };
            i += 1;
            if !mac.is_zero() && seen.insert(mac) {
                out.push(mac);
            }
        }
        out
    }

    const PATTERNS: [&str; 5] = [
        "sequential",
        "random",
        "one oui",
        "high bytes",
        "one byte apart",
    ];

    #[test]
    fn every_pattern_fills_the_table_to_its_capacity_without_refusal() {
        // Powers of two are the worst case: exactly half the ways are used.
        for capacity in [16, 1000, 4096, 65_536] {
            for name in PATTERNS {
                for seed in [1, 2] {
                    let t = LearningTable::new(capacity, 300);
                    let macs = pattern(name, capacity, seed);
                    for (i, &mac) in macs.iter().enumerate() {
                        t.learn(mac, (i % 200) as PortId, 0);
                        if (i + 1) * 100 == capacity * 95 {
                            assert_eq!(t.stats().refused, 0, "{name} {capacity}: refused at 95%");
                        }
                    }
                    let s = t.stats();
                    assert_eq!(
                        (s.entries, s.refused),
                        (capacity as u64, 0),
                        "{name}, capacity {capacity}"
                    );
                    for (i, &mac) in macs.iter().enumerate() {
                        assert_eq!(t.find(mac, 0), Some((i % 200) as PortId), "{name} {mac}");
                    }
                    // Past the capacity, addresses are refused and counted.
                    let more = pattern("random", 10, seed + 100);
                    for &mac in more.iter().filter(|m| !macs.contains(m)) {
                        t.learn(mac, 1, 0);
                    }
                    assert_eq!(t.stats().entries, capacity as u64);
                    assert!(t.stats().refused > 0);
                    assert_eq!(t.entries(0).len(), capacity);
                }
            }
        }
    }

    #[test]
    fn a_full_table_answers_from_the_first_bucket_mostly() {
        for name in PATTERNS {
            let t = LearningTable::new(65_536, 300);
            for mac in pattern(name, 65_536, 3) {
                t.learn(mac, 1, 0);
            }
            let share = t.first_bucket_share();
            assert!(share > 0.9, "{name}: {share}");
        }
    }

    #[test]
    fn expired_entries_make_room_in_a_full_table() {
        let t = LearningTable::new(1024, 10);
        for mac in pattern("sequential", 1024, 0) {
            t.learn(mac, 1, 0);
        }
        // Before aging runs, new addresses take the places of expired ones
        // within reach of their buckets (nearly all); the others are refused.
        let fresh = pattern("random", 512, 9);
        for &mac in &fresh {
            t.learn(mac, 2, 100);
        }
        let s = t.stats();
        assert_eq!(s.entries, 1024);
        assert!(s.refused < 512 / 10, "{s:?}");
        assert_eq!(t.learned_by(2) as u64 + s.refused, 512);
        assert_eq!(s.aged, 512 - s.refused);
        // After aging, every one is learned.
        t.age(100);
        for &mac in &fresh {
            t.learn(mac, 2, 100);
        }
        assert!(fresh.iter().all(|&m| t.find(m, 100) == Some(2)));
        assert_eq!((t.learned_by(1), t.learned_by(2)), (0, 512));
    }

    #[test]
    fn lookups_never_miss_while_other_threads_displace_entries() {
        let t = LearningTable::new(8192, 300);
        let stable = pattern("random", 2048, 5);
        for (i, &mac) in stable.iter().enumerate() {
            t.learn(mac, (i % 7) as PortId, 0);
        }
        std::thread::scope(|s| {
            s.spawn(|| {
                for mac in pattern("sequential", 6000, 0) {
                    t.learn(mac, 9, 0);
                }
            });
            for _ in 0..20 {
                for (i, &mac) in stable.iter().enumerate() {
                    assert_eq!(t.find(mac, 0), Some((i % 7) as PortId));
                }
            }
        });
        assert_eq!(t.stats().refused, 0);
    }

    /// An address in a VLAN (0: none).
    type Key = (u16, MacAddr);

    /// What the table should hold: (VLAN, address) -> (port, last seen,
    /// pinned).
    #[derive(Default)]
    struct Model {
        entries: HashMap<Key, (PortId, u32, bool)>,
        limits: HashMap<PortId, u32>,
        capacity: usize,
        max_age: u32,
        learned: u64,
        moved: u64,
        refused: u64,
        port_limited: u64,
        aged: u64,
    }

    impl Model {
        fn expired(&self, seen: u32, now: u32) -> bool {
            now.wrapping_sub(seen) > self.max_age
        }

        fn learned_by(&self, port: PortId) -> u32 {
            self.entries
                .values()
                .filter(|&&(p, _, pinned)| p == port && !pinned)
                .count() as u32
        }

        fn has_room(&mut self, port: PortId) -> bool {
            let limit = self.limits.get(&port).copied().unwrap_or(UNLIMITED);
            let room = self.learned_by(port) < limit;
            if !room {
                self.port_limited += 1;
            }
            room
        }

        fn find(&self, mac: Key, now: u32) -> Option<PortId> {
            let &(port, seen, pinned) = self.entries.get(&mac)?;
            (pinned || !self.expired(seen, now)).then_some(port)
        }

        /// Learns; `stale_taken` says which expired entry the table gave up
        /// for a new address when full (it picks by bucket), if any.
        fn learn(
            &mut self,
            mac: Key,
            port: PortId,
            now: u32,
            stale_taken: impl FnOnce(&Self) -> Option<Key>,
        ) -> Learned {
            if mac.1.is_multicast() || mac.1.is_zero() {
                return Learned::Ok;
            }
            match self.entries.get(&mac).copied() {
                Some((owner, _, true)) => {
                    return if owner == port {
                        Learned::Ok
                    } else {
                        Learned::Spoofed
                    }
                }
                Some((owner, _, false)) if owner == port => {
                    self.entries.insert(mac, (port, now, false));
                }
                Some(_) => {
                    if self.has_room(port) {
                        self.entries.insert(mac, (port, now, false));
                        self.moved += 1;
                    }
                }
                None => {
                    if !self.has_room(port) {
                        return Learned::Ok;
                    }
                    if self.entries.len() < self.capacity {
                        self.entries.insert(mac, (port, now, false));
                        self.learned += 1;
                    } else if let Some(old) = stale_taken(self) {
                        let (_, seen, pinned) = self.entries[&old];
                        assert!(!pinned && self.expired(seen, now), "took a live entry");
                        self.entries.remove(&old);
                        self.entries.insert(mac, (port, now, false));
                        self.learned += 1;
                        self.aged += 1;
                    } else {
                        self.refused += 1;
                    }
                }
            }
            Learned::Ok
        }

        fn pin(&mut self, mac: Key, port: PortId) -> bool {
            if mac.1.is_multicast() || mac.1.is_zero() {
                return false;
            }
            match self.entries.get(&mac) {
                Some(&(owner, _, true)) => owner == port,
                _ => {
                    self.entries.insert(mac, (port, 0, true));
                    true
                }
            }
        }

        fn unpin(&mut self, mac: Key, port: PortId) {
            if self.entries.get(&mac) == Some(&(port, 0, true))
                || matches!(self.entries.get(&mac), Some(&(p, _, true)) if p == port)
            {
                self.entries.remove(&mac);
            }
        }

        fn forget_port(&mut self, port: PortId) {
            self.entries.retain(|_, &mut (p, _, _)| p != port);
            self.limits.remove(&port);
        }

        fn age(&mut self, now: u32) {
            let before = self.entries.len();
            let max_age = self.max_age;
            self.entries
                .retain(|_, &mut (_, seen, pinned)| pinned || now.wrapping_sub(seen) <= max_age);
            self.aged += (before - self.entries.len()) as u64;
        }
    }

    fn check(t: &LearningTable, m: &Model, universe: &[Key], now: u32, step: usize) {
        for &(vlan, mac) in universe {
            assert_eq!(
                t.find_in(vlan, mac, now),
                m.find((vlan, mac), now),
                "step {step}: {mac} in VLAN {vlan}"
            );
        }
        let s = t.stats();
        assert_eq!(
            (
                s.entries,
                s.learned,
                s.moved,
                s.refused,
                s.port_limited,
                s.aged
            ),
            (
                m.entries.len() as u64,
                m.learned,
                m.moved,
                m.refused,
                m.port_limited,
                m.aged
            ),
            "step {step}: counters"
        );
        for port in 0..6 {
            assert_eq!(
                t.learned_by(port),
                m.learned_by(port),
                "step {step}: port {port}"
            );
        }
    }

    #[test]
    fn random_operations_agree_with_a_map() {
        for seed in 0..8u64 {
            let mut rng = Rng(seed);
            let capacity = [32, 64, 200, 1000][seed as usize % 4];
            let t = LearningTable::new(capacity, 10);
            let mut m = Model {
                capacity,
                max_age: 10,
                ..Model::default()
            };
            // Addresses: sequential, random, a multicast one and zero;
            // without a VLAN, and some of them in VLANs 10 and 4094 too.
            let mut macs = pattern("sequential", 150, seed);
            macs.extend(pattern("random", 150, seed));
            macs.push("01:00:5e:00:00:01".parse().unwrap());
            macs.push(MacAddr([0; 6]));
            let mut universe: Vec<Key> = macs.iter().map(|&m| (0, m)).collect();
            universe.extend(macs.iter().step_by(3).map(|&m| (10, m)));
            universe.extend(macs.iter().step_by(7).map(|&m| (4094, m)));
            let mut now = 1000u32;
            for step in 0..3000 {
                let key = universe[rng.below(universe.len() as u64) as usize];
                let (vlan, mac) = key;
                let port = rng.below(6) as PortId;
                match rng.below(100) {
                    0..=69 => {
                        let got = t.learn_in(vlan, mac, port, now);
                        let want = m.learn(key, port, now, |m| {
                            // The expired entry the table replaced, if any:
                            // the one the model holds and the table lost.
                            let lost: Vec<Key> = m
                                .entries
                                .keys()
                                .copied()
                                .filter(|&(v, k)| t.locate(k.to_u64(), v).is_none())
                                .collect();
                            assert!(lost.len() <= 1, "step {step}: lost {lost:?}");
                            lost.first().copied()
                        });
                        assert_eq!(got, want, "step {step}: learn {key:?} on {port}");
                    }
                    70..=79 => now += rng.below(5) as u32,
                    80..=83 => {
                        t.age(now);
                        m.age(now);
                    }
                    84..=85 => {
                        t.forget_port(port);
                        m.forget_port(port);
                    }
                    86..=89 => {
                        let limit = 1 + rng.below(40) as u32;
                        t.set_port_limit(port, limit);
                        m.limits.insert(port, limit);
                    }
                    90..=94 => {
                        assert_eq!(t.pin(mac, vlan, port), m.pin(key, port), "step {step}: pin");
                    }
                    _ => {
                        t.unpin(mac, vlan, port);
                        m.unpin(key, port);
                    }
                }
                check(&t, &m, &universe, now, step);
            }
            // `vswitch fdb` lists what the model holds, fresh or pinned.
            let listed: Vec<(Key, PortId)> = t
                .entries(now)
                .iter()
                .map(|e| ((e.vlan, e.mac), e.port))
                .collect();
            let mut want: Vec<(Key, PortId)> = m
                .entries
                .iter()
                .filter(|(_, &(_, seen, pinned))| pinned || !m.expired(seen, now))
                .map(|(&mac, &(port, _, _))| (mac, port))
                .collect();
            want.sort();
            assert_eq!(listed, want, "seed {seed}");
        }
    }
}
