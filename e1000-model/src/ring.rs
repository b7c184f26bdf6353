//! Descriptor ring geometry and batched descriptor fetches.

use e1000_spec::desc::SIZE as DESCRIPTOR_SIZE;

use super::dma::{Dma, DmaError};

/// Descriptors fetched with one DMA read.
pub const FETCH_BATCH: usize = 32;

/// A validated descriptor ring: base address and number of descriptors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ring {
    /// Guest-physical address of descriptor 0.
    pub base: u64,
    /// Number of descriptors (at least 8: lengths are multiples of
    /// [`e1000_spec::desc::RING_LEN_ALIGN`]).
    pub size: u32,
}

/// Why a ring cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// Zero length or not inside guest memory.
    Invalid,
    /// Head or tail at or past the number of descriptors.
    IndexOutOfRange,
}

impl Ring {
    /// Checks a ring whose registers hold `base`, `length` (bytes) and the
    /// indices `head` and `tail`.
    pub fn validate(
        dma: &impl Dma,
        base: u64,
        length: u32,
        head: u32,
        tail: u32,
    ) -> Result<Self, RingError> {
        let size = length / DESCRIPTOR_SIZE as u32;
        if size == 0 || !dma.contains(base, u64::from(length)) {
            return Err(RingError::Invalid);
        }
        if head >= size || tail >= size {
            return Err(RingError::IndexOutOfRange);
        }
        Ok(Self { base, size })
    }

    /// The index after `index`, wrapping.
    #[inline]
    pub fn next(&self, index: u32) -> u32 {
        if index + 1 >= self.size {
            0
        } else {
            index + 1
        }
    }

    /// Descriptors from `from` up to (not including) `to`, wrapping.
    #[inline]
    pub fn distance(&self, from: u32, to: u32) -> u32 {
        if to >= from {
            to - from
        } else {
            self.size - from + to
        }
    }

    /// Guest address of descriptor `index` (index < size, checked by callers;
    /// saturates instead of overflowing).
    #[inline]
    pub fn address(&self, index: u32) -> u64 {
        self.base
            .saturating_add(u64::from(index) * DESCRIPTOR_SIZE as u64)
    }
}

/// A window of descriptors read ahead in one DMA access.
pub struct DescriptorCache {
    buf: [u8; DESCRIPTOR_SIZE * FETCH_BATCH],
    start: u32,
    count: u32,
}

impl Default for DescriptorCache {
    fn default() -> Self {
        Self {
            buf: [0; DESCRIPTOR_SIZE * FETCH_BATCH],
            start: 0,
            count: 0,
        }
    }
}

impl DescriptorCache {
    /// Descriptor `index`; on a miss, fetches up to [`FETCH_BATCH`]
    /// descriptors from `index` on, not past the end of the ring nor past
    /// `limit` (exclusive, the first index the device does not own).
    pub fn get(
        &mut self,
        dma: &impl Dma,
        ring: &Ring,
        index: u32,
        limit: u32,
    ) -> Result<[u8; DESCRIPTOR_SIZE], DmaError> {
        let cached = index >= self.start && index - self.start < self.count;
        if !cached {
            let owned = ring.distance(index, limit).max(1);
            let contiguous = ring.size - index;
            let count = owned.min(contiguous).min(FETCH_BATCH as u32);
            let bytes = count as usize * DESCRIPTOR_SIZE;
            self.count = 0;
            dma.read(ring.address(index), &mut self.buf[..bytes])?;
            self.start = index;
            self.count = count;
        }
        let offset = (index - self.start) as usize * DESCRIPTOR_SIZE;
        let mut descriptor = [0u8; DESCRIPTOR_SIZE];
        descriptor.copy_from_slice(&self.buf[offset..offset + DESCRIPTOR_SIZE]);
        Ok(descriptor)
    }
}
