//! The 82540EM's 64-word Microwire EEPROM: its contents (MAC address, PCI ids,
//! initialization words, checksum) and the two ways drivers read it: the EERD
//! register (the device reads a word) and bit-banging the EECD pins (the Linux
//! e1000 and FreeBSD em drivers do this on the 82540).

use e1000_spec::eeprom::{self as spec, init_control1, init_control2, microwire, WORDS};
use e1000_spec::regs::{eecd, eerd};

/// Data bits per word, as a shift count.
const WORD_BITS: u32 = microwire::WORD_BITS as u32;

/// Identity the EEPROM carries: the MAC address and the PCI ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EepromIdentity {
    /// Station MAC address.
    pub mac: [u8; 6],
    /// PCI vendor id (0x8086).
    pub vendor_id: u16,
    /// PCI device id (0x100E for the 82540EM).
    pub device_id: u16,
    /// PCI subsystem vendor id.
    pub subsystem_vendor_id: u16,
    /// PCI subsystem id.
    pub subsystem_id: u16,
}

/// Where the bit-banged Microwire protocol is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wire {
    /// Chip select low.
    Idle,
    /// Shifting in the start bit, opcode and address.
    Command { bits: u32, count: u8 },
    /// Shifting out data. `pos` counts bits from word 0, MSB first; `presented`
    /// becomes true on the first falling clock edge after the address.
    Reading { pos: u32, presented: bool },
    /// A command we do not carry out (write, erase, enable): wait for CS low.
    Ignoring,
}

/// The EEPROM and its two access paths.
#[derive(Clone, Debug)]
pub struct Eeprom {
    words: [u16; WORDS],
    pins: u32,
    wire: Wire,
    eerd: u32,
}

impl Eeprom {
    /// An EEPROM holding `identity`, the 82540EM's initialization words and a
    /// checksum making the words sum to [`spec::CHECKSUM_SUM`].
    pub fn new(identity: &EepromIdentity) -> Self {
        let mut words = [0xFFFF_u16; WORDS];
        for (i, pair) in identity.mac.chunks(2).enumerate() {
            words[spec::WORD_MAC + i] = u16::from_le_bytes([pair[0], pair[1]]);
        }
        // Compatibility word and image version: nothing special.
        words[spec::WORD_COMPATIBILITY] = 0x0000;
        words[spec::WORD_IMAGE_VERSION] = 0x0001;
        // Printed board assembly number.
        words[spec::WORD_PBA] = 0x0000;
        words[spec::WORD_PBA + 1] = 0x0000;
        // Init Control 1: valid, load the subsystem and vendor/device ids
        // into PCI space.
        words[spec::WORD_INIT_CONTROL1] = init_control1::SIGNATURE
            | init_control1::LOAD_VENDOR_DEVICE_IDS
            | init_control1::LOAD_SUBSYSTEM_IDS;
        words[spec::WORD_SUBSYSTEM_ID] = identity.subsystem_id;
        words[spec::WORD_SUBSYSTEM_VENDOR_ID] = identity.subsystem_vendor_id;
        words[spec::WORD_DEVICE_ID] = identity.device_id;
        words[spec::WORD_VENDOR_ID] = identity.vendor_id;
        // Init Control 2: advertise symmetric and asymmetric PAUSE.
        words[spec::WORD_INIT_CONTROL2] = init_control2::PAUSE | init_control2::ASM_DIR;
        // Init Control 3: no APM wake-up.
        words[spec::WORD_INIT_CONTROL3] = 0x0000;
        words[spec::WORD_CHECKSUM] = 0;
        let sum = words.iter().fold(0u16, |acc, w| acc.wrapping_add(*w));
        words[spec::WORD_CHECKSUM] = spec::CHECKSUM_SUM.wrapping_sub(sum);
        Self {
            words,
            pins: 0,
            wire: Wire::Idle,
            eerd: 0,
        }
    }

