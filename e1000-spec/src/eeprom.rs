//! The 82540EM's EEPROM (manual chapter 5): a 64-word Microwire part (a
//! 93C46), its word map and checksum, and the Microwire READ command that
//! software bit-bangs through EECD ([`crate::regs::eecd`]). EERD
//! ([`crate::regs::eerd`]) reads a word without the protocol.

/// Number of 16-bit words (EECD.EE_SIZE reads 0: 6 address bits).
pub const WORDS: usize = 64;
/// All [`WORDS`] words, the checksum word included, sum to this value.
pub const CHECKSUM_SUM: u16 = 0xBABA;

/// Word index of the first of the three words holding the MAC address
/// (byte 0 in the low byte of the first word).
pub const WORD_MAC: usize = 0x00;
/// Number of words holding the MAC address.
pub const MAC_WORDS: usize = 3;
/// Word index of the compatibility word.
pub const WORD_COMPATIBILITY: usize = 0x03;
/// Word index of the LED configuration (0xFFFF: driver defaults).
pub const WORD_LED_SETTINGS: usize = 0x04;
/// Word index of the EEPROM image version.
pub const WORD_IMAGE_VERSION: usize = 0x05;
/// Word index of the first of the two printed board assembly words.
pub const WORD_PBA: usize = 0x08;
/// Word index of Initialization Control 1 ([`init_control1`]).
pub const WORD_INIT_CONTROL1: usize = 0x0A;
/// Word index of the PCI subsystem id.
pub const WORD_SUBSYSTEM_ID: usize = 0x0B;
/// Word index of the PCI subsystem vendor id.
pub const WORD_SUBSYSTEM_VENDOR_ID: usize = 0x0C;
/// Word index of the PCI device id.
pub const WORD_DEVICE_ID: usize = 0x0D;
/// Word index of the PCI vendor id.
pub const WORD_VENDOR_ID: usize = 0x0E;
/// Word index of Initialization Control 2 ([`init_control2`]).
pub const WORD_INIT_CONTROL2: usize = 0x0F;
/// Word index of Initialization Control 3 for port A (APM wake-up).
pub const WORD_INIT_CONTROL3: usize = 0x24;
/// Word index of the checksum word.
pub const WORD_CHECKSUM: usize = 0x3F;

/// Initialization Control 1 bits.
pub mod init_control1 {
    /// Load the subsystem ids from the EEPROM into PCI space.
    pub const LOAD_SUBSYSTEM_IDS: u16 = 1 << 0;
    /// Load the vendor and device ids from the EEPROM into PCI space.
    pub const LOAD_VENDOR_DEVICE_IDS: u16 = 1 << 1;
    /// The valid-word signature: bits 15:14 = 01b.
    pub const SIGNATURE: u16 = 0b01 << 14;
}

/// Initialization Control 2 bits.
pub mod init_control2 {
    /// Advertise PAUSE (bit 12).
    pub const PAUSE: u16 = 1 << 12;
    /// Advertise asymmetric PAUSE (bit 13).
    pub const ASM_DIR: u16 = 1 << 13;
}

/// The Microwire protocol: after CS rises, software shifts in a start bit,
/// a 2-bit opcode and [`microwire::ADDRESS_BITS`] address bits, MSB first, on rising
/// clock edges; a READ then shifts out 16 data bits per word on DO.
pub mod microwire {
    /// The READ opcode with its start bit (110b).
    pub const READ: u32 = 0b110;
    /// Bits of the start bit and opcode.
    pub const OPCODE_BITS: u8 = 3;
    /// Address bits of a 64-word part.
    pub const ADDRESS_BITS: u8 = 6;
    /// Bits of a whole command: start bit, opcode and address.
    pub const COMMAND_BITS: u8 = OPCODE_BITS + ADDRESS_BITS;
    /// Data bits per word.
    pub const WORD_BITS: u8 = 16;
}
