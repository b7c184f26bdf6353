//! PCI configuration space through ports 0xCF8/0xCFC (mechanism #1), and
//! finding and enabling the e1000 on bus 0.

use crate::port::{inl, outl};
use e1000_spec::pci::{DEVICE_ID, VENDOR_ID};

const CONFIG_ADDRESS: u16 = 0xCF8;
const CONFIG_DATA: u16 = 0xCFC;

/// Where the guest puts BAR0 when the firmware left it unassigned.
pub const DEFAULT_BAR0: u32 = 0xFEB0_0000;
/// Command register value: I/O, memory, bus master.
pub const COMMAND_ENABLE: u16 = 0x7;

const REG_ID: u8 = 0x00;
const REG_COMMAND: u8 = 0x04;
const REG_BAR0: u8 = 0x10;
const REG_BAR1: u8 = 0x14;
const REG_SUBSYSTEM: u8 = 0x2C;
const REG_INTERRUPT: u8 = 0x3C;

/// A function on bus 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Function {
    /// Device number (0..32).
    pub device: u8,
    /// Function number (0..8).
    pub function: u8,
}

impl Function {
    fn address(self, reg: u8) -> u32 {
        0x8000_0000 | (self.device as u32) << 11 | (self.function as u32) << 8 | (reg as u32 & 0xFC)
    }

    /// Reads a 32-bit configuration register.
    pub fn read32(self, reg: u8) -> u32 {
        // SAFETY: the PCI configuration mechanism #1 ports.
        unsafe {
            outl(CONFIG_ADDRESS, self.address(reg));
            inl(CONFIG_DATA)
        }
    }

    /// Writes a 32-bit configuration register.
    pub fn write32(self, reg: u8, value: u32) {
        // SAFETY: the PCI configuration mechanism #1 ports.
        unsafe {
            outl(CONFIG_ADDRESS, self.address(reg));
            outl(CONFIG_DATA, value);
        }
    }
}

/// Scans bus 0 (function 0 of each device) for a vendor/device id.
pub fn find(vendor: u16, device: u16) -> Option<Function> {
    let wanted = (device as u32) << 16 | vendor as u32;
    (0..32)
        .map(|d| Function {
            device: d,
            function: 0,
        })
        .find(|f| f.read32(REG_ID) == wanted)
}

/// The e1000 as the guest found and enabled it.
#[derive(Clone, Copy, Debug)]
pub struct E1000Function {
    /// Where it sits.
    pub function: Function,
    /// BAR0 (MMIO registers, 128 KiB) physical address.
    pub bar0: u64,
    /// True if the guest assigned BAR0 itself (it read 0).
    pub bar0_assigned_by_guest: bool,
    /// BAR1 I/O port base (IOADDR/IODATA), if it is an assigned I/O BAR.
    pub io_base: Option<u16>,
    /// The interrupt line register (the GSI / IOAPIC pin).
    pub irq_line: u8,
    /// The interrupt pin register (1 = INTA).
    pub irq_pin: u8,
    /// The subsystem device id (0x1101 advertises the CSB extension).
    pub subsystem_device: u16,
}

impl E1000Function {
    /// Whether the device advertises the CSB paravirtual extension
    /// (subsystem device id [`e1000_spec::csb::SUBSYSTEM_ID`]).
    pub fn has_csb(&self) -> bool {
        self.subsystem_device == e1000_spec::csb::SUBSYSTEM_ID
    }
}

/// Why the e1000 cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PciError {
    /// No 8086:100E on bus 0.
    NotFound,
    /// BAR0 is an I/O BAR or lies above 4 GiB (outside the identity map).
    BadBar0(u64),
}

/// Finds the e1000, assigns BAR0 if the firmware did not, and enables
/// memory, I/O and bus mastering.
pub fn enable_e1000() -> Result<E1000Function, PciError> {
    let function = find(VENDOR_ID, DEVICE_ID).ok_or(PciError::NotFound)?;
    let bar0_raw = function.read32(REG_BAR0);
    if bar0_raw & 1 != 0 {
        return Err(PciError::BadBar0(bar0_raw as u64));
    }
    let is64 = (bar0_raw >> 1) & 3 == 2;
    let high = if is64 {
        function.read32(REG_BAR1) as u64
    } else {
        0
    };
    let mut bar0 = high << 32 | (bar0_raw & 0xFFFF_FFF0) as u64;
    let mut assigned = false;
    if bar0 == 0 {
        function.write32(REG_BAR0, DEFAULT_BAR0);
        if is64 {
            function.write32(REG_BAR1, 0);
        }
        bar0 = (function.read32(REG_BAR0) & 0xFFFF_FFF0) as u64;
        assigned = true;
    }
    if bar0 == 0 || bar0 + u64::from(e1000_spec::regs::MMIO_SIZE) > 1 << 32 {
        return Err(PciError::BadBar0(bar0));
    }
    let io_base = if is64 {
        None
    } else {
        let bar1 = function.read32(REG_BAR1);
        (bar1 & 1 == 1 && bar1 & 0xFFFC != 0).then_some((bar1 & 0xFFFC) as u16)
    };
    let command = function.read32(REG_COMMAND);
    if command as u16 & COMMAND_ENABLE != COMMAND_ENABLE {
        function.write32(REG_COMMAND, COMMAND_ENABLE as u32);
    }
    let interrupt = function.read32(REG_INTERRUPT);
    let subsystem = function.read32(REG_SUBSYSTEM);
    Ok(E1000Function {
        function,
        bar0,
        bar0_assigned_by_guest: assigned,
        io_base,
        irq_line: interrupt as u8,
        irq_pin: (interrupt >> 8) as u8,
        subsystem_device: (subsystem >> 16) as u16,
    })
}
