//! The EEPROM through EERD and through the bit-banged Microwire pins of
//! EECD; the PHY through MDIC; the link in STATUS and LSC.

use e1000_spec::eeprom::{self, microwire, CHECKSUM_SUM as EEPROM_SUM, WORDS as EEPROM_WORDS};
use e1000_spec::pci::{DEVICE_ID, SUBSYSTEM_ID as DEFAULT_SUBSYSTEM_ID, VENDOR_ID};
use e1000_spec::phy::{self, reg as phyreg, ID1};
use e1000_spec::regs::{eecd, eerd, icr, mdic, status, EECD, EERD, ICR, IMS, MDIC, STATUS};

use super::*;

#[test]
fn eeprom_through_eerd_has_mac_ids_and_checksum() {
    let mut h = Harness::new(false);
    let mut sum = 0u16;
    let mut words = Vec::new();
    for address in 0..EEPROM_WORDS as u32 {
        h.w(EERD, eerd::START | (address << eerd::ADDR_SHIFT));
        let value = h.r(EERD);
        assert_ne!(value & eerd::DONE, 0, "word {address} done");
        assert_eq!((value >> eerd::ADDR_SHIFT) & 0xFF, address);
        let word = (value >> eerd::DATA_SHIFT) as u16;
        sum = sum.wrapping_add(word);
        words.push(word);
    }
    assert_eq!(sum, EEPROM_SUM);
    assert_eq!(words[0], u16::from_le_bytes([MAC[0], MAC[1]]));
    assert_eq!(words[1], u16::from_le_bytes([MAC[2], MAC[3]]));
    assert_eq!(words[2], u16::from_le_bytes([MAC[4], MAC[5]]));
    assert_eq!(words[eeprom::WORD_DEVICE_ID], DEVICE_ID);
    assert_eq!(words[eeprom::WORD_VENDOR_ID], VENDOR_ID);
    assert_eq!(words[eeprom::WORD_SUBSYSTEM_ID], DEFAULT_SUBSYSTEM_ID);
    // Past the EEPROM: DONE, no data, counted.
    h.w(EERD, eerd::START | (200 << eerd::ADDR_SHIFT));
    assert_eq!(h.r(EERD) >> eerd::DATA_SHIFT, 0);
    assert_ne!(h.r(EERD) & eerd::DONE, 0);
    assert_eq!(h.dev.errors().eeprom_address_invalid, 1);
}

/// Drives the EECD pins like the Linux e1000 / FreeBSD em Microwire code:
/// acquire (REQ, wait for GNT, CS up), then for every word the READ opcode
/// and address shifted out MSB first, 16 bits shifted in (sampling DO after
/// each rising clock edge), and a "standby" cycle between words.
struct MicrowireDriver {
    pins: u32,
}

impl MicrowireDriver {
    fn write(&mut self, h: &mut Harness) {
        h.w(EECD, self.pins);
    }

    fn acquire(h: &mut Harness) -> Self {
        let mut driver = Self {
            pins: h.r(EECD) | eecd::REQ,
        };
        driver.write(h);
        assert_ne!(h.r(EECD) & eecd::GNT, 0, "access granted");
        driver.pins &= !(eecd::DI | eecd::SK);
        driver.write(h);
        driver.pins |= eecd::CS;
        driver.write(h);
        driver
    }

    fn clock(&mut self, h: &mut Harness) -> bool {
        self.pins |= eecd::SK;
        self.write(h);
        let out = h.r(EECD) & eecd::DO != 0;
        self.pins &= !eecd::SK;
        self.write(h);
        out
    }

    fn shift_out(&mut self, h: &mut Harness, value: u16, bits: u8) {
        for i in (0..bits).rev() {
            if value >> i & 1 != 0 {
                self.pins |= eecd::DI;
            } else {
                self.pins &= !eecd::DI;
            }
            self.write(h);
            self.clock(h);
        }
        self.pins &= !eecd::DI;
        self.write(h);
    }

    fn shift_in(&mut self, h: &mut Harness) -> u16 {
        (0..microwire::WORD_BITS).fold(0u16, |word, _| (word << 1) | u16::from(self.clock(h)))
    }

    fn standby(&mut self, h: &mut Harness) {
        self.pins &= !(eecd::CS | eecd::SK);
        self.write(h);
        self.pins |= eecd::SK;
        self.write(h);
        self.pins |= eecd::CS;
        self.write(h);
        self.pins &= !eecd::SK;
        self.write(h);
    }

    fn read(&mut self, h: &mut Harness, address: u16) -> u16 {
        self.shift_out(h, microwire::READ as u16, microwire::OPCODE_BITS);
        self.shift_out(h, address, microwire::ADDRESS_BITS);
        let word = self.shift_in(h);
        self.standby(h);
        word
    }

    fn release(mut self, h: &mut Harness) {
        self.pins &= !(eecd::CS | eecd::DI | eecd::SK | eecd::REQ);
        self.write(h);
    }
}