    /// Word `index`, if it exists.
    pub fn word(&self, index: usize) -> Option<u16> {
        self.words.get(index).copied()
    }

    /// The MAC address stored in the MAC words.
    pub fn mac(&self) -> [u8; 6] {
        let mut mac = [0u8; 6];
        for (i, pair) in mac.chunks_mut(2).enumerate() {
            pair.copy_from_slice(&self.words[spec::WORD_MAC + i].to_le_bytes());
        }
        mac
    }

    /// Returns the access state to its power-on value (contents unchanged).
    pub fn reset(&mut self) {
        self.pins = 0;
        self.wire = Wire::Idle;
        self.eerd = 0;
    }

    /// The EECD register as software reads it.
    pub fn read_eecd(&self) -> u32 {
        let mut value = self.pins | eecd::PRES;
        if self.pins & eecd::REQ != 0 {
            value |= eecd::GNT;
        }
        if self.data_out() {
            value |= eecd::DO;
        }
        value
    }

    /// Software writes EECD: drives the chip select, clock and data pins.
    pub fn write_eecd(&mut self, value: u32) {
        let old = self.pins;
        self.pins = value & (eecd::SK | eecd::CS | eecd::DI | eecd::FWE_MASK | eecd::REQ);
        if value & eecd::CS == 0 {
            self.wire = Wire::Idle;
            return;
        }
        if old & eecd::CS == 0 {
            self.wire = Wire::Command { bits: 0, count: 0 };
        }
        let clock_changed = (old ^ value) & eecd::SK != 0;
        if !clock_changed {
            return;
        }
        if value & eecd::SK != 0 {
            self.clock_rise(value & eecd::DI != 0);
        } else {
            self.clock_fall();
        }
    }

    fn clock_rise(&mut self, data_in: bool) {
        if let Wire::Command { bits, count } = self.wire {
            let bits = (bits << 1) | u32::from(data_in);
            let count = count + 1;
            if count < microwire::COMMAND_BITS {
                self.wire = Wire::Command { bits, count };
            } else if bits >> microwire::ADDRESS_BITS == microwire::READ {
                let address = bits & ((1 << microwire::ADDRESS_BITS) - 1);
                self.wire = Wire::Reading {
                    pos: address * WORD_BITS,
                    presented: false,
                };
            } else {
                self.wire = Wire::Ignoring;
            }
        }
    }

    fn clock_fall(&mut self) {
        if let Wire::Reading { pos, presented } = self.wire {
            let pos = if presented {
                (pos + 1) % (WORDS as u32 * WORD_BITS)
            } else {
                pos
            };
            self.wire = Wire::Reading {
                pos,
                presented: true,
            };
        }
    }

    /// The DO pin: the current data bit while reading, else 1 (ready).
    fn data_out(&self) -> bool {
        match self.wire {
            Wire::Reading {
                pos,
                presented: true,
            } => {
                let word = self.words[(pos / WORD_BITS) as usize % WORDS];
                (word >> (WORD_BITS - 1 - pos % WORD_BITS)) & 1 != 0
            }
            Wire::Reading {
                presented: false, ..
            } => false,
            _ => true,
        }
    }

    /// The EERD register as software reads it.
    pub fn read_eerd(&self) -> u32 {
        self.eerd
    }

    /// Software writes EERD. With START set the word is read at once; returns
    /// false when the address is past the EEPROM (DONE is still set, data 0).
    pub fn write_eerd(&mut self, value: u32) -> bool {
        if value & eerd::START == 0 {
            self.eerd = value & !eerd::DONE;
            return true;
        }
        let address = (value >> eerd::ADDR_SHIFT) & eerd::ADDR_MASK;
        let field = address << eerd::ADDR_SHIFT;
        match self.words.get(address as usize) {
            Some(&word) => {
                self.eerd = (u32::from(word) << eerd::DATA_SHIFT) | field | eerd::DONE;
                true
            }
            None => {
                self.eerd = field | eerd::DONE;
                false
            }
        }
    }
}
