//! The 82540EM's internal PHY (manual chapter 13, PHY registers; a Marvell
//! 88E1011-compatible PHY), reached through MDIC ([`crate::regs::mdic`]):
//! its address, register numbers, identifiers and the bits the model and
//! drivers use.

/// PHY address of the internal PHY (any other address gets MDIC.ERROR).
pub const ADDRESS: u32 = 1;
/// Number of PHY registers (5-bit register numbers).
pub const REGISTERS: usize = 32;
/// PHY identifier 1: OUI bits of Marvell (0x005043).
pub const ID1: u16 = 0x0141;
/// PHY identifier 2: OUI bits, model 2 (88E1011), revision 0.
pub const ID2: u16 = 0x0C20;

/// PHY register numbers.
pub mod reg {
    /// Control (BMCR).
    pub const CONTROL: usize = 0x00;
    /// Status (BMSR).
    pub const STATUS: usize = 0x01;
    /// PHY identifier 1.
    pub const ID1: usize = 0x02;
    /// PHY identifier 2.
    pub const ID2: usize = 0x03;
    /// Autonegotiation advertisement ([`super::ability`]).
    pub const AUTONEG_ADV: usize = 0x04;
    /// Link partner ability ([`super::ability`]).
    pub const LP_ABILITY: usize = 0x05;
    /// Autonegotiation expansion.
    pub const AUTONEG_EXP: usize = 0x06;
    /// Next page transmit.
    pub const NEXT_PAGE_TX: usize = 0x07;
    /// Link partner next page.
    pub const LP_NEXT_PAGE: usize = 0x08;
    /// 1000BASE-T control ([`super::gig_control`]).
    pub const GIG_CONTROL: usize = 0x09;
    /// 1000BASE-T status ([`super::gig_status`]).
    pub const GIG_STATUS: usize = 0x0A;
    /// Extended status ([`super::ext_status`]).
    pub const EXT_STATUS: usize = 0x0F;
    /// M88 PHY specific control.
    pub const SPEC_CONTROL: usize = 0x10;
    /// M88 PHY specific status ([`super::spec_status`]).
    pub const SPEC_STATUS: usize = 0x11;
    /// M88 interrupt enable.
    pub const INT_ENABLE: usize = 0x12;
    /// M88 interrupt status.
    pub const INT_STATUS: usize = 0x13;
    /// M88 extended PHY specific control.
    pub const EXT_SPEC_CONTROL: usize = 0x14;
    /// M88 receive error counter.
    pub const RX_ERRORS: usize = 0x15;
}

/// Control register bits.
pub mod control {
    /// Speed select MSB (1000 Mb/s with LSB clear).
    pub const SPEED_MSB: u16 = 1 << 6;
    /// Full duplex.
    pub const FULL_DUPLEX: u16 = 1 << 8;
    /// Restart autonegotiation (self clearing).
    pub const RESTART_AUTONEG: u16 = 1 << 9;
    /// Autonegotiation enable.
    pub const AUTONEG_ENABLE: u16 = 1 << 12;
    /// PHY reset (self clearing).
    pub const RESET: u16 = 1 << 15;
}

/// Status register bits.
pub mod status {
    /// Extended register capabilities.
    pub const EXTENDED_CAPS: u16 = 1 << 0;
    /// Link up.
    pub const LINK: u16 = 1 << 2;
    /// Autonegotiation ability.
    pub const AUTONEG_ABLE: u16 = 1 << 3;
    /// Autonegotiation complete.
    pub const AUTONEG_COMPLETE: u16 = 1 << 5;
    /// Management frames with preamble suppressed accepted.
    pub const PREAMBLE_SUPPRESSION: u16 = 1 << 6;
    /// Extended status in register 15.
    pub const EXTENDED_STATUS: u16 = 1 << 8;
    /// 10 Mb/s half and full duplex, 100BASE-TX half and full duplex.
    pub const ABILITIES_10_100: u16 = 0x7800;
}

/// Bits of the autonegotiation advertisement and link partner ability
/// registers (base page).
pub mod ability {
    /// Selector field: IEEE 802.3.
    pub const SELECTOR_802_3: u16 = 0x0001;
    /// 10BASE-T, 10BASE-T full duplex, 100BASE-TX, 100BASE-TX full duplex.
    pub const ABILITIES_10_100: u16 = 0x01E0;
    /// PAUSE.
    pub const PAUSE: u16 = 1 << 10;
    /// Asymmetric PAUSE.
    pub const ASM_DIR: u16 = 1 << 11;
    /// Link partner only: acknowledge.
    pub const ACK: u16 = 1 << 14;
}

/// Autonegotiation expansion bits.
pub mod autoneg_exp {
    /// The link partner is able to autonegotiate.
    pub const LP_AUTONEG_ABLE: u16 = 1 << 0;
}

/// 1000BASE-T control bits.
pub mod gig_control {
    /// Advertise 1000BASE-T half duplex.
    pub const ADV_1000_HALF: u16 = 1 << 8;
    /// Advertise 1000BASE-T full duplex.
    pub const ADV_1000_FULL: u16 = 1 << 9;
}

/// 1000BASE-T status bits.
pub mod gig_status {
    /// Link partner is 1000BASE-T half duplex capable.
    pub const LP_1000_HALF: u16 = 1 << 10;
    /// Link partner is 1000BASE-T full duplex capable.
    pub const LP_1000_FULL: u16 = 1 << 11;
    /// Remote receiver OK.
    pub const REMOTE_RX_OK: u16 = 1 << 12;
    /// Local receiver OK.
    pub const LOCAL_RX_OK: u16 = 1 << 13;
}

/// Extended status bits.
pub mod ext_status {
    /// 1000BASE-T half duplex capable.
    pub const T1000_HALF: u16 = 1 << 12;
    /// 1000BASE-T full duplex capable.
    pub const T1000_FULL: u16 = 1 << 13;
}

/// M88 PHY specific status bits.
pub mod spec_status {
    /// Link up (real time).
    pub const LINK: u16 = 1 << 10;
    /// Speed and duplex resolved.
    pub const RESOLVED: u16 = 1 << 11;
    /// Full duplex.
    pub const FULL_DUPLEX: u16 = 1 << 13;
    /// Speed field value 1000 Mb/s (bits 15:14 = 10b).
    pub const SPEED_1000: u16 = 2 << 14;
}

/// Reset values of the M88 specific control registers.
pub mod reset {
    /// PHY specific control (automatic MDI/MDI-X crossover in bits 6:5).
    pub const SPEC_CONTROL: u16 = 0x0068;
    /// Extended PHY specific control.
    pub const EXT_SPEC_CONTROL: u16 = 0x0D60;
}
