//! Names of the e1000's BAR0 registers for the exit accounting
//! (`e1000.TDT`), covering what drivers touch; the rest is grouped.

use e1000_spec::csb::{CSBAH, CSBAL};
use e1000_spec::regs as r;
use e1000_spec::stats;

/// The name of the register at BAR0 `offset` (a static string, so counting
/// by name allocates nothing).
pub fn e1000_register_name(offset: u64) -> &'static str {
    let Ok(offset) = u32::try_from(offset & !3) else {
        return "e1000.other";
    };
    match offset {
        r::CTRL => "e1000.CTRL",
        r::STATUS => "e1000.STATUS",
        r::EECD => "e1000.EECD",
        r::EERD => "e1000.EERD",
        r::CTRL_EXT => "e1000.CTRL_EXT",
        r::MDIC => "e1000.MDIC",
        r::ICR => "e1000.ICR",
        r::ITR => "e1000.ITR",
        r::ICS => "e1000.ICS",
        r::IMS => "e1000.IMS",
        r::IMC => "e1000.IMC",
        r::RCTL => "e1000.RCTL",
        r::TCTL => "e1000.TCTL",
        r::TIPG => "e1000.TIPG",
        r::RDBAL => "e1000.RDBAL",
        r::RDBAH => "e1000.RDBAH",
        r::RDLEN => "e1000.RDLEN",
        r::RDH => "e1000.RDH",
        r::RDT => "e1000.RDT",
        r::RDTR => "e1000.RDTR",
        r::RADV => "e1000.RADV",
        r::TDBAL => "e1000.TDBAL",
        r::TDBAH => "e1000.TDBAH",
        r::TDLEN => "e1000.TDLEN",
        r::TDH => "e1000.TDH",
        r::TDT => "e1000.TDT",
        r::TIDV => "e1000.TIDV",
        r::TADV => "e1000.TADV",
        CSBAL => "e1000.CSBAL",
        CSBAH => "e1000.CSBAH",
        o if (stats::START..stats::END).contains(&o) => "e1000.statistics",
        o if (r::MTA..r::MTA + 4 * r::MTA_LEN).contains(&o) => "e1000.MTA",
        o if (r::RA..r::ra_low(r::RA_ENTRIES)).contains(&o) => "e1000.RA",
        o if (r::VFTA..r::VFTA + 4 * r::VFTA_LEN).contains(&o) => "e1000.VFTA",
        _ => "e1000.other",
    }
}
