//! Bringing the 82540EM up: reset, MAC address from the EEPROM (EERD), link,
//! ring registers, interrupt moderation. Only setup-time register accesses
//! live here; the packet paths are in `tx`, `rx` and `crate::driver`.

use super::desc::RCTL_BSIZE;
use super::regs::Regs;
use super::rx::RxRing;
use super::tx::TxRing;
use crate::counters::COUNTERS;
use crate::tsc::Deadline;
use e1000_spec::csb::{CSBAH, CSBAL};
use e1000_spec::eeprom;
use e1000_spec::regs::*;

/// TIPG: the 82540EM's recommended gaps for copper (IPGT 10, IPGR1 8,
/// IPGR2 6).
const TIPG_VALUE: u32 = 10 << tipg::IPGT_SHIFT | 8 << tipg::IPGR1_SHIFT | 6 << tipg::IPGR2_SHIFT;
/// TCTL collision threshold: 15 retries.
const COLLISION_THRESHOLD: u32 = 0x0F;
/// TCTL collision distance: 64 byte times (full duplex).
const COLLISION_DISTANCE: u32 = 0x40;

/// Why the device could not be brought up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NicError {
    /// CTRL.RST did not clear.
    ResetTimeout,
    /// An EERD read never finished.
    EepromTimeout,
    /// The device did not take the CSB at this address: after the CSBAL
    /// write its half of the block stayed untouched (host_need_txkick 0).
    CsbNotTaken(u64),
}

/// Interrupt moderation register values (see the 82540EM manual; delays in
/// 1.024 us units, ITR in 256 ns units). The device (VMM or QEMU) decides
/// whether it emulates them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Moderation {
    /// ITR: minimum interval between interrupts.
    pub itr: u32,
    /// TIDV: TX interrupt delay.
    pub tidv: u32,
    /// TADV: TX absolute interrupt delay.
    pub tadv: u32,
    /// RDTR: RX packet timer.
    pub rdtr: u32,
    /// RADV: RX absolute interrupt delay.
    pub radv: u32,
}

/// The FreeBSD `lem` driver's defaults (the guest of the 2013 talk):
/// 8000 interrupts/s at most, TX delays 64 (65 us), no RX packet timer.
pub const STOCK_MODERATION: Moderation = Moderation {
    itr: 488,
    tidv: 64,
    tadv: 64,
    rdtr: 0,
    radv: 64,
};

/// The device's registers and identity.
pub struct Nic {
    /// The registers.
    pub regs: Regs,
    /// The MAC address read from the EEPROM.
    pub mac: [u8; 6],
}

impl Nic {
    /// A device at `regs` (not yet reset).
    pub fn new(regs: Regs) -> Nic {
        Nic { regs, mac: [0; 6] }
    }

    /// Masks every interrupt and clears pending causes.
    pub fn mask_all(&self) {
        COUNTERS.imc_writes.inc();
        self.regs.write(IMC, u32::MAX);
        COUNTERS.icr_reads.inc();
        self.regs.read(ICR);
    }

    /// Resets the device (CTRL.RST) and waits up to 50 ms for it.
    pub fn reset(&self) -> Result<(), NicError> {
        COUNTERS.imc_writes.inc();
        self.regs.write(IMC, u32::MAX);
        self.regs.write(CTRL, ctrl::RST);
        let deadline = Deadline::after_ms(50);
        while self.regs.read(CTRL) & ctrl::RST != 0 {
            if deadline.passed() {
                return Err(NicError::ResetTimeout);
            }
        }
        self.mask_all();
        Ok(())
    }

    /// Reads one 16-bit EEPROM word through EERD.
    pub fn read_eeprom(&self, word: usize) -> Result<u16, NicError> {
        self.regs
            .write(EERD, (word as u32) << eerd::ADDR_SHIFT | eerd::START);
        let deadline = Deadline::after_ms(10);
        loop {
            let value = self.regs.read(EERD);
            if value & eerd::DONE != 0 {
                return Ok((value >> eerd::DATA_SHIFT) as u16);
            }
            if deadline.passed() {
                return Err(NicError::EepromTimeout);
            }
        }
    }

