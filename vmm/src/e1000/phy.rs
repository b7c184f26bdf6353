//! The 82540EM's internal PHY (Marvell 88E1011-compatible) behind MDIC.
//!
//! Autonegotiation completes at once: the link partner is a 1000BASE-T full
//! duplex peer advertising PAUSE, and the link is up unless the VMM says
//! otherwise.

/// PHY address of the internal PHY.
pub const PHY_ADDRESS: u32 = 1;

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
    /// Autonegotiation advertisement.
    pub const AUTONEG_ADV: usize = 0x04;
    /// Link partner ability.
    pub const LP_ABILITY: usize = 0x05;
    /// Autonegotiation expansion.
    pub const AUTONEG_EXP: usize = 0x06;
    /// Next page transmit.
    pub const NEXT_PAGE_TX: usize = 0x07;
    /// Link partner next page.
    pub const LP_NEXT_PAGE: usize = 0x08;
    /// 1000BASE-T control.
    pub const GIG_CONTROL: usize = 0x09;
    /// 1000BASE-T status.
    pub const GIG_STATUS: usize = 0x0A;
    /// Extended status.
    pub const EXT_STATUS: usize = 0x0F;
    /// M88 PHY specific control.
    pub const SPEC_CONTROL: usize = 0x10;
    /// M88 PHY specific status.
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

/// 88E1011 identifier (OUI 0x005043, model 2): ID1, ID2 with revision 0.
pub const PHY_ID: (u16, u16) = (0x0141, 0x0C20);

/// PHY specific status: 1000 Mb/s, full duplex, resolved, link up.
const SPEC_STATUS_LINK_UP: u16 = (2 << 14) | (1 << 13) | (1 << 11) | (1 << 10);
/// Link partner base page: selector 802.3, 10/100 half and full, PAUSE, ACK.
const LP_ABILITY_VALUE: u16 = 0x0001 | 0x01E0 | 0x0400 | 0x4000;
/// Link partner 1000BASE-T: full and half duplex, local and remote receiver OK.
const GIG_STATUS_VALUE: u16 = 0x0800 | 0x0400 | 0x1000 | 0x2000;

/// Readable-only registers: writes leave them unchanged.
const READ_ONLY: [usize; 8] = [
    reg::STATUS,
    reg::ID1,
    reg::ID2,
    reg::LP_ABILITY,
    reg::AUTONEG_EXP,
    reg::GIG_STATUS,
    reg::EXT_STATUS,
    reg::SPEC_STATUS,
];

/// The PHY's 32 registers.
#[derive(Clone, Debug)]
pub struct Phy {
    regs: [u16; 32],
    link_up: bool,
}

impl Phy {
    /// A PHY after reset with autonegotiation complete and `link_up`.
    pub fn new(link_up: bool) -> Self {
        let mut phy = Self {
            regs: [0; 32],
            link_up,
        };
        phy.reset();
        phy
    }

    /// Returns all registers to their reset values and renegotiates.
    pub fn reset(&mut self) {
        self.regs = [0; 32];
        self.regs[reg::CONTROL] =
            control::AUTONEG_ENABLE | control::FULL_DUPLEX | control::SPEED_MSB;
        self.regs[reg::ID1] = PHY_ID.0;
        self.regs[reg::ID2] = PHY_ID.1;
        // Selector 802.3, 10/100 half and full duplex, PAUSE and ASM_DIR.
        self.regs[reg::AUTONEG_ADV] = 0x0001 | 0x01E0 | 0x0C00;
        // Advertise 1000BASE-T full and half duplex.
        self.regs[reg::GIG_CONTROL] = 0x0300;
        // 1000BASE-T full and half duplex capable.
        self.regs[reg::EXT_STATUS] = 0x3000;
        self.regs[reg::SPEC_CONTROL] = 0x0068;
        self.regs[reg::EXT_SPEC_CONTROL] = 0x0D60;
        self.autonegotiate();
    }

