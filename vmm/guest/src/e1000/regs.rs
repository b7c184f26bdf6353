//! [`Regs`], the counted MMIO accessor of the 82540EM's BAR0, and the
//! register values this driver chooses. Offsets and bits are
//! [`e1000_spec::regs`]'s (the device model uses the same crate).

use crate::counters::COUNTERS;
use core::arch::asm;
use core::ptr::{read_volatile, write_volatile};
use e1000_spec::regs::{icr, MMIO_SIZE};

/// The receive causes the driver enables while it waits for frames.
pub const INT_RX: u32 = icr::RXT0 | icr::RXO | icr::RXDMT0;

/// The device's registers: counted volatile 32-bit accesses to BAR0.
#[derive(Clone, Copy, Debug)]
pub struct Regs {
    base: usize,
}

impl Regs {
    /// Registers at `base`.
    ///
    /// # Safety
    /// `base` must be the e1000's BAR0, identity mapped (uncached), 128 KiB.
    pub unsafe fn new(base: usize) -> Regs {
        Regs { base }
    }

    /// The BAR0 address.
    pub fn base(&self) -> usize {
        self.base
    }

    /// Reads the register at `offset` (must be < 128 KiB and 4-aligned).
    #[inline]
    pub fn read(&self, offset: u32) -> u32 {
        debug_assert!(offset < MMIO_SIZE && offset.is_multiple_of(4));
        COUNTERS.mmio_reads.inc();
        // SAFETY: a dword inside BAR0 (see `new`).
        unsafe { read_volatile((self.base + (offset & (MMIO_SIZE - 4)) as usize) as *const u32) }
    }

    /// Writes the register at `offset` (must be < 128 KiB and 4-aligned).
    #[inline]
    pub fn write(&self, offset: u32, value: u32) {
        debug_assert!(offset < MMIO_SIZE && offset.is_multiple_of(4));
        COUNTERS.mmio_writes.inc();
        // SAFETY: a dword inside BAR0 (see `new`).
        unsafe {
            write_volatile(
                (self.base + (offset & (MMIO_SIZE - 4)) as usize) as *mut u32,
                value,
            )
        }
    }

    /// Writes `value` with an access of `width` bytes (1, 2 or 4) at any
    /// offset inside BAR0, aligned or not: for the chaos workload.
    pub fn write_sized(&self, offset: u32, width: u8, value: u32) {
        let addr = self.base + (offset % MMIO_SIZE) as usize;
        COUNTERS.mmio_writes.inc();
        // SAFETY: inside BAR0. x86 allows unaligned accesses, which the VMM
        // sees as one MMIO access of `width` bytes; done in assembly because
        // Rust's volatile accesses must be aligned.
        unsafe {
            match width {
                1 => {
                    asm!("mov byte ptr [{0}], {1}", in(reg) addr, in(reg_byte) value as u8, options(nostack, preserves_flags))
                }
                2 => {
                    asm!("mov word ptr [{0}], {1:x}", in(reg) addr, in(reg) value, options(nostack, preserves_flags))
                }
                _ => {
                    asm!("mov dword ptr [{0}], {1:e}", in(reg) addr, in(reg) value, options(nostack, preserves_flags))
                }
            }
        }
    }

    /// Reads with an access of `width` bytes (1, 2 or 4) at any offset
    /// inside BAR0, aligned or not: for the chaos workload.
    pub fn read_sized(&self, offset: u32, width: u8) -> u32 {
        let addr = self.base + (offset % MMIO_SIZE) as usize;
        COUNTERS.mmio_reads.inc();
        let value: u32;
        // SAFETY: as for `write_sized`.
        unsafe {
            match width {
                1 => {
                    asm!("movzx {1:e}, byte ptr [{0}]", in(reg) addr, out(reg) value, options(nostack, preserves_flags))
                }
                2 => {
                    asm!("movzx {1:e}, word ptr [{0}]", in(reg) addr, out(reg) value, options(nostack, preserves_flags))
                }
                _ => {
                    asm!("mov {1:e}, dword ptr [{0}]", in(reg) addr, out(reg) value, options(nostack, preserves_flags))
                }
            }
        }
        value
    }
}
