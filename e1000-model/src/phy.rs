//! The 82540EM's internal PHY (Marvell 88E1011-compatible) behind MDIC.
//!
//! Autonegotiation completes at once: the link partner is a 1000BASE-T full
//! duplex peer advertising PAUSE, and the link is up unless the VMM says
//! otherwise.

use e1000_spec::phy::{
    ability, autoneg_exp, control, ext_status, gig_control, gig_status, reg, reset, spec_status,
    status, ADDRESS, ID1, ID2, REGISTERS,
};
use e1000_spec::regs::mdic;

/// PHY specific status with the link up: 1000 Mb/s, full duplex, resolved.
const SPEC_STATUS_LINK_UP: u16 =
    spec_status::SPEED_1000 | spec_status::FULL_DUPLEX | spec_status::RESOLVED | spec_status::LINK;
/// The link partner's base page: 802.3, 10/100 half and full, PAUSE, ACK.
const LP_ABILITY_VALUE: u16 =
    ability::SELECTOR_802_3 | ability::ABILITIES_10_100 | ability::PAUSE | ability::ACK;
/// The link partner's 1000BASE-T: full and half duplex, both receivers OK.
const GIG_STATUS_VALUE: u16 = gig_status::LP_1000_FULL
    | gig_status::LP_1000_HALF
    | gig_status::REMOTE_RX_OK
    | gig_status::LOCAL_RX_OK;

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

/// The PHY's registers.
#[derive(Clone, Debug)]
pub struct Phy {
    regs: [u16; REGISTERS],
    link_up: bool,
}

impl Phy {
    /// A PHY after reset with autonegotiation complete and `link_up`.
    pub fn new(link_up: bool) -> Self {
        let mut phy = Self {
            regs: [0; REGISTERS],
            link_up,
        };
        phy.reset();
        phy
    }

    /// Returns all registers to their reset values and renegotiates.
    pub fn reset(&mut self) {
        self.regs = [0; REGISTERS];
        self.regs[reg::CONTROL] =
            control::AUTONEG_ENABLE | control::FULL_DUPLEX | control::SPEED_MSB;
        self.regs[reg::ID1] = ID1;
        self.regs[reg::ID2] = ID2;
        self.regs[reg::AUTONEG_ADV] =
            ability::SELECTOR_802_3 | ability::ABILITIES_10_100 | ability::PAUSE | ability::ASM_DIR;
        self.regs[reg::GIG_CONTROL] = gig_control::ADV_1000_FULL | gig_control::ADV_1000_HALF;
        self.regs[reg::EXT_STATUS] = ext_status::T1000_FULL | ext_status::T1000_HALF;
        self.regs[reg::SPEC_CONTROL] = reset::SPEC_CONTROL;
        self.regs[reg::EXT_SPEC_CONTROL] = reset::EXT_SPEC_CONTROL;
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
            self.regs[reg::AUTONEG_EXP] = autoneg_exp::LP_AUTONEG_ABLE;
            self.regs[reg::SPEC_STATUS] = SPEC_STATUS_LINK_UP;
        } else {
            self.regs[reg::LP_ABILITY] = 0;
            self.regs[reg::GIG_STATUS] = 0;
            self.regs[reg::AUTONEG_EXP] = 0;
            self.regs[reg::SPEC_STATUS] = 0;
        }
        self.regs[reg::STATUS] = status;
    }

    /// Reads register `index` (0..[`REGISTERS`]).
    pub fn read(&self, index: usize) -> Option<u16> {
        self.regs.get(index).copied()
    }

    /// Writes register `index`; returns false for an index past the last.
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

/// Carries out an MDIC command at once; returns the MDIC value software reads
/// back (READY set, data for reads, ERROR for a PHY address other than 1 or an
/// invalid opcode).
pub fn mdic_command(phy: &mut Phy, command: u32) -> u32 {
    let register = ((command >> mdic::REG_SHIFT) & mdic::REG_MASK) as usize;
    let address = (command >> mdic::PHY_SHIFT) & mdic::PHY_MASK;
    let opcode = command & mdic::OP_MASK;
    let mut result = command & !(mdic::READY | mdic::ERROR);
    if address != ADDRESS {
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