    /// Sets the link state; returns true when it changed.
    pub fn set_link(&mut self, up: bool) -> bool {
        let changed = self.link_up != up;
        self.link_up = up;
        self.autonegotiate();
        changed
    }

    /// Whether the link is up.
    pub fn link_up(&self) -> bool {
        self.link_up
    }

    fn autonegotiate(&mut self) {
        let mut status = status::EXTENDED_CAPS
            | status::AUTONEG_ABLE
            | status::PREAMBLE_SUPPRESSION
            | status::EXTENDED_STATUS
            | status::ABILITIES_10_100;
        if self.link_up {
            status |= status::LINK | status::AUTONEG_COMPLETE;
            self.regs[reg::LP_ABILITY] = LP_ABILITY_VALUE;
            self.regs[reg::GIG_STATUS] = GIG_STATUS_VALUE;
            self.regs[reg::AUTONEG_EXP] = 0x0001;
            self.regs[reg::SPEC_STATUS] = SPEC_STATUS_LINK_UP;
        } else {
            self.regs[reg::LP_ABILITY] = 0;
            self.regs[reg::GIG_STATUS] = 0;
            self.regs[reg::AUTONEG_EXP] = 0;
            self.regs[reg::SPEC_STATUS] = 0;
        }
        self.regs[reg::STATUS] = status;
    }

    /// Reads register `index` (0..32).
    pub fn read(&self, index: usize) -> Option<u16> {
        self.regs.get(index).copied()
    }

    /// Writes register `index`; returns false for an index past 31.
    pub fn write(&mut self, index: usize, value: u16) -> bool {
        if index >= self.regs.len() {
            return false;
        }
        if index == reg::CONTROL {
            if value & control::RESET != 0 {
                self.reset();
                return true;
            }
            self.regs[reg::CONTROL] = value & !(control::RESTART_AUTONEG | control::RESET);
            if value & control::RESTART_AUTONEG != 0 {
                self.autonegotiate();
            }
            return true;
        }
        if !READ_ONLY.contains(&index) {
            self.regs[index] = value;
        }
        true
    }
}

/// MDIC fields.
pub mod mdic {
    /// Data (bits 15:0).
    pub const DATA_MASK: u32 = 0xFFFF;
    /// PHY register address shift (bits 20:16).
    pub const REG_SHIFT: u32 = 16;
    /// PHY address shift (bits 25:21).
    pub const PHY_SHIFT: u32 = 21;
    /// Opcode write (bits 27:26 = 01b).
    pub const OP_WRITE: u32 = 1 << 26;
    /// Opcode read (bits 27:26 = 10b).
    pub const OP_READ: u32 = 2 << 26;
    /// Ready: the operation completed.
    pub const READY: u32 = 1 << 28;
    /// Raise ICR.MDAC on completion.
    pub const INTERRUPT: u32 = 1 << 29;
    /// Error: no PHY answered.
    pub const ERROR: u32 = 1 << 30;
}

/// Carries out an MDIC command at once; returns the MDIC value software reads
/// back (READY set, data for reads, ERROR for a PHY address other than 1 or an
/// invalid opcode).
pub fn mdic_command(phy: &mut Phy, command: u32) -> u32 {
    let register = ((command >> mdic::REG_SHIFT) & 0x1F) as usize;
    let address = (command >> mdic::PHY_SHIFT) & 0x1F;
    let opcode = command & (3 << 26);
    let mut result = command & !(mdic::READY | mdic::ERROR);
    if address != PHY_ADDRESS {
        return result | mdic::READY | mdic::ERROR;
    }
    match opcode {
        mdic::OP_READ => {
            let data = phy.read(register).unwrap_or(0);
            result = (result & !mdic::DATA_MASK) | u32::from(data);
        }
        mdic::OP_WRITE => {
            phy.write(register, (command & mdic::DATA_MASK) as u16);
        }
        _ => return result | mdic::READY | mdic::ERROR,
    }
    result | mdic::READY
}
