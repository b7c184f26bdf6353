//! The 256-byte configuration space of one PCI function (type 0 header):
//! identity registers, the command register, BARs with sizing by writing all
//! ones, the interrupt line and pin. Each byte has a write mask, so guest
//! writes to read-only fields are ignored.

/// Command register: I/O space decoding.
pub const CMD_IO: u16 = 1 << 0;
/// Command register: memory space decoding.
pub const CMD_MEMORY: u16 = 1 << 1;
/// Command register: bus master.
pub const CMD_BUS_MASTER: u16 = 1 << 2;
/// Command register: INTx disable.
pub const CMD_INTX_DISABLE: u16 = 1 << 10;
/// Command register bits a guest may change.
const CMD_WRITABLE: u16 =
    CMD_IO | CMD_MEMORY | CMD_BUS_MASTER | (1 << 6) | (1 << 8) | CMD_INTX_DISABLE;

const REG_COMMAND: usize = 0x04;
const REG_BAR0: usize = 0x10;
const REG_INTERRUPT_LINE: usize = 0x3C;
/// Number of BARs in a type 0 header.
pub const NUM_BARS: usize = 6;

/// What a BAR decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarKind {
    /// 32-bit non-prefetchable memory.
    Mmio32,
    /// I/O ports.
    Io,
}

/// A BAR's kind, size and initial address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarSpec {
    /// What it decodes.
    pub kind: BarKind,
    /// Size in bytes, a power of two (at least 16 for memory, 4 for I/O).
    pub size: u32,
    /// Address assigned at reset (as firmware would have).
    pub address: u32,
}

/// A BAR that currently decodes: enabled in the command register, and at a
/// usable address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarMapping {
    /// What it decodes.
    pub kind: BarKind,
    /// First address.
    pub base: u64,
    /// Size in bytes.
    pub size: u64,
}

/// The identity and reset state of a function.
#[derive(Clone, Debug)]
pub struct PciHeader {
    /// Vendor id.
    pub vendor_id: u16,
    /// Device id.
    pub device_id: u16,
    /// Revision id.
    pub revision: u8,
    /// Class code, subclass and programming interface (24 bits).
    pub class_code: u32,
    /// Subsystem vendor id.
    pub subsystem_vendor_id: u16,
    /// Subsystem id.
    pub subsystem_id: u16,
    /// Command register at reset.
    pub command: u16,
    /// Interrupt pin (1 = INTA#, 0 = none).
    pub interrupt_pin: u8,
    /// Interrupt line at reset (the GSI firmware routed).
    pub interrupt_line: u8,
    /// The BARs.
    pub bars: [Option<BarSpec>; NUM_BARS],
}

/// Configuration space of one function.
#[derive(Clone, Debug)]
pub struct PciFunction {
    config: [u8; 256],
    wmask: [u8; 256],
    bars: [Option<BarSpec>; NUM_BARS],
}

impl PciFunction {
    /// A function in its reset state.
    pub fn new(h: &PciHeader) -> PciFunction {
        let mut f = PciFunction {
            config: [0; 256],
            wmask: [0; 256],
            bars: h.bars,
        };
        f.put16(0x00, h.vendor_id);
        f.put16(0x02, h.device_id);
        f.put16(REG_COMMAND, h.command & CMD_WRITABLE);
        f.config[0x08] = h.revision;
        f.config[0x09] = h.class_code as u8;
        f.config[0x0A] = (h.class_code >> 8) as u8;
        f.config[0x0B] = (h.class_code >> 16) as u8;
        f.put16(0x2C, h.subsystem_vendor_id);
        f.put16(0x2E, h.subsystem_id);
        f.config[REG_INTERRUPT_LINE] = h.interrupt_line;
        f.config[0x3D] = h.interrupt_pin;
        f.wmask[REG_COMMAND..REG_COMMAND + 2].copy_from_slice(&CMD_WRITABLE.to_le_bytes());
        f.wmask[0x0C] = 0xff; // cache line size
        f.wmask[0x0D] = 0xff; // latency timer
        f.wmask[REG_INTERRUPT_LINE] = 0xff;
        for (i, bar) in h.bars.iter().enumerate() {
            if let Some(bar) = bar {
                let reg = REG_BAR0 + 4 * i;
                let mask = !(bar.size.max(4) - 1);
                f.wmask[reg..reg + 4].copy_from_slice(&mask.to_le_bytes());
                let value = (bar.address & mask) | bar_type_bits(bar.kind);
                f.config[reg..reg + 4].copy_from_slice(&value.to_le_bytes());
            }
        }
        f
    }

