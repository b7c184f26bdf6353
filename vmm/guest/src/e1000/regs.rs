//! The 82540EM registers the driver uses (offsets into BAR0) and their bits,
//! and [`Regs`], the counted MMIO accessor.

use crate::counters::COUNTERS;
use core::arch::asm;
use core::ptr::{read_volatile, write_volatile};

/// Device control.
pub const CTRL: u32 = 0x0000;
/// Device status.
pub const STATUS: u32 = 0x0008;
/// EEPROM read.
pub const EERD: u32 = 0x0014;
/// MDI control (PHY access).
pub const MDIC: u32 = 0x0020;
/// Interrupt cause read (read to clear).
pub const ICR: u32 = 0x00C0;
/// Interrupt throttling (256 ns units).
pub const ITR: u32 = 0x00C4;
/// Interrupt cause set.
pub const ICS: u32 = 0x00C8;
/// Interrupt mask set / read.
pub const IMS: u32 = 0x00D0;
/// Interrupt mask clear.
pub const IMC: u32 = 0x00D8;
/// Receive control.
pub const RCTL: u32 = 0x0100;
/// Transmit control.
pub const TCTL: u32 = 0x0400;
/// Transmit inter-packet gap.
pub const TIPG: u32 = 0x0410;
/// RX descriptor ring base, low 32 bits.
pub const RDBAL: u32 = 0x2800;
/// RX descriptor ring base, high 32 bits.
pub const RDBAH: u32 = 0x2804;
/// RX descriptor ring length in bytes.
pub const RDLEN: u32 = 0x2808;
/// RX descriptor head.
pub const RDH: u32 = 0x2810;
/// RX descriptor tail.
pub const RDT: u32 = 0x2818;
/// RX delay timer (packet timer, 1.024 us units).
pub const RDTR: u32 = 0x2820;
/// RX absolute interrupt delay (1.024 us units).
pub const RADV: u32 = 0x282C;
/// CSB address, low 32 bits (paravirtual extension; the write maps it).
pub const CSBAL: u32 = 0x2830;
/// CSB address, high 32 bits (written before CSBAL).
pub const CSBAH: u32 = 0x2834;
/// TX descriptor ring base, low 32 bits.
pub const TDBAL: u32 = 0x3800;
/// TX descriptor ring base, high 32 bits.
pub const TDBAH: u32 = 0x3804;
/// TX descriptor ring length in bytes.
pub const TDLEN: u32 = 0x3808;
/// TX descriptor head.
pub const TDH: u32 = 0x3810;
/// TX descriptor tail.
pub const TDT: u32 = 0x3818;
/// TX interrupt delay (1.024 us units).
pub const TIDV: u32 = 0x3820;
/// TX absolute interrupt delay (1.024 us units).
pub const TADV: u32 = 0x382C;
/// Receive address low (entry 0).
pub const RAL0: u32 = 0x5400;
/// Receive address high (entry 0).
pub const RAH0: u32 = 0x5404;
/// Size of BAR0.
pub const BAR0_SIZE: u32 = 0x2_0000;

/// CTRL: full duplex.
pub const CTRL_FD: u32 = 1 << 0;
/// CTRL: auto-speed detection.
pub const CTRL_ASDE: u32 = 1 << 5;
/// CTRL: set link up.
pub const CTRL_SLU: u32 = 1 << 6;
/// CTRL: device reset (self-clearing).
pub const CTRL_RST: u32 = 1 << 26;
/// STATUS: link up.
pub const STATUS_LU: u32 = 1 << 1;
/// EERD: start a read.
pub const EERD_START: u32 = 1 << 0;
/// EERD: read done.
pub const EERD_DONE: u32 = 1 << 4;
/// EERD: word address shift.
pub const EERD_ADDR_SHIFT: u32 = 8;
/// EERD: data shift.
pub const EERD_DATA_SHIFT: u32 = 16;

/// ICR/IMS: transmit descriptor written back.
pub const INT_TXDW: u32 = 1 << 0;
/// ICR/IMS: transmit queue empty.
pub const INT_TXQE: u32 = 1 << 1;
/// ICR/IMS: link status change.
pub const INT_LSC: u32 = 1 << 2;
/// ICR/IMS: receive descriptor minimum threshold.
pub const INT_RXDMT0: u32 = 1 << 4;
/// ICR/IMS: receiver overrun (no free descriptors).
pub const INT_RXO: u32 = 1 << 6;
/// ICR/IMS: receive timer (a frame was received).
pub const INT_RXT0: u32 = 1 << 7;
/// The receive causes the driver enables while it waits for frames.
pub const INT_RX: u32 = INT_RXT0 | INT_RXO | INT_RXDMT0;

/// RCTL: receiver enable.
pub const RCTL_EN: u32 = 1 << 1;
/// RCTL: unicast promiscuous.
pub const RCTL_UPE: u32 = 1 << 3;
/// RCTL: multicast promiscuous.
pub const RCTL_MPE: u32 = 1 << 4;
/// RCTL: descriptor minimum threshold 1/2 of the ring.
pub const RCTL_RDMTS_HALF: u32 = 0 << 8;
/// RCTL: accept broadcast.
pub const RCTL_BAM: u32 = 1 << 15;
/// RCTL: buffer size 2048 (BSIZE = 00, BSEX = 0).
pub const RCTL_BSIZE_2048: u32 = 0 << 16;
/// RCTL: strip the Ethernet CRC.
pub const RCTL_SECRC: u32 = 1 << 26;

/// TCTL: transmitter enable.
pub const TCTL_EN: u32 = 1 << 1;
/// TCTL: pad short packets.
pub const TCTL_PSP: u32 = 1 << 3;
/// TCTL: collision threshold 15.
pub const TCTL_CT: u32 = 0x0F << 4;
/// TCTL: collision distance 64 (full duplex).
pub const TCTL_COLD: u32 = 0x40 << 12;
/// TIPG value recommended for the 82540EM (IPGT 10, IPGR1 8, IPGR2 6).
pub const TIPG_DEFAULT: u32 = 10 | 8 << 10 | 6 << 20;
/// RAH: address valid.
pub const RAH_AV: u32 = 1 << 31;

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
        debug_assert!(offset < BAR0_SIZE && offset.is_multiple_of(4));
        COUNTERS.mmio_reads.inc();
        // SAFETY: a dword inside BAR0 (see `new`).
        unsafe { read_volatile((self.base + (offset & (BAR0_SIZE - 4)) as usize) as *const u32) }
    }

    /// Writes the register at `offset` (must be < 128 KiB and 4-aligned).
    #[inline]
    pub fn write(&self, offset: u32, value: u32) {
        debug_assert!(offset < BAR0_SIZE && offset.is_multiple_of(4));
        COUNTERS.mmio_writes.inc();
        // SAFETY: a dword inside BAR0 (see `new`).
        unsafe {
            write_volatile(
                (self.base + (offset & (BAR0_SIZE - 4)) as usize) as *mut u32,
                value,
            )
        }
    }

    /// Writes `value` with an access of `width` bytes (1, 2 or 4) at any
    /// offset inside BAR0, aligned or not: for the chaos workload.
    pub fn write_sized(&self, offset: u32, width: u8, value: u32) {
        let addr = self.base + (offset % BAR0_SIZE) as usize;
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
        let addr = self.base + (offset % BAR0_SIZE) as usize;
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
