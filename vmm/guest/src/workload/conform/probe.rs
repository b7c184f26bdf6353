//! The probes that need no peer: register values at power-on and after
//! CTRL.RST, which bits registers keep, the EEPROM through EERD and
//! through the bit-banged Microwire pins, the PHY through MDIC and an
//! autonegotiation restart, and the interrupt registers (ICR read-to-clear,
//! ICS, IMS/IMC, the interrupt line). Each writes one JSON object.

use crate::counters::COUNTERS;
use crate::e1000::regs::Regs;
use crate::json::JsonObject;
use crate::serial::Serial;
use crate::tsc::{self, Deadline};
use e1000_spec::eeprom::{microwire, WORDS};
use e1000_spec::phy;
use e1000_spec::regs::*;

/// The JSON object the probes write into.
pub type Doc<'a, 'w> = &'a mut JsonObject<'w, Serial>;

/// Registers whose values the stock drivers read, by name.
pub const SNAPSHOT: [(&str, u32); 41] = [
    ("CTRL", CTRL),
    ("STATUS", STATUS),
    ("EECD", EECD),
    ("EERD", EERD),
    ("CTRL_EXT", CTRL_EXT),
    ("MDIC", MDIC),
    ("VET", VET),
    ("ICR", ICR),
    ("ITR", ITR),
    ("IMS", IMS),
    ("RCTL", RCTL),
    ("TCTL", TCTL),
    ("TIPG", TIPG),
    ("LEDCTL", LEDCTL),
    ("PBA", PBA),
    ("FCRTL", FCRTL),
    ("FCRTH", FCRTH),
    ("RDBAL", RDBAL),
    ("RDBAH", RDBAH),
    ("RDLEN", RDLEN),
    ("RDH", RDH),
    ("RDT", RDT),
    ("RDTR", RDTR),
    ("RXDCTL", RXDCTL),
    ("RADV", RADV),
    ("TDBAL", TDBAL),
    ("TDBAH", TDBAH),
    ("TDLEN", TDLEN),
    ("TDH", TDH),
    ("TDT", TDT),
    ("TIDV", TIDV),
    ("TXDCTL", TXDCTL),
    ("TADV", TADV),
    ("RXCSUM", RXCSUM),
    ("MTA0", MTA),
    ("RAL0", RA),
    ("RAH0", RA + 4),
    ("RAH1", RA + 12),
    ("WUC", WUC),
    ("WUFC", WUFC),
    ("MANC", MANC),
];

/// Registers written with all ones and read back (which bits they keep),
/// then written with 0.
pub const MASKS: [(&str, u32); 16] = [
    ("RDBAL", RDBAL),
    ("RDBAH", RDBAH),
    ("RDLEN", RDLEN),
    ("RDH", RDH),
    ("RDT", RDT),
    ("RDTR", RDTR),
    ("RADV", RADV),
    ("TDBAL", TDBAL),
    ("TDLEN", TDLEN),
    ("TDH", TDH),
    ("TDT", TDT),
    ("TIDV", TIDV),
    ("TADV", TADV),
    ("ITR", ITR),
    ("TIPG", TIPG),
    ("RAH1", RA + 12),
];

/// Writes `key`: every register of [`SNAPSHOT`] as read now, in order.
pub fn snapshot(o: Doc, key: &str, regs: &Regs) {
    o.object(key, |o| {
        for (name, offset) in SNAPSHOT {
            o.hex(name, regs.read(offset), 8);
        }
    });
}

/// Power-on values, then a few registers written, CTRL.RST set (as Linux
/// does: the current CTRL value with RST), RST awaited, and every value
/// again (`after_reset`), plus whether RST cleared.
pub fn reset(o: Doc, regs: &Regs) {
    snapshot(o, "power_on", regs);
    regs.write(IMS, icr::TXDW | icr::LSC);
    regs.write(RCTL, rctl::EN | rctl::BAM);
    regs.write(TCTL, tctl::PSP);
    regs.write(ITR, 100);
    regs.write(RDTR, 7);
    regs.write(RA + 12, 0x1234);
    let ctrl_value = regs.read(CTRL);
    regs.write(CTRL, ctrl_value | ctrl::RST);
    let deadline = Deadline::after_ms(50);
    let mut cleared = false;
    while !deadline.passed() {
        if regs.read(CTRL) & ctrl::RST == 0 {
            cleared = true;
            break;
        }
    }
    // Linux waits 5 ms after a reset before touching the device again.
    tsc::spin_us(5000);
    o.bool("rst_cleared", cleared);
    snapshot(o, "after_reset", regs);
}

