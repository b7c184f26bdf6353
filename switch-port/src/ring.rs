//! A view of one ring inside a port region: the shared indices, the need-kick
//! flags and the slots, accessed with atomics and single volatile reads so
//! that a value the other side writes is read exactly once.

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::layout::{ring_field, RING_HEADER_SIZE, SLOT_SIZE};
use crate::region::Region;

/// One ring slot: which buffer holds the frame, its length and flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Slot {
    /// Buffer index in `0..num_bufs`.
    pub buf: u32,
    /// Frame length in bytes.
    pub len: u16,
    /// Flags (none defined yet; written as 0, ignored on read).
    pub flags: u16,
}

impl Slot {
    #[inline]
    fn to_bits(self) -> u64 {
        self.buf as u64 | (self.len as u64) << 32 | (self.flags as u64) << 48
    }

    #[inline]
    fn from_bits(bits: u64) -> Slot {
        Slot {
            buf: bits as u32,
            len: (bits >> 32) as u16,
            flags: (bits >> 48) as u16,
        }
    }
}

/// A ring inside a mapped [`Region`], borrowed from it: the view cannot
/// outlive the mapping, so no safe code reaches a ring after its region is
/// unmapped. It is two words (base and size) and `Copy`; taking one from a
/// region costs two loads.
///
/// ```
/// use std::sync::atomic::Ordering;
/// use switch_port::layout::Layout;
/// use switch_port::region::Region;
///
/// let region = Region::create("doc", Layout::new(64, 2048)?)?;
/// let tx = region.tx_ring();
/// assert_eq!(tx.tail().load(Ordering::Acquire), 63, "all slots free");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A view used after its region is gone does not compile:
///
/// ```compile_fail,E0505
/// use std::sync::atomic::Ordering;
/// use switch_port::layout::Layout;
/// use switch_port::region::Region;
///
/// let region = Region::create("doc", Layout::new(64, 2048).unwrap()).unwrap();
/// let tx = region.tx_ring();
/// drop(region); // unmaps the rings
/// tx.head().load(Ordering::Acquire);
/// ```
///
/// ```compile_fail,E0597
/// use switch_port::layout::Layout;
/// use switch_port::region::Region;
///
/// let tx = {
///     let region = Region::create("doc", Layout::new(64, 2048).unwrap()).unwrap();
///     region.tx_ring()
/// };
/// tx.size();
/// ```
#[derive(Clone, Copy, Debug)]
pub struct RingView<'a> {
    base: NonNull<u8>,
    size: u32,
    region: PhantomData<&'a Region>,
}

// SAFETY: the view only performs atomic or volatile accesses to shared memory
// that the borrowed region keeps mapped; such accesses are valid from any
// thread.
unsafe impl Send for RingView<'_> {}
// SAFETY: as above.
unsafe impl Sync for RingView<'_> {}

impl<'a> RingView<'a> {
    /// Creates a view of the ring whose header starts at `base`.
    ///
    /// # Safety
    /// `base` must point to a 64-byte aligned ring of `size` slots (a power
    /// of two) inside a mapping that stays mapped for `'a`.
    #[inline]
    pub(crate) unsafe fn new(base: NonNull<u8>, size: u32) -> RingView<'a> {
        RingView {
            base,
            size,
            region: PhantomData,
        }
    }

    /// Number of slots.
    #[inline]
    pub fn size(&self) -> u32 {
        self.size
    }

    #[inline]
    fn field(&self, offset: usize) -> &'a AtomicU32 {
        // SAFETY: offset is one of the ring_field constants, inside the header;
        // the pointer is 4-byte aligned and valid while the region is mapped,
        // which it is for 'a.
        unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(offset).cast::<u32>()) }
    }

    /// The client-written `head` index (unvalidated).
    #[inline]
    pub fn head(&self) -> &'a AtomicU32 {
        self.field(ring_field::HEAD)
    }

    /// The client-written `cur` index (unvalidated).
    #[inline]
    pub fn cur(&self) -> &'a AtomicU32 {
        self.field(ring_field::CUR)
    }

    /// The switch-written `tail` index.
    #[inline]
    pub fn tail(&self) -> &'a AtomicU32 {
        self.field(ring_field::TAIL)
    }

    /// Flag set by the consumer when it sleeps waiting for frames.
    #[inline]
    pub fn consumer_needs_kick(&self) -> &'a AtomicU32 {
        self.field(ring_field::CONSUMER_NEEDS_KICK)
    }

    /// Flag set by the producer when it sleeps waiting for free slots.
    #[inline]
    pub fn producer_needs_kick(&self) -> &'a AtomicU32 {
        self.field(ring_field::PRODUCER_NEEDS_KICK)
    }

    /// The address of slot `index` (masked into range), for a prefetch hint.
    #[inline]
    pub fn slot_address(&self, index: u32) -> *const u8 {
        let i = (index & (self.size - 1)) as usize;
        self.base
            .as_ptr()
            .cast_const()
            .wrapping_add(RING_HEADER_SIZE + i * SLOT_SIZE)
    }

    /// Reads slot `index` (masked into range) with one volatile load.
    #[inline]
    pub fn read_slot(&self, index: u32) -> Slot {
        let i = (index & (self.size - 1)) as usize;
        // SAFETY: i < size, so the slot lies inside the ring; 8-byte aligned
        // because the header is 320 bytes and the ring 64-byte aligned.
        let bits = unsafe {
            std::ptr::read_volatile(
                self.base
                    .as_ptr()
                    .add(RING_HEADER_SIZE + i * SLOT_SIZE)
                    .cast::<u64>(),
            )
        };
        Slot::from_bits(bits)
    }

    /// Writes slot `index` (masked into range) with one volatile store.
    #[inline]
    pub fn write_slot(&self, index: u32, slot: Slot) {
        let i = (index & (self.size - 1)) as usize;
        // SAFETY: as in read_slot.
        unsafe {
            std::ptr::write_volatile(
                self.base
                    .as_ptr()
                    .add(RING_HEADER_SIZE + i * SLOT_SIZE)
                    .cast::<u64>(),
                slot.to_bits(),
            )
        }
    }

    /// Sets head, cur and tail (only when the region is created).
    pub(crate) fn init_indices(&self, head: u32, tail: u32) {
        self.head().store(head, Ordering::Relaxed);
        self.cur().store(head, Ordering::Relaxed);
        self.tail().store(tail, Ordering::Relaxed);
        self.consumer_needs_kick().store(0, Ordering::Relaxed);
        self.producer_needs_kick().store(0, Ordering::Relaxed);
    }

    /// `(to - from) mod size`.
    #[inline]
    pub fn distance(&self, from: u32, to: u32) -> u32 {
        to.wrapping_sub(from) & (self.size - 1)
    }

    /// `(index + n) mod size`.
    #[inline]
    pub fn advance(&self, index: u32, n: u32) -> u32 {
        index.wrapping_add(n) & (self.size - 1)
    }
}