    /// Reads the MAC address (its EEPROM words) and remembers it.
    pub fn read_mac(&mut self) -> Result<[u8; 6], NicError> {
        let mut mac = [0u8; 6];
        for (i, pair) in mac.chunks_mut(2).enumerate() {
            let value = self.read_eeprom(eeprom::WORD_MAC + i)?;
            pair.copy_from_slice(&value.to_le_bytes());
        }
        self.mac = mac;
        Ok(mac)
    }

    /// Sets the link up (CTRL.SLU) and waits up to `wait_ms` for STATUS.LU.
    pub fn link_up(&self, wait_ms: u64) -> bool {
        self.regs.write(CTRL, ctrl::SLU | ctrl::ASDE | ctrl::FD);
        let deadline = Deadline::after_ms(wait_ms);
        loop {
            if self.regs.read(STATUS) & status::LU != 0 {
                return true;
            }
            if deadline.passed() {
                return false;
            }
            crate::tsc::spin_us(1000);
        }
    }

    /// Programs receive address 0 with the MAC.
    pub fn set_mac_filter(&self) {
        let m = self.mac;
        self.regs
            .write(ra_low(0), u32::from_le_bytes([m[0], m[1], m[2], m[3]]));
        self.regs.write(
            ra_high(0),
            u16::from_le_bytes([m[4], m[5]]) as u32 | rah::AV,
        );
    }

    /// Programs the interrupt moderation registers.
    pub fn set_moderation(&self, m: Moderation) {
        self.regs.write(ITR, m.itr);
        self.regs.write(TIDV, m.tidv);
        self.regs.write(TADV, m.tadv);
        self.regs.write(RDTR, m.rdtr);
        self.regs.write(RADV, m.radv);
    }

    /// Points the device at the TX ring (head = tail = 0) and enables the
    /// transmitter.
    pub fn setup_tx(&self, ring: &TxRing) {
        self.regs.write(TDBAL, ring.base() as u32);
        self.regs.write(TDBAH, (ring.base() >> 32) as u32);
        self.regs.write(TDLEN, ring.len_bytes());
        self.regs.write(TDH, 0);
        self.regs.write(TDT, 0);
        self.regs.write(TIPG, TIPG_VALUE);
        self.regs.write(
            TCTL,
            tctl::EN
                | tctl::PSP
                | COLLISION_THRESHOLD << tctl::CT_SHIFT
                | COLLISION_DISTANCE << tctl::COLD_SHIFT,
        );
    }

    /// Points the device at the RX ring (head 0, every descriptor but one
    /// given) and, if `enable`, enables the receiver: 2 KiB buffers, CRC
    /// stripped, broadcast accepted, promiscuous (a test sink counts every
    /// frame; foreign frames are counted apart).
    pub fn setup_rx(&self, ring: &RxRing, enable: bool) {
        self.regs.write(RCTL, 0);
        self.regs.write(RDBAL, ring.base() as u32);
        self.regs.write(RDBAH, (ring.base() >> 32) as u32);
        self.regs.write(RDLEN, ring.len_bytes());
        self.regs.write(RDH, 0);
        COUNTERS.rdt_writes.inc();
        self.regs.write(RDT, ring.initial_tail());
        if enable {
            self.regs.write(
                RCTL,
                rctl::EN
                    | rctl::UPE
                    | rctl::MPE
                    | rctl::BAM
                    | rctl::RDMTS_HALF
                    | RCTL_BSIZE
                    | rctl::SECRC,
            );
        }
    }

    /// Enables the interrupt causes in `mask` (IMS).
    pub fn enable_interrupts(&self, mask: u32) {
        COUNTERS.ims_writes.inc();
        self.regs.write(IMS, mask);
    }

    /// Disables the interrupt causes in `mask` (IMC).
    pub fn disable_interrupts(&self, mask: u32) {
        COUNTERS.imc_writes.inc();
        self.regs.write(IMC, mask);
    }

    /// Gives the device the CSB address (0 turns the extension off): CSBAH
    /// first, then CSBAL, whose write makes the device (re)map the block.
    pub fn set_csb_address(&self, addr: u64) {
        self.regs.write(CSBAH, (addr >> 32) as u32);
        self.regs.write(CSBAL, addr as u32);
    }

    /// Reads (and so clears) the interrupt causes.
    pub fn read_icr(&self) -> u32 {
        COUNTERS.icr_reads.inc();
        self.regs.read(ICR)
    }
}