    fn put16(&mut self, at: usize, v: u16) {
        self.config[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }

    /// Reads the dword at register `reg` (the low two bits are ignored).
    pub fn read_dword(&self, reg: u8) -> u32 {
        let at = usize::from(reg & 0xfc);
        u32::from_le_bytes(self.config[at..at + 4].try_into().expect("4 bytes"))
    }

    /// Writes `data` at byte `offset`, through the write masks. Bytes past the
    /// end of the configuration space are ignored.
    pub fn write(&mut self, offset: u8, data: &[u8]) {
        for (i, byte) in data.iter().enumerate() {
            let Some(at) = usize::from(offset).checked_add(i).filter(|&a| a < 256) else {
                break;
            };
            self.config[at] = (self.config[at] & !self.wmask[at]) | (byte & self.wmask[at]);
        }
    }

    /// The command register.
    pub fn command(&self) -> u16 {
        u16::from_le_bytes([self.config[REG_COMMAND], self.config[REG_COMMAND + 1]])
    }

    /// Whether the INTx disable bit is set.
    pub fn intx_disabled(&self) -> bool {
        self.command() & CMD_INTX_DISABLE != 0
    }

    /// The interrupt line register.
    pub fn interrupt_line(&self) -> u8 {
        self.config[REG_INTERRUPT_LINE]
    }

    /// BAR `index` if it currently decodes: its kind's enable bit is set in the
    /// command register and its address is neither 0 nor past the end of the
    /// address space (the all-ones sizing pattern counts as unmapped).
    pub fn bar_mapping(&self, index: usize) -> Option<BarMapping> {
        let spec = self.bars.get(index).copied().flatten()?;
        let raw = self.read_dword((REG_BAR0 + 4 * index) as u8);
        let size = u64::from(spec.size.max(4));
        let (enabled, base, limit) = match spec.kind {
            BarKind::Mmio32 => (
                self.command() & CMD_MEMORY != 0,
                u64::from(raw & !0xf),
                0xFFFF_FFFF,
            ),
            BarKind::Io => (self.command() & CMD_IO != 0, u64::from(raw & !0x3), 0xFFFF),
        };
        let last = base + size - 1;
        (enabled && base != 0 && last < limit).then_some(BarMapping {
            kind: spec.kind,
            base,
            size,
        })
    }
}

fn bar_type_bits(kind: BarKind) -> u32 {
    match kind {
        BarKind::Mmio32 => 0,
        BarKind::Io => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e1000_like() -> PciFunction {
        let mut bars = [None; NUM_BARS];
        bars[0] = Some(BarSpec {
            kind: BarKind::Mmio32,
            size: 0x20000,
            address: 0xFEB0_0000,
        });
        bars[1] = Some(BarSpec {
            kind: BarKind::Io,
            size: 64,
            address: 0xC000,
        });
        PciFunction::new(&PciHeader {
            vendor_id: 0x8086,
            device_id: 0x100E,
            revision: 3,
            class_code: 0x020000,
            subsystem_vendor_id: 0x8086,
            subsystem_id: 0x001E,
            command: CMD_IO | CMD_MEMORY | CMD_BUS_MASTER,
            interrupt_pin: 1,
            interrupt_line: 11,
            bars,
        })
    }

    #[test]
    fn identity_and_readonly_fields() {
        let mut f = e1000_like();
        assert_eq!(f.read_dword(0), 0x100E_8086);
        assert_eq!(f.read_dword(0x08) >> 8, 0x020000);
        assert_eq!(f.read_dword(0x2C), 0x001E_8086);
        assert_eq!(f.read_dword(0x3C) & 0xffff, 0x010B);
        f.write(0, &[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(f.read_dword(0), 0x100E_8086);
        f.write(0x3D, &[7]);
        assert_eq!(f.read_dword(0x3C) >> 8 & 0xff, 1);
        f.write(0xFE, &[1, 2, 3, 4]);
        f.write(0x3C, &[5]);
        assert_eq!(f.interrupt_line(), 5);
    }

    #[test]
    fn bar_sizing_and_relocation() {
        let mut f = e1000_like();
        assert_eq!(
            f.bar_mapping(0),
            Some(BarMapping {
                kind: BarKind::Mmio32,
                base: 0xFEB0_0000,
                size: 0x20000
            })
        );
        f.write(0x10, &0xFFFF_FFFFu32.to_le_bytes());
        assert_eq!(f.read_dword(0x10), 0xFFFE_0000);
        assert_eq!(f.bar_mapping(0), None, "sizing pattern does not decode");
        f.write(0x14, &0xFFFF_FFFFu32.to_le_bytes());
        assert_eq!(f.read_dword(0x14), 0xFFFF_FFC1);
        assert_eq!(f.bar_mapping(1), None);
        f.write(0x10, &0xE000_0000u32.to_le_bytes());
        f.write(0x14, &0xD000u32.to_le_bytes());
        assert_eq!(f.bar_mapping(0).unwrap().base, 0xE000_0000);
        assert_eq!(f.bar_mapping(1).unwrap().base, 0xD000);
        // Unused BARs read 0 and cannot be sized.
        f.write(0x18, &0xFFFF_FFFFu32.to_le_bytes());
        assert_eq!(f.read_dword(0x18), 0);
        // Decoding follows the command register.
        f.write(0x04, &[CMD_IO as u8, 0]);
        assert_eq!(f.bar_mapping(0), None);
        assert!(f.bar_mapping(1).is_some());
        f.write(0x04, &[0xff, 0xff]);
        assert_eq!(f.command(), CMD_WRITABLE);
        assert!(f.intx_disabled());
    }
}
