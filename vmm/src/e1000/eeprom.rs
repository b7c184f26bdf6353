//! The 82540EM's 64-word Microwire EEPROM: its contents (MAC address, PCI ids,
//! initialization words, checksum) and the two ways drivers read it: the EERD
//! register (the device reads a word) and bit-banging the EECD pins (the Linux
//! e1000 and FreeBSD em drivers do this on the 82540).

/// Number of 16-bit words (a 93C46: EECD.EE_SIZE reads 0, 6 address bits).
pub const EEPROM_WORDS: usize = 64;
/// All 64 words, the checksum word included, sum to this value.
pub const EEPROM_SUM: u16 = 0xBABA;
/// Word index of the checksum word.
pub const WORD_CHECKSUM: usize = 0x3F;
/// Word index of the LED configuration (0xFFFF: driver defaults).
pub const WORD_LED_SETTINGS: usize = 0x04;
/// Word index of Initialization Control 1.
pub const WORD_INIT_CONTROL1: usize = 0x0A;
/// Word index of the PCI subsystem id.
pub const WORD_SUBSYSTEM_ID: usize = 0x0B;
/// Word index of the PCI subsystem vendor id.
pub const WORD_SUBSYSTEM_VENDOR_ID: usize = 0x0C;
/// Word index of the PCI device id.
pub const WORD_DEVICE_ID: usize = 0x0D;
/// Word index of the PCI vendor id.
pub const WORD_VENDOR_ID: usize = 0x0E;
/// Word index of Initialization Control 2 (flow control advertisement).
pub const WORD_INIT_CONTROL2: usize = 0x0F;
/// Word index of Initialization Control 3 for port A (APM wake-up).
pub const WORD_INIT_CONTROL3: usize = 0x24;

/// EECD bits.
pub mod eecd {
    /// Clock input to the EEPROM.
    pub const SK: u32 = 1 << 0;
    /// Chip select.
    pub const CS: u32 = 1 << 1;
    /// Data input to the EEPROM.
    pub const DI: u32 = 1 << 2;
    /// Data output from the EEPROM.
    pub const DO: u32 = 1 << 3;
    /// Flash write enable control (bits 5:4).
    pub const FWE_MASK: u32 = 3 << 4;
    /// Request direct EEPROM access.
    pub const REQ: u32 = 1 << 6;
    /// Direct access granted.
    pub const GNT: u32 = 1 << 7;
    /// EEPROM present.
    pub const PRES: u32 = 1 << 8;
}

/// EERD bits and fields (82540 layout).
pub mod eerd {
    /// Start a read.
    pub const START: u32 = 1 << 0;
    /// Read done.
    pub const DONE: u32 = 1 << 4;
    /// Word address field shift (bits 15:8).
    pub const ADDR_SHIFT: u32 = 8;
    /// Data field shift (bits 31:16).
    pub const DATA_SHIFT: u32 = 16;
}

/// Microwire READ opcode including the start bit (110b).
const MICROWIRE_READ: u32 = 0b110;
/// Start bit + 2 opcode bits + 6 address bits.
const COMMAND_BITS: u8 = 9;

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
    words: [u16; EEPROM_WORDS],
    pins: u32,
    wire: Wire,
    eerd: u32,
}

impl Eeprom {
    /// An EEPROM holding `identity`, the 82540EM's initialization words and a
    /// checksum making the 64 words sum to 0xBABA.
    pub fn new(identity: &EepromIdentity) -> Self {
        let mut words = [0xFFFF_u16; EEPROM_WORDS];
        let mac = identity.mac;
        words[0] = u16::from_le_bytes([mac[0], mac[1]]);
        words[1] = u16::from_le_bytes([mac[2], mac[3]]);
        words[2] = u16::from_le_bytes([mac[4], mac[5]]);
        // Compatibility word and image version: nothing special.
        words[3] = 0x0000;
        words[5] = 0x0001;
        // Words 8..10: printed board assembly number.
        words[8] = 0x0000;
        words[9] = 0x0000;
        // Init Control 1: signature 01b (bits 15:14), load the subsystem ids
        // (bit 0) and the vendor/device ids (bit 1) into PCI space.
        words[WORD_INIT_CONTROL1] = 0x4000 | 0x0002 | 0x0001;
        words[WORD_SUBSYSTEM_ID] = identity.subsystem_id;
        words[WORD_SUBSYSTEM_VENDOR_ID] = identity.subsystem_vendor_id;
        words[WORD_DEVICE_ID] = identity.device_id;
        words[WORD_VENDOR_ID] = identity.vendor_id;
        // Init Control 2: advertise symmetric and asymmetric PAUSE.
        words[WORD_INIT_CONTROL2] = 0x3000;
        // Init Control 3: no APM wake-up.
        words[WORD_INIT_CONTROL3] = 0x0000;
        words[WORD_CHECKSUM] = 0;
        let sum = words.iter().fold(0u16, |acc, w| acc.wrapping_add(*w));
        words[WORD_CHECKSUM] = EEPROM_SUM.wrapping_sub(sum);
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

    /// The MAC address stored in words 0..3.
    pub fn mac(&self) -> [u8; 6] {
        let [a, b] = self.words[0].to_le_bytes();
        let [c, d] = self.words[1].to_le_bytes();
        let [e, f] = self.words[2].to_le_bytes();
        [a, b, c, d, e, f]
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
            if count < COMMAND_BITS {
                self.wire = Wire::Command { bits, count };
            } else if bits >> 6 == MICROWIRE_READ {
                self.wire = Wire::Reading {
                    pos: (bits & 0x3F) * 16,
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
                (pos + 1) % (EEPROM_WORDS as u32 * 16)
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
                let word = self.words[(pos / 16) as usize % EEPROM_WORDS];
                (word >> (15 - pos % 16)) & 1 != 0
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
        let address = (value >> eerd::ADDR_SHIFT) & 0xFF;
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
