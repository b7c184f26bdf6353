//! The Common Status Block (CSB) of the e1000 paravirtual extension
//! (`docs/csb.md`; ids, registers and field offsets from
//! [`e1000_spec::csb`]): one 4 KiB page of guest RAM shared with the device,
//! through which the driver publishes its ring tails (guest_tdt, guest_rdt)
//! and reads the device's heads (host_tdh, host_rdh), and each side tells
//! the other whether it sleeps and needs a kick (a register write or an
//! interrupt).
//!
//! The page is little-endian u32 fields; the first cache line is written by
//! the guest, the second by the device. Every access here is one atomic
//! 32-bit load or store (the device reads and writes the page from another
//! thread). The need-kick rule, on both sides and for every flag: set your
//! flag, full barrier ([`full_barrier`]), re-check the other side's index,
//! and only then sleep; the waker publishes its index, full barrier, reads
//! the flag and kicks if it is set.

use core::sync::atomic::{fence, AtomicU32, Ordering};
use e1000_spec::csb::{field, is_set, FLAG_CLEAR, FLAG_SET, NONE, SIZE};

/// The block's memory: a page of u32 fields, page aligned (so 64-byte
/// aligned, as the device requires, and never crossing the end of RAM).
#[repr(C, align(4096))]
pub struct CsbPage([AtomicU32; SIZE / 4]);

impl CsbPage {
    /// A zeroed page.
    pub const fn new() -> CsbPage {
        CsbPage([const { AtomicU32::new(0) }; SIZE / 4])
    }
}

impl Default for CsbPage {
    fn default() -> Self {
        CsbPage::new()
    }
}

const _: () = assert!(core::mem::size_of::<CsbPage>() == SIZE);
const _: () = assert!(core::mem::align_of::<CsbPage>() >= e1000_spec::csb::ALIGN);

/// A full (store-load) barrier: `mfence`, usable at CPL3.
#[inline]
pub fn full_barrier() {
    fence(Ordering::SeqCst);
}

/// A handle on the driver's CSB page (copyable: the page is a static that
/// lives for the whole run).
#[derive(Clone, Copy)]
pub struct Csb {
    page: &'static CsbPage,
}

impl core::fmt::Debug for Csb {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Csb({:#x})", self.addr())
    }
}

impl Csb {
    /// The block in `page`.
    pub fn new(page: &'static CsbPage) -> Csb {
        Csb { page }
    }

    /// Its physical address (the identity map makes it the pointer).
    pub fn addr(&self) -> u64 {
        self.page as *const CsbPage as u64
    }

    /// Reads the field at byte offset `offset` (acquire: what the device
    /// wrote before it is visible after).
    #[inline]
    pub fn load(&self, offset: usize) -> u32 {
        self.page.0[offset / 4].load(Ordering::Acquire)
    }

    /// Writes the field at byte offset `offset` (release: what the driver
    /// wrote before, descriptors included, is visible to the device first).
    #[inline]
    pub fn store(&self, offset: usize, value: u32) {
        self.page.0[offset / 4].store(value, Ordering::Release);
    }

    /// Zeroes the whole page.
    pub fn clear(&self) {
        for word in self.page.0.iter() {
            word.store(0, Ordering::Relaxed);
        }
        fence(Ordering::Release);
    }

    /// Prepares the guest half before the device maps the page: the
    /// indices the registers hold now (`tdt`, `rdt`), no kick wanted, the
    /// unused fields at their "unused" values, guest_csb_on still 0.
    pub fn init_guest_half(&self, tdt: u32, rdt: u32) {
        self.clear();
        self.store(field::GUEST_TDT, tdt);
        self.store(field::GUEST_RDT, rdt);
        self.store(field::GUEST_TXKICK_AT, NONE);
        self.store(field::GUEST_USE_MSIX, 0);
    }

    /// Sets or clears guest_csb_on, followed by a full barrier.
    pub fn set_on(&self, on: bool) {
        self.set_flag(field::GUEST_CSB_ON, on);
        full_barrier();
    }

    /// Sets or clears the flag field at `offset` (no barrier).
    #[inline]
    fn set_flag(&self, offset: usize, on: bool) {
        self.store(offset, if on { FLAG_SET } else { FLAG_CLEAR });
    }

    /// Publishes the TX tail (guest_tdt).
    #[inline]
    pub fn set_guest_tdt(&self, tail: u32) {
        self.store(field::GUEST_TDT, tail);
    }

    /// Publishes the RX tail (guest_rdt).
    #[inline]
    pub fn set_guest_rdt(&self, tail: u32) {
        self.store(field::GUEST_RDT, tail);
    }

    /// Sets or clears guest_need_txkick (no barrier: see [`full_barrier`]).
    #[inline]
    pub fn set_need_txkick(&self, on: bool) {
        self.set_flag(field::GUEST_NEED_TXKICK, on);
    }

    /// Sets or clears guest_need_rxkick (no barrier: see [`full_barrier`]).
    #[inline]
    pub fn set_need_rxkick(&self, on: bool) {
        self.set_flag(field::GUEST_NEED_RXKICK, on);
    }

    /// Whether the device's TX worker sleeps (host_need_txkick != 0).
    #[inline]
    pub fn host_needs_txkick(&self) -> bool {
        is_set(self.load(field::HOST_NEED_TXKICK))
    }

    /// Whether the switch walks the rings (host_offloaded != 0): frames
    /// arrive in the RX ring with no VMM thread in between.
    #[inline]
    pub fn host_offloaded(&self) -> bool {
        is_set(self.load(field::HOST_OFFLOADED))
    }

    /// Whether the device waits for RX buffers (host_need_rxkick != 0).
    #[inline]
    pub fn host_needs_rxkick(&self) -> bool {
        is_set(self.load(field::HOST_NEED_RXKICK))
    }

    /// The device's RX head (host_rdh), raw: the caller validates it.
    #[inline]
    pub fn host_rdh(&self) -> u32 {
        self.load(field::HOST_RDH)
    }

    /// The device's TX head (host_tdh), raw.
    #[inline]
    pub fn host_tdh(&self) -> u32 {
        self.load(field::HOST_TDH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> &'static CsbPage {
        Box::leak(Box::new(CsbPage::new()))
    }

    #[test]
    fn layout_and_guest_half() {
        let page = page();
        let csb = Csb::new(page);
        assert_eq!(csb.addr() % 4096, 0);
        csb.store(field::HOST_TDH, 77);
        csb.init_guest_half(5, 511);
        // Cleared, then the guest half written at the docs/csb.md offsets
        // (literal here, to check e1000_spec's against the document too).
        assert_eq!(csb.host_tdh(), 0);
        let word = |off: usize| page.0[off / 4].load(Ordering::Relaxed);
        assert_eq!(word(0), 5);
        assert_eq!(word(16), 511);
        assert_eq!(word(20), NONE);
        assert_eq!(word(24), 0);
        assert_eq!(word(12), 0);
        csb.set_on(true);
        csb.set_need_txkick(true);
        csb.set_need_rxkick(true);
        assert_eq!((word(12), word(4), word(8)), (1, 1, 1));
        page.0[68 / 4].store(7, Ordering::Relaxed);
        page.0[84 / 4].store(0, Ordering::Relaxed);
        page.0[80 / 4].store(42, Ordering::Relaxed);
        assert!(csb.host_needs_txkick());
        assert!(!csb.host_needs_rxkick());
        assert_eq!(csb.host_rdh(), 42);
    }
}
