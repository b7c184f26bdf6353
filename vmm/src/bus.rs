//! An address bus: non-overlapping ranges of port or MMIO addresses mapped to
//! device identifiers. The vCPU thread owns one for port I/O and one for
//! MMIO; PCI BAR moves insert and remove ranges at run time.

use std::collections::BTreeMap;

/// A range `[base, base + len)` on a bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusRange {
    /// First address.
    pub base: u64,
    /// Length in bytes (non-zero).
    pub len: u64,
}

impl BusRange {
    /// Last address (inclusive).
    pub fn last(&self) -> u64 {
        self.base + (self.len - 1)
    }

    fn overlaps(&self, other: &BusRange) -> bool {
        self.base <= other.last() && other.base <= self.last()
    }
}

/// Why a range could not be inserted.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// Zero length or wrapping past the end of the address space.
    #[error("invalid bus range {base:#x}+{len:#x}")]
    Invalid {
        /// Base.
        base: u64,
        /// Length.
        len: u64,
    },
    /// The range overlaps a device already on the bus.
    #[error("bus range {base:#x}+{len:#x} overlaps another device")]
    Overlap {
        /// Base.
        base: u64,
        /// Length.
        len: u64,
    },
}

/// Non-overlapping ranges mapped to a device id of type `T`.
#[derive(Debug, Default, Clone)]
pub struct Bus<T: Copy> {
    ranges: BTreeMap<u64, (BusRange, T)>,
}

impl<T: Copy> Bus<T> {
    /// An empty bus.
    pub fn new() -> Bus<T> {
        Bus {
            ranges: BTreeMap::new(),
        }
    }

    /// Maps `[base, base + len)` to `device`.
    pub fn insert(&mut self, base: u64, len: u64, device: T) -> Result<(), BusError> {
        if len == 0 || base.checked_add(len - 1).is_none() {
            return Err(BusError::Invalid { base, len });
        }
        let range = BusRange { base, len };
        // Only the nearest range below and the ranges starting inside can overlap.
        let below = self.ranges.range(..=base).next_back();
        let inside = self.ranges.range(base..=range.last()).next();
        if below
            .into_iter()
            .chain(inside)
            .any(|(_, (r, _))| r.overlaps(&range))
        {
            return Err(BusError::Overlap { base, len });
        }
        self.ranges.insert(base, (range, device));
        Ok(())
    }

    /// Removes the range that starts at `base`; returns its device.
    pub fn remove(&mut self, base: u64) -> Option<T> {
        self.ranges.remove(&base).map(|(_, d)| d)
    }

    /// The device covering `addr` and the offset of `addr` in its range.
    #[inline]
    pub fn lookup(&self, addr: u64) -> Option<(T, u64)> {
        let (_, (range, device)) = self.ranges.range(..=addr).next_back()?;
        (addr <= range.last()).then(|| (*device, addr - range.base))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_insert_remove() {
        let mut bus = Bus::new();
        bus.insert(0x3f8, 8, 's').unwrap();
        bus.insert(0xcf8, 8, 'p').unwrap();
        assert_eq!(bus.lookup(0x3f8), Some(('s', 0)));
        assert_eq!(bus.lookup(0x3ff), Some(('s', 7)));
        assert_eq!(bus.lookup(0x400), None);
        assert_eq!(bus.lookup(0x3f7), None);
        assert_eq!(
            bus.insert(0x3fc, 8, 'x'),
            Err(BusError::Overlap {
                base: 0x3fc,
                len: 8
            })
        );
        assert_eq!(
            bus.insert(0x3f0, 9, 'x'),
            Err(BusError::Overlap {
                base: 0x3f0,
                len: 9
            })
        );
        assert!(bus.insert(0x3f0, 8, 'x').is_ok());
        assert!(bus.insert(0, 0, 'x').is_err());
        assert!(bus.insert(u64::MAX, 2, 'x').is_err());
        assert_eq!(bus.remove(0x3f8), Some('s'));
        assert_eq!(bus.lookup(0x3f8), None);
        bus.insert(0xFFFF_FFFF_FFFF_FFF0, 16, 'h').unwrap();
        assert_eq!(bus.lookup(u64::MAX), Some(('h', 15)));
    }
}
