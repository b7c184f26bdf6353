//! The local APIC (0xFEE0_0000) and the IOAPIC (0xFEC0_0000), both through
//! identity-mapped, uncached user pages, so that CPL3 handlers can EOI and
//! the CPL3 driver can route its interrupt pin.

use crate::counters::COUNTERS;
use core::ptr::{read_volatile, write_volatile};

/// Local APIC base address.
pub const LAPIC_BASE: usize = 0xFEE0_0000;
/// IOAPIC base address.
pub const IOAPIC_BASE: usize = 0xFEC0_0000;

const LAPIC_ID: usize = 0x020;
const LAPIC_TPR: usize = 0x080;
const LAPIC_EOI: usize = 0x0B0;
const LAPIC_SVR: usize = 0x0F0;
const LAPIC_LVT_TIMER: usize = 0x320;
const LAPIC_LVT_LINT0: usize = 0x350;
const LAPIC_LVT_LINT1: usize = 0x360;
const LAPIC_LVT_ERROR: usize = 0x370;
const LAPIC_TIMER_INITIAL: usize = 0x380;
const LAPIC_TIMER_DIVIDE: usize = 0x3E0;
const LVT_MASKED: u32 = 1 << 16;
const SVR_ENABLE: u32 = 1 << 8;

/// KVM's (and QEMU's) APIC timer runs at 1 GHz before the divider.
pub const APIC_TIMER_HZ: u64 = 1_000_000_000;
/// The divide configuration used (divide by 16).
const DIVIDE_BY_16: u32 = 0x3;
/// The timer's count rate after the divider.
pub const TIMER_COUNT_HZ: u64 = APIC_TIMER_HZ / 16;

fn lapic_write(reg: usize, value: u32) {
    // SAFETY: a register of the local APIC page, identity mapped uncached.
    unsafe { write_volatile((LAPIC_BASE + reg) as *mut u32, value) };
}

fn lapic_read(reg: usize) -> u32 {
    // SAFETY: a register of the local APIC page, identity mapped uncached.
    unsafe { read_volatile((LAPIC_BASE + reg) as *const u32) }
}

/// Enables the local APIC with `spurious_vector`, masks LINT0/LINT1 (so the
/// PIC's INTR can never reach the CPU) and the error LVT, and sets the timer
/// to one-shot mode on `timer_vector`, stopped (see [`timer_oneshot`]).
pub fn init_local(spurious_vector: u8, timer_vector: u8) {
    lapic_write(LAPIC_SVR, SVR_ENABLE | spurious_vector as u32);
    lapic_write(LAPIC_TPR, 0);
    lapic_write(LAPIC_LVT_LINT0, LVT_MASKED);
    lapic_write(LAPIC_LVT_LINT1, LVT_MASKED);
    lapic_write(LAPIC_LVT_ERROR, LVT_MASKED);
    lapic_write(LAPIC_TIMER_DIVIDE, DIVIDE_BY_16);
    lapic_write(LAPIC_LVT_TIMER, timer_vector as u32);
    lapic_write(LAPIC_TIMER_INITIAL, 0);
}

/// (Re)starts the one-shot timer: one interrupt after `count` counts at
/// [`TIMER_COUNT_HZ`]; a pending one is replaced (0 stops the timer).
pub fn timer_oneshot(count: u32) {
    lapic_write(LAPIC_TIMER_INITIAL, count);
}

/// Signals end of interrupt to the local APIC.
#[inline]
pub fn eoi() {
    COUNTERS.eoi_writes.inc();
    lapic_write(LAPIC_EOI, 0);
}

/// This CPU's APIC id.
pub fn id() -> u8 {
    (lapic_read(LAPIC_ID) >> 24) as u8
}

fn ioapic_write(reg: u32, value: u32) {
    // SAFETY: IOREGSEL and IOWIN of the IOAPIC page, identity mapped uncached.
    unsafe {
        write_volatile(IOAPIC_BASE as *mut u32, reg);
        write_volatile((IOAPIC_BASE + 0x10) as *mut u32, value);
    }
}

fn ioapic_read(reg: u32) -> u32 {
    // SAFETY: IOREGSEL and IOWIN of the IOAPIC page, identity mapped uncached.
    unsafe {
        write_volatile(IOAPIC_BASE as *mut u32, reg);
        read_volatile((IOAPIC_BASE + 0x10) as *const u32)
    }
}

/// Number of IOAPIC redirection entries.
pub fn ioapic_pins() -> u32 {
    ((ioapic_read(1) >> 16) & 0xFF) + 1
}

/// Routes IOAPIC `pin` to `vector` on APIC `dest`: fixed delivery, physical
/// destination, active high, **edge** triggered, unmasked.
///
/// Edge, because the device's line falls whenever the handler reads ICR and
/// rises on the next cause, and because level-triggered delivery does not
/// work on this machine's KVM (it EOIs at delivery; see docs/nested-kvm.md).
pub fn ioapic_route_edge(pin: u8, vector: u8, dest: u8) {
    let reg = 0x10 + 2 * pin as u32;
    ioapic_write(reg + 1, (dest as u32) << 24);
    ioapic_write(reg, vector as u32);
}