/// The bits every register of [`MASKS`] keeps of an all-ones write.
pub fn masks(o: Doc, regs: &Regs) {
    o.object("masks", |o| {
        for (name, offset) in MASKS {
            regs.write(offset, u32::MAX);
            o.hex(name, regs.read(offset), 8);
            regs.write(offset, 0);
        }
    });
}

/// Reads an EEPROM word through EERD (`None`: DONE never came).
pub fn eerd_read(regs: &Regs, word: u32) -> Option<u16> {
    regs.write(EERD, word << eerd::ADDR_SHIFT | eerd::START);
    let deadline = Deadline::after_ms(10);
    loop {
        let value = regs.read(EERD);
        if value & eerd::DONE != 0 {
            return Some((value >> eerd::DATA_SHIFT) as u16);
        }
        if deadline.passed() {
            return None;
        }
    }
}

/// Bit-bangs one Microwire READ of `word` through EECD, the way the Linux
/// e1000 driver does on the 82540 (chip select, 3 opcode and 6 address
/// bits out on rising clock edges, 16 data bits in, chip select off).
fn microwire_read(regs: &Regs, word: u32) -> u16 {
    let base = regs.read(EECD) & !(eecd::SK | eecd::DI | eecd::CS);
    let pins = |v: u32| regs.write(EECD, v);
    pins(base | eecd::CS);
    let command = microwire::READ << microwire::ADDRESS_BITS | word;
    for bit in (0..microwire::COMMAND_BITS).rev() {
        let di = if command >> bit & 1 != 0 { eecd::DI } else { 0 };
        pins(base | eecd::CS | di);
        pins(base | eecd::CS | di | eecd::SK);
        pins(base | eecd::CS | di);
    }
    let mut value = 0u16;
    for _ in 0..microwire::WORD_BITS {
        pins(base | eecd::CS | eecd::SK);
        let data_out = regs.read(EECD) & eecd::DO != 0;
        value = value << 1 | data_out as u16;
        pins(base | eecd::CS);
    }
    pins(base);
    value
}

/// The EEPROM: every word through EERD and through Microwire, the sum of
/// the EERD words (0xBABA when the checksum word is right) and whether the
/// two paths agree. Returns the MAC address (words 0..3 through EERD).
pub fn eeprom(o: Doc, regs: &Regs) -> [u8; 6] {
    let mut words = [0u16; WORDS];
    let mut eerd_timeouts = 0u64;
    for (i, w) in words.iter_mut().enumerate() {
        *w = eerd_read(regs, i as u32).unwrap_or_else(|| {
            eerd_timeouts += 1;
            0
        });
    }
    let mut mac = [0u8; 6];
    for (i, pair) in mac.chunks_mut(2).enumerate() {
        pair.copy_from_slice(&words[i].to_le_bytes());
    }
    // Direct access: request the pins, then read.
    let eecd_before = regs.read(EECD);
    regs.write(EECD, eecd_before | eecd::REQ);
    let granted = regs.read(EECD) & eecd::GNT != 0;
    let mut microwire_mismatches = 0u64;
    let mut first_mismatch = None;
    for (i, &w) in words.iter().enumerate() {
        let m = microwire_read(regs, i as u32);
        if m != w {
            microwire_mismatches += 1;
            first_mismatch.get_or_insert((i, m));
        }
    }
    regs.write(EECD, regs.read(EECD) & !(eecd::REQ | eecd::CS | eecd::SK));
    let sum = words.iter().fold(0u16, |s, &w| s.wrapping_add(w));
    o.object("eeprom", |o| {
        o.array("words", |a| {
            for w in words {
                a.hex(w as u32, 4);
            }
        })
        .hex("sum", sum as u32, 4)
        .u64("eerd_timeouts", eerd_timeouts)
        .bool("eecd_grant", granted)
        .u64("microwire_mismatches", microwire_mismatches);
        if let Some((i, m)) = first_mismatch {
            o.u64("microwire_first_mismatch_word", i as u64).hex(
                "microwire_first_mismatch_value",
                m as u32,
                4,
            );
        }
    });
    mac
}

