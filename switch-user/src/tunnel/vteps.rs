//! The tunnel's own forwarding table: which remote VTEP a MAC address was
//! last seen behind (Linux's vxlan FDB). Bounded in size; entries older
//! than the maximum age are not used and make room for new ones.

use std::collections::HashMap;
use std::net::Ipv4Addr;

/// Default number of addresses a tunnel remembers.
pub const DEFAULT_CAPACITY: usize = 4096;

/// Counters of the table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VtepStats {
    /// Addresses learned (new entries).
    pub learned: u64,
    /// Addresses that moved to another VTEP.
    pub moved: u64,
    /// Addresses not learned because the table was full.
    pub refused: u64,
    /// Entries dropped because they were too old.
    pub aged: u64,
}

/// MAC address to VTEP, with the time each was last seen.
#[derive(Debug)]
pub struct VtepTable {
    entries: HashMap<[u8; 6], (Ipv4Addr, u32)>,
    capacity: usize,
    max_age: u32,
    last_sweep: u32,
    stats: VtepStats,
}

impl VtepTable {
    /// A table of at most `capacity` addresses kept `max_age` seconds.
    pub fn new(capacity: usize, max_age: u32) -> VtepTable {
        VtepTable {
            entries: HashMap::new(),
            capacity: capacity.max(1),
            max_age: max_age.max(1),
            last_sweep: 0,
            stats: VtepStats::default(),
        }
    }

    /// The VTEP behind `mac`, if seen within the maximum age at `now`.
    pub fn get(&self, mac: &[u8; 6], now: u32) -> Option<Ipv4Addr> {
        self.entries
            .get(mac)
            .filter(|(_, seen)| now.saturating_sub(*seen) <= self.max_age)
            .map(|(vtep, _)| *vtep)
    }

    /// Whether `learn(mac, vtep, now)` would change anything (so that the
    /// caller may check under a shared lock first).
    pub fn is_current(&self, mac: &[u8; 6], vtep: Ipv4Addr, now: u32) -> bool {
        self.entries.get(mac) == Some(&(vtep, now))
    }

    /// Records that `mac` (a unicast address) was seen behind `vtep` at `now`.
    pub fn learn(&mut self, mac: [u8; 6], vtep: Ipv4Addr, now: u32) {
        if mac[0] & 1 != 0 || mac == [0; 6] {
            return;
        }
        if let Some(entry) = self.entries.get_mut(&mac) {
            if entry.0 != vtep {
                self.stats.moved += 1;
            }
            *entry = (vtep, now);
            return;
        }
        if self.entries.len() >= self.capacity {
            self.sweep(now);
        }
        if self.entries.len() >= self.capacity {
            self.stats.refused += 1;
            return;
        }
        self.entries.insert(mac, (vtep, now));
        self.stats.learned += 1;
    }

    /// Drops entries past the maximum age (at most once a second: a full
    /// table of live entries is not swept on every refusal).
    pub fn sweep(&mut self, now: u32) {
        if self.last_sweep == now && now != 0 {
            return;
        }
        self.last_sweep = now;
        let before = self.entries.len();
        let max_age = self.max_age;
        self.entries
            .retain(|_, (_, seen)| now.saturating_sub(*seen) <= max_age);
        self.stats.aged += (before - self.entries.len()) as u64;
    }

    /// The live entries at `now`: address, VTEP and age, sorted by address.
    pub fn entries(&self, now: u32) -> Vec<([u8; 6], Ipv4Addr, u32)> {
        let mut out: Vec<_> = self
            .entries
            .iter()
            .map(|(mac, (vtep, seen))| (*mac, *vtep, now.saturating_sub(*seen)))
            .filter(|(_, _, age)| *age <= self.max_age)
            .collect();
        out.sort_unstable_by_key(|(mac, _, _)| *mac);
        out
    }

    /// Entries in use.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The counters.
    pub fn stats(&self) -> VtepStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 2];

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, last)
    }

    #[test]
    fn learns_moves_ages_and_refuses_when_full() {
        let mut t = VtepTable::new(1, 10);
        t.learn(A, ip(1), 0);
        assert_eq!(t.get(&A, 5), Some(ip(1)));
        t.learn(A, ip(2), 5);
        assert_eq!(t.get(&A, 5), Some(ip(2)));
        assert!(t.is_current(&A, ip(2), 5));
        t.learn(B, ip(1), 6);
        assert_eq!(t.get(&B, 6), None, "full");
        assert_eq!(t.get(&A, 16), None, "too old");
        t.learn(B, ip(1), 16);
        assert_eq!(t.get(&B, 16), Some(ip(1)), "the old entry made room");
        assert_eq!(t.entries(20), [(B, ip(1), 4)]);
        // Multicast and zero sources are never learned.
        t.learn([1, 0, 0x5e, 0, 0, 1], ip(3), 16);
        t.learn([0; 6], ip(3), 16);
        assert_eq!(t.len(), 1);
        assert_eq!(
            t.stats(),
            VtepStats {
                learned: 2,
                moved: 1,
                refused: 1,
                aged: 1
            }
        );
    }
}
