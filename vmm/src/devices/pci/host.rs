//! PCI configuration mechanism #1: the address register at 0xCF8 selects
//! bus/device/function/register, the data window at 0xCFC..0xCFF reads and
//! writes it. Bus 0 holds the host bridge at 00:00.0 and the functions added
//! with [`PciConfigIo::add`]; absent functions read as all ones.

use super::config::{PciFunction, PciHeader, NUM_BARS};

/// The configuration address port.
pub const CONFIG_ADDRESS_PORT: u16 = 0xCF8;
/// Ports decoded from 0xCF8: the address dword and the data dword.
pub const CONFIG_PORTS_LEN: u16 = 8;
const CONFIG_ENABLE: u32 = 1 << 31;

/// A device number on bus 0 (function 0).
pub type PciSlot = u8;

/// What a write to the configuration ports did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigWrite {
    /// The address register was set, or the data went to no function.
    Done,
    /// The configuration of the function at this slot changed (its BARs or
    /// command register may have moved).
    Changed(PciSlot),
    /// No register takes an access of this offset and size: ignored.
    Ignored,
}

/// The host bridge and configuration ports.
pub struct PciConfigIo {
    address: u32,
    slots: [Option<PciFunction>; 32],
}

impl Default for PciConfigIo {
    fn default() -> Self {
        PciConfigIo::new()
    }
}

impl PciConfigIo {
    /// Bus 0 with an Intel 440FX host bridge at 00:00.0.
    pub fn new() -> PciConfigIo {
        let mut slots: [Option<PciFunction>; 32] = std::array::from_fn(|_| None);
        slots[0] = Some(PciFunction::new(&PciHeader {
            vendor_id: 0x8086,
            device_id: 0x1237,
            revision: 2,
            class_code: 0x06_00_00,
            subsystem_vendor_id: 0,
            subsystem_id: 0,
            command: super::config::CMD_MEMORY | super::config::CMD_IO,
            interrupt_pin: 0,
            interrupt_line: 0,
            bars: [None; NUM_BARS],
        }));
        PciConfigIo { address: 0, slots }
    }

    /// Puts `function` at device number `slot` (1..=31) of bus 0.
    pub fn add(&mut self, slot: PciSlot, function: PciFunction) {
        assert!((1..32).contains(&slot), "slot 0 is the host bridge");
        self.slots[usize::from(slot)] = Some(function);
    }

    /// The function at `slot`, if any.
    pub fn function(&self, slot: PciSlot) -> Option<&PciFunction> {
        self.slots.get(usize::from(slot))?.as_ref()
    }

    /// Decodes the address register: the slot and register selected, if the
    /// enable bit is set and it names function 0 of a device on bus 0.
    fn selected(&self) -> Option<(usize, u8)> {
        let a = self.address;
        let bus = (a >> 16) & 0xff;
        let device = ((a >> 11) & 0x1f) as usize;
        let function = (a >> 8) & 0x7;
        (a & CONFIG_ENABLE != 0 && bus == 0 && function == 0 && self.slots[device].is_some())
            .then_some((device, (a & 0xfc) as u8))
    }

    /// A guest read at `offset` (0..8) from 0xCF8.
    pub fn read(&self, offset: u64, data: &mut [u8]) -> bool {
        match (offset, data.len()) {
            (0, 4) => {
                data.copy_from_slice(&self.address.to_le_bytes());
                true
            }
            (4..=7, len) if offset as usize - 4 + len <= 4 => {
                let value = match self.selected() {
                    Some((slot, reg)) => self.slots[slot]
                        .as_ref()
                        .map_or(u32::MAX, |f| f.read_dword(reg)),
                    None => u32::MAX,
                };
                let at = offset as usize - 4;
                data.copy_from_slice(&value.to_le_bytes()[at..at + len]);
                true
            }
            _ => {
                data.fill(0xff);
                false
            }
        }
    }

    /// A guest write at `offset` (0..8) from 0xCF8.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> ConfigWrite {
        match (offset, data.len()) {
            (0, 4) => {
                self.address = u32::from_le_bytes(data.try_into().expect("4 bytes"));
                ConfigWrite::Done
            }
            (4..=7, len) if offset as usize - 4 + len <= 4 => {
                let Some((slot, reg)) = self.selected() else {
                    return ConfigWrite::Done;
                };
                let at = reg + (offset as u8 - 4);
                if let Some(f) = self.slots[slot].as_mut() {
                    f.write(at, data);
                }
                ConfigWrite::Changed(slot as PciSlot)
            }
            _ => ConfigWrite::Ignored,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn select(pci: &mut PciConfigIo, dev: u32, reg: u32) {
        let addr = CONFIG_ENABLE | (dev << 11) | reg;
        pci.write(0, &addr.to_le_bytes());
    }

    fn read32(pci: &PciConfigIo) -> u32 {
        let mut d = [0u8; 4];
        assert!(pci.read(4, &mut d));
        u32::from_le_bytes(d)
    }

    #[test]
    fn scan_bus0() {
        let mut pci = PciConfigIo::new();
        select(&mut pci, 0, 0);
        assert_eq!(read32(&pci), 0x1237_8086);
        select(&mut pci, 5, 0);
        assert_eq!(read32(&pci), u32::MAX);
        // Bus 1, function 1, enable bit clear: all ones.
        let addr = CONFIG_ENABLE | (1 << 16);
        pci.write(0, &addr.to_le_bytes());
        assert_eq!(read32(&pci), u32::MAX);
        pci.write(0, &((1u32 << 8) | CONFIG_ENABLE).to_le_bytes());
        assert_eq!(read32(&pci), u32::MAX);
        pci.write(0, &0u32.to_le_bytes());
        assert_eq!(read32(&pci), u32::MAX);
    }

    #[test]
    fn sub_dword_access_and_garbage() {
        let mut pci = PciConfigIo::new();
        select(&mut pci, 0, 0);
        let mut w = [0u8; 2];
        assert!(pci.read(6, &mut w));
        assert_eq!(u16::from_le_bytes(w), 0x1237);
        let mut b = [0u8; 1];
        assert!(pci.read(5, &mut b));
        assert_eq!(b[0], 0x80);
        // Crossing the dword, or odd accesses to the address port: ignored.
        assert!(!pci.read(7, &mut w));
        assert_eq!(pci.write(7, &[1, 2]), ConfigWrite::Ignored);
        assert_eq!(pci.write(1, &[1]), ConfigWrite::Ignored);
        assert!(!pci.read(2, &mut b));
        // A write to the host bridge's command register reports slot 0.
        select(&mut pci, 0, 4);
        assert_eq!(pci.write(4, &[0, 0]), ConfigWrite::Changed(0));
    }
}