/// One MDIC operation; returns MDIC as read when READY came (or the last
/// value read after 10 ms).
pub fn mdic(regs: &Regs, phy_addr: u32, reg: u32, op: u32, data: u16) -> u32 {
    regs.write(
        MDIC,
        op | phy_addr << mdic::PHY_SHIFT | reg << mdic::REG_SHIFT | data as u32,
    );
    let deadline = Deadline::after_ms(10);
    loop {
        let value = regs.read(MDIC);
        if value & (mdic::READY | mdic::ERROR) != 0 || deadline.passed() {
            return value;
        }
    }
}

/// PHY registers the stock drivers read.
const PHY_REGS: [(&str, usize); 14] = [
    ("BMCR", phy::reg::CONTROL),
    ("BMSR", phy::reg::STATUS),
    ("PHYID1", phy::reg::ID1),
    ("PHYID2", phy::reg::ID2),
    ("ANAR", phy::reg::AUTONEG_ADV),
    ("ANLPAR", phy::reg::LP_ABILITY),
    ("ANER", phy::reg::AUTONEG_EXP),
    ("GCR", phy::reg::GIG_CONTROL),
    ("GSR", phy::reg::GIG_STATUS),
    ("EXTSR", phy::reg::EXT_STATUS),
    ("PSCR", phy::reg::SPEC_CONTROL),
    ("PSSR", phy::reg::SPEC_STATUS),
    ("EPSCR", phy::reg::EXT_SPEC_CONTROL),
    ("RXERR", phy::reg::RX_ERRORS),
];

fn phy_read(regs: &Regs, reg: usize) -> u32 {
    mdic(regs, phy::ADDRESS, reg as u32, mdic::OP_READ, 0)
}

/// The data of PHY register `reg` (MDIC's data field).
fn phy_data(regs: &Regs, reg: usize) -> u32 {
    phy_read(regs, reg) & mdic::DATA_MASK
}

/// The PHY: MDIC as read back after reading each register of [`PHY_REGS`]
/// (data, READY and ERROR bits), a read of another PHY address, then the
/// link set up as drivers do (CTRL.SLU, BMCR restart autonegotiation):
/// BMSR and STATUS at once and after autonegotiation completed (polled up
/// to 3 s), and the causes it raised.
pub fn phy_and_link(o: Doc, regs: &Regs) {
    o.object("phy", |o| {
        for (name, reg) in PHY_REGS {
            o.hex(name, phy_read(regs, reg), 8);
        }
        o.hex(
            "other_address",
            mdic(regs, 2, phy::reg::STATUS as u32, mdic::OP_READ, 0),
            8,
        );
        // A write of a read-only register.
        o.hex(
            "write_PHYID1",
            mdic(
                regs,
                phy::ADDRESS,
                phy::reg::ID1 as u32,
                mdic::OP_WRITE,
                0x1234,
            ),
            8,
        );
        o.hex("PHYID1_after_write", phy_read(regs, phy::reg::ID1), 8);
    });
    regs.write(IMC, u32::MAX);
    regs.read(ICR);
    let ctrl_value = regs.read(CTRL);
    regs.write(CTRL, ctrl_value | ctrl::SLU);
    let bmcr = phy_data(regs, phy::reg::CONTROL);
    let restart = bmcr as u16 | phy::control::AUTONEG_ENABLE | phy::control::RESTART_AUTONEG;
    mdic(
        regs,
        phy::ADDRESS,
        phy::reg::CONTROL as u32,
        mdic::OP_WRITE,
        restart,
    );
    let bmsr_at_once = phy_data(regs, phy::reg::STATUS);
    let status_at_once = regs.read(STATUS);
    let deadline = Deadline::after_ms(3000);
    let mut completed = false;
    while !deadline.passed() {
        if phy_read(regs, phy::reg::STATUS) & phy::status::AUTONEG_COMPLETE as u32 != 0 {
            completed = true;
            break;
        }
        tsc::spin_us(1000);
    }
    // Let a link-up interrupt cause land.
    tsc::spin_us(2000);
    o.object("link", |o| {
        o.hex("bmcr_written", restart as u32, 4)
            .hex("bmsr_at_once", bmsr_at_once, 4)
            .hex("status_at_once", status_at_once, 8)
            .bool("autoneg_completed", completed)
            .hex("bmcr_after", phy_data(regs, phy::reg::CONTROL), 4)
            .hex("bmsr_after", phy_data(regs, phy::reg::STATUS), 4)
            .hex("anlpar_after", phy_data(regs, phy::reg::LP_ABILITY), 4)
            .hex("pssr_after", phy_data(regs, phy::reg::SPEC_STATUS), 4)
            .hex("status_after", regs.read(STATUS), 8)
            .hex("ctrl_after", regs.read(CTRL), 8)
            .hex("icr_after", regs.read(ICR), 8);
    });
}

