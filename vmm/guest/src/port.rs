//! x86 port I/O. At CPL3 it works through the TSS I/O permission bitmap that
//! the boot code installs (every port allowed). Every access is counted.

use crate::counters::COUNTERS;
use core::arch::asm;

/// Writes a byte to an I/O port.
///
/// # Safety
/// The port must belong to a device the caller means to program.
#[inline]
pub unsafe fn outb(port: u16, value: u8) {
    COUNTERS.pio.inc();
    // SAFETY: port I/O has no memory effects visible to Rust; the caller
    // vouches for the device semantics.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    };
}

/// Reads a byte from an I/O port.
///
/// # Safety
/// The port must belong to a device the caller means to read.
#[inline]
pub unsafe fn inb(port: u16) -> u8 {
    COUNTERS.pio.inc();
    let value: u8;
    // SAFETY: as for `outb`.
    unsafe {
        asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack, preserves_flags))
    };
    value
}

/// Writes a 32-bit word to an I/O port.
///
/// # Safety
/// The port must belong to a device the caller means to program.
#[inline]
pub unsafe fn outl(port: u16, value: u32) {
    COUNTERS.pio.inc();
    // SAFETY: as for `outb`.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags))
    };
}

/// Reads a 32-bit word from an I/O port.
///
/// # Safety
/// The port must belong to a device the caller means to read.
#[inline]
pub unsafe fn inl(port: u16) -> u32 {
    COUNTERS.pio.inc();
    let value: u32;
    // SAFETY: as for `outb`.
    unsafe {
        asm!("in eax, dx", in("dx") port, out("eax") value, options(nomem, nostack, preserves_flags))
    };
    value
}
