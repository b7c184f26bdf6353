//! The plain register file of the 82540EM: the BAR0 registers that behave
//! like memory. Offsets, bits and reset values come from
//! [`e1000_spec::regs`]; registers with side effects (ICR, EECD, MDIC,
//! TDT, ...) are handled by the device.

use e1000_spec::regs::*;

/// Number of 32-bit words in BAR0.
const WORDS: usize = (MMIO_SIZE / 4) as usize;

/// Value of every storage register after reset, other than 0.
const RESET_VALUES: &[(u32, u32)] = &[
    // Full duplex, auto-speed detection, link up (as loaded from the EEPROM).
    (CTRL, ctrl::FD | ctrl::ASDE | ctrl::SLU),
    (VET, reset::VET),
    (PBA, reset::PBA),
];

/// Whether `offset` (4-byte aligned) names a register that simply stores what
/// is written to it.
pub fn is_storage_register(offset: u32) -> bool {
    matches!(
        offset,
        CTRL_EXT
            | FLA
            | FCAL
            | FCAH
            | FCT
            | VET
            | RCTL
            | FCTTV
            | TXCW
            | RXCW
            | TCTL
            | TIPG
            | AIFS
            | LEDCTL
            | PBA
            | FCRTL
            | FCRTH
            | RDBAL
            | RDBAH
            | RDLEN
            | RDH
            | RDT
            | RXDCTL
            | RSRPD
            | TXDMAC
            | TDBAL
            | TDBAH
            | TDLEN
            | TDH
            | TDT
            | TXDCTL
            | TSPMT
            | RXCSUM
            | WUC
            | WUFC
            | WUS
            | MANC
            | IPAV
            | WUPL
    ) || in_table(offset, MTA, MTA_LEN, 4)
        || in_table(offset, RA, RA_ENTRIES * RA_STRIDE / 4, 4)
        || in_table(offset, VFTA, VFTA_LEN, 4)
        || in_table(offset, IP4AT, IP4AT_ENTRIES, WAKEUP_TABLE_STRIDE)
        || in_table(offset, IP6AT, IP6AT_WORDS, 4)
        || in_table(offset, WUPM, WUPM_WORDS, 4)
        || in_table(offset, FFLT, FFLT_ENTRIES, WAKEUP_TABLE_STRIDE)
        || in_table(offset, FFMT, FFMT_ENTRIES, WAKEUP_TABLE_STRIDE)
        || in_table(offset, FFVT, FFVT_ENTRIES, WAKEUP_TABLE_STRIDE)
}

/// Whether `offset` is one of `count` entries of `stride` bytes from `base`.
fn in_table(offset: u32, base: u32, count: u32, stride: u32) -> bool {
    offset >= base && offset < base + count * stride && (offset - base).is_multiple_of(stride)
}

/// The storage registers of BAR0, one 32-bit word per 4-byte offset.
#[derive(Clone)]
pub struct RegisterFile {
    words: Box<[u32]>,
}

impl Default for RegisterFile {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for RegisterFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisterFile").finish_non_exhaustive()
    }
}

impl RegisterFile {
    /// A register file holding the reset values.
    pub fn new() -> Self {
        let mut file = Self {
            words: vec![0; WORDS].into_boxed_slice(),
        };
        file.reset();
        file
    }

    /// Restores every register to its reset value.
    pub fn reset(&mut self) {
        self.words.fill(0);
        for &(offset, value) in RESET_VALUES {
            self.set(offset, value);
        }
    }

    /// The value at `offset` (0 for offsets outside BAR0).
    #[inline]
    pub fn get(&self, offset: u32) -> u32 {
        self.words.get((offset / 4) as usize).copied().unwrap_or(0)
    }

    /// Stores `value` at `offset` (ignored outside BAR0).
    #[inline]
    pub fn set(&mut self, offset: u32, value: u32) {
        if let Some(word) = self.words.get_mut((offset / 4) as usize) {
            *word = value;
        }
    }

    /// Receive address entry `n` as (RAL, RAH).
    #[inline]
    pub fn receive_address(&self, n: u32) -> (u32, u32) {
        (self.get(ra_low(n)), self.get(ra_high(n)))
    }

    /// 64-bit descriptor ring base from a low/high register pair.
    #[inline]
    pub fn ring_base(&self, low: u32, high: u32) -> u64 {
        (u64::from(self.get(high)) << 32) | u64::from(self.get(low) & RING_BASE_LOW_MASK)
    }
}