/// NIC interrupts taken so far (the handler counts them; with no driver
/// installed it reads nothing).
fn irqs() -> u64 {
    COUNTERS.irqs.get()
}

/// How long a probe waits for an interrupt (moderation delays it, and
/// QEMU raises it from a timer of its main loop, late on a busy host).
const IRQ_WAIT_MS: u64 = 100;

/// Waits until an interrupt came since `before` (or [`IRQ_WAIT_MS`]
/// passed), then a little longer for any further one; returns how many
/// came.
fn irqs_since(before: u64) -> u64 {
    let deadline = Deadline::after_ms(IRQ_WAIT_MS);
    while irqs() == before && !deadline.passed() {
        core::hint::spin_loop();
    }
    tsc::spin_us(2000);
    irqs() - before
}

/// ICR, ICS, IMS and IMC: what reads return after each step, and whether
/// the interrupt line is raised (interrupts counted through the IOAPIC pin
/// the caller routed) while a cause is masked, when it is unmasked, and
/// again after ICR was read and the cause set anew.
pub fn interrupts(o: Doc, regs: &Regs) {
    let causes = icr::TXDW | icr::LSC | icr::RXT0;
    regs.write(IMC, u32::MAX);
    o.object("interrupts", |o| {
        o.hex("icr_initial", regs.read(ICR), 8);
        regs.write(ICS, causes);
        o.hex("icr_after_ics", regs.read(ICR), 8)
            .hex("icr_second_read", regs.read(ICR), 8);
        regs.write(ICS, u32::MAX);
        o.hex("icr_after_ics_all", regs.read(ICR), 8);
        regs.write(IMS, u32::MAX);
        o.hex("ims_after_ims_all", regs.read(IMS), 8);
        regs.write(IMC, u32::MAX);
        o.hex("ims_after_imc_all", regs.read(IMS), 8);
        regs.write(IMS, causes);
        regs.write(IMC, icr::TXDW);
        o.hex("ims_after_imc_one", regs.read(IMS), 8);
        regs.write(IMC, u32::MAX);
        regs.write(ICS, causes);
        regs.write(ICR, icr::LSC);
        o.hex("icr_after_icr_write", regs.read(ICR), 8);
        regs.write(ICS, causes);
        o.hex("ics_read", regs.read(ICS), 8);
        regs.read(ICR);
        // The line: masked, unmasked, acknowledged and raised again.
        let before = irqs();
        regs.write(ICS, icr::TXDW);
        o.u64("irqs_while_masked", irqs_since(before));
        let before = irqs();
        regs.write(IMS, icr::TXDW);
        o.u64("irqs_on_unmask", irqs_since(before));
        let icr_in_irq = regs.read(ICR);
        let before = irqs();
        regs.write(ICS, icr::TXDW);
        o.u64("irqs_after_rearm", irqs_since(before))
            .hex("icr_when_taken", icr_in_irq, 8)
            .hex("icr_when_taken_again", regs.read(ICR), 8);
        let before = irqs();
        regs.write(ICS, icr::RXT0);
        o.u64("irqs_other_cause_masked", irqs_since(before));
        regs.write(IMC, u32::MAX);
        regs.read(ICR);
    });
}