#[test]
fn eeprom_bit_banged_microwire_reads_match_eerd() {
    let mut h = Harness::new(false);
    assert_eq!(
        h.r(EECD) & eecd::EE_SIZE,
        0,
        "EE_SIZE 0: 64 words, 6 address bits"
    );
    assert_ne!(h.r(EECD) & eecd::PRES, 0);
    let mut driver = MicrowireDriver::acquire(&mut h);
    let mut sum = 0u16;
    for address in 0..EEPROM_WORDS as u16 {
        let word = driver.read(&mut h, address);
        assert_eq!(
            Some(word),
            h.dev.eeprom().word(address.into()),
            "word {address}"
        );
        sum = sum.wrapping_add(word);
    }
    assert_eq!(sum, EEPROM_SUM);
    driver.release(&mut h);
    assert_eq!(h.r(EECD) & eecd::GNT, 0);
    // A second acquisition reads the MAC again (state reset by CS).
    let mut driver = MicrowireDriver::acquire(&mut h);
    assert_eq!(driver.read(&mut h, 1), u16::from_le_bytes([MAC[2], MAC[3]]));
    driver.release(&mut h);
}

/// Reads PHY register `register` of PHY `phy` through MDIC; returns MDIC.
fn mdic_read(h: &mut Harness, phy: u32, register: u32) -> u32 {
    h.w(
        MDIC,
        mdic::OP_READ | (register << mdic::REG_SHIFT) | (phy << mdic::PHY_SHIFT),
    );
    h.r(MDIC)
}

#[test]
fn mdic_reads_phy_identity_and_link() {
    let mut h = Harness::new(false);
    let id1 = mdic_read(&mut h, 1, phyreg::ID1 as u32);
    assert_ne!(id1 & mdic::READY, 0);
    assert_eq!(id1 & mdic::ERROR, 0);
    assert_eq!(id1 & 0xFFFF, u32::from(ID1));
    assert_eq!(mdic_read(&mut h, 1, phyreg::ID2 as u32) & 0xFFFF, 0x0C20);
    let status = mdic_read(&mut h, 1, phyreg::STATUS as u32) & 0xFFFF;
    assert_ne!(status & u32::from(phy::status::LINK), 0, "link up");
    assert_ne!(
        status & u32::from(phy::status::AUTONEG_COMPLETE),
        0,
        "autonegotiation complete"
    );
    // Write then read back the advertisement register.
    h.w(
        MDIC,
        mdic::OP_WRITE
            | ((phyreg::AUTONEG_ADV as u32) << mdic::REG_SHIFT)
            | (1 << mdic::PHY_SHIFT)
            | 0x01E1,
    );
    assert_eq!(
        mdic_read(&mut h, 1, phyreg::AUTONEG_ADV as u32) & 0xFFFF,
        0x01E1
    );
    // Status is read only.
    h.w(
        MDIC,
        mdic::OP_WRITE | ((phyreg::STATUS as u32) << mdic::REG_SHIFT) | (1 << mdic::PHY_SHIFT),
    );
    assert_eq!(mdic_read(&mut h, 1, phyreg::STATUS as u32) & 0xFFFF, status);
    // Another PHY address answers with ERROR.
    assert_ne!(mdic_read(&mut h, 2, 1) & mdic::ERROR, 0);
    assert_eq!(h.dev.errors().mdic_invalid, 1);
    // Interrupt on completion.
    h.w(IMS, icr::MDAC);
    h.w(
        MDIC,
        mdic::OP_READ | mdic::INTERRUPT | (1 << mdic::PHY_SHIFT),
    );
    assert!(h.dev.interrupt_level());
    assert_eq!(h.r(ICR), icr::MDAC);
}

#[test]
fn status_reports_gigabit_full_duplex_link_and_lsc() {
    let mut h = Harness::new(false);
    let s = h.r(STATUS);
    assert_ne!(s & status::LU, 0);
    assert_ne!(s & status::FD, 0);
    assert_eq!(s & status::SPEED_MASK, status::SPEED_1000);
    h.w(IMS, icr::LSC);
    h.dev.set_link(false);
    assert_eq!(h.r(STATUS) & status::LU, 0);
    assert_eq!(
        mdic_read(&mut h, 1, phyreg::STATUS as u32) & u32::from(phy::status::LINK),
        0
    );
    assert_eq!(h.rising(), 1);
    assert_eq!(h.r(ICR), icr::LSC);
    assert!(!h.dev.link_up());
    // No change, no interrupt.
    h.dev.set_link(false);
    assert_eq!(h.r(ICR), 0);
    h.dev.set_link(true);
    assert!(h.dev.link_up());
    assert_ne!(h.r(STATUS) & status::LU, 0);
    assert_eq!(h.r(ICR), icr::LSC, "coming back up raises LSC too");
}
