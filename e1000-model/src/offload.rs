//! The offloaded data path: while the guest runs in CSB mode, the VMM may
//! hand the ring processing to another process (the switch daemon), which
//! then walks the guest's rings itself with the same code (the crate's `csb_path` module)
//! and gives the state back when the VMM needs the device whole again.
//!
//! The hand-over carries what a ring walk reads: the data-path registers
//! ([`is_data_path_register`]), the CSB's address and the transmit contexts
//! ([`Handover`]). The hand-back carries what a walk changed: the heads and
//! the last valid tails, the transmit contexts, and the statistics counted
//! meanwhile ([`HandBack`]). Every other register stays in the VMM; an
//! access to a register that the data path reads or writes takes the data
//! path back first ([`access_keeps_offload`]).
//!
//! The receiving side trusts nothing it is handed: [`OffloadedRings::new`]
//! checks the CSB's address and the register offsets, and every round checks
//! the rings and indices against guest memory as the VMM does.

use e1000_spec::csb::{field as csb_field, ALIGN, SIZE as CSB_SIZE};
use e1000_spec::regs::*;
use serde::{Deserialize, Serialize};

use crate::backend::NetBackend;
use crate::csb::Csb;
use crate::csb_path::{self, CsbRings};
use crate::dma::Dma;
use crate::registers::RegisterFile;
use crate::rx::RxEngine;
use crate::stats::{ErrorCounters, Statistics};
use crate::tx::{TxEngine, TxState};
use crate::{RxOutcome, TxOutcome};

/// The state of a data path handed over by the VMM.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Handover {
    /// Guest-physical address of the CSB.
    pub csb_address: u64,
    /// The data-path registers as (offset, value), each offset one that
    /// [`is_data_path_register`] accepts.
    pub registers: Vec<(u32, u32)>,
    /// The transmit contexts.
    pub tx: TxState,
}

/// The state of a data path handed back to the VMM.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandBack {
    /// The transmit head.
    pub tdh: u32,
    /// The last valid guest_tdt.
    pub tdt: u32,
    /// The receive head.
    pub rdh: u32,
    /// The last valid guest_rdt.
    pub rdt: u32,
    /// The transmit contexts.
    pub tx: TxState,
    /// The statistics registers counted while offloaded
    /// ([`Statistics::words`]).
    pub statistics: Vec<u32>,
}

/// Why a hand-over was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandoverError {
    /// The CSB's address is unaligned or its page is not in guest memory.
    #[error("CSB address {0:#x} is unaligned or outside guest memory")]
    CsbAddress(u64),
    /// A register offset the data path does not use.
    #[error("register {0:#x} is not a data-path register")]
    Register(u32),
    /// More register entries than the data path has registers.
    #[error("{0} register entries, more than the data path has")]
    TooManyRegisters(usize),
}

/// The plain data-path registers (besides the tables).
const DATA_PATH_SCALARS: [u32; 14] = [
    CTRL, VET, TCTL, TDBAL, TDBAH, TDLEN, TDH, TDT, RCTL, RDBAL, RDBAH, RDLEN, RDH, RDT,
];

/// Whether `offset` is table entry of `count` words from `base`.
fn in_words(offset: u32, base: u32, count: u32) -> bool {
    offset >= base && offset < base + count * 4 && offset.is_multiple_of(4)
}

/// Whether a ring walk reads or writes the register at `offset`: the ring
/// registers, CTRL and VET (VLAN), TCTL and RCTL, and the receive filters
/// (RAL/RAH, MTA, VFTA).
pub fn is_data_path_register(offset: u32) -> bool {
    DATA_PATH_SCALARS.contains(&offset)
        || in_words(offset, RA, RA_ENTRIES * RA_STRIDE / 4)
        || in_words(offset, MTA, MTA_LEN)
        || in_words(offset, VFTA, VFTA_LEN)
}

/// Every data-path register offset, in order.
pub fn data_path_registers() -> impl Iterator<Item = u32> {
    let table = |base: u32, count: u32| (0..count).map(move |i| base + 4 * i);
    DATA_PATH_SCALARS
        .into_iter()
        .chain(table(RA, RA_ENTRIES * RA_STRIDE / 4))
        .chain(table(MTA, MTA_LEN))
        .chain(table(VFTA, VFTA_LEN))
}

/// Whether a guest access to the register at `offset` can be served by the
/// VMM while the data path is offloaded. Reads of ICR, STATUS, IMS and the
/// moderation registers, writes of IMS, IMC, ICS and the moderation
/// registers touch only what stays in the VMM; TDT and RDT writes are kicks
/// in CSB mode (the VMM passes them on). Everything else (ring, filter and
/// control registers, CSBAL/CSBAH, statistics, which the offloaded side
/// counts) needs the data path back first.
pub fn access_keeps_offload(offset: u32, write: bool) -> bool {
    if write {
        matches!(
            offset,
            IMS | IMC | ICS | ITR | TIDV | TADV | RDTR | RADV | TDT | RDT
        )
    } else {
        matches!(
            offset,
            ICR | STATUS | IMS | ITR | TIDV | TADV | RDTR | RADV | CTRL
        )
    }
}

/// The data path as the offloaded side runs it: the registers it was handed,
/// the CSB, both engines, and what it counted.
#[derive(Debug)]
pub struct OffloadedRings {
    regs: RegisterFile,
    csb: Csb,
    tx: TxEngine,
    rx: RxEngine,
    stats: Statistics,
    errors: ErrorCounters,
}

impl OffloadedRings {
    /// Takes over `handover` for the guest memory `dma`, checking the CSB's
    /// address and every register offset.
    pub fn new(handover: &Handover, dma: &impl Dma) -> Result<Self, HandoverError> {
        let address = handover.csb_address;
        if address == 0
            || !address.is_multiple_of(ALIGN as u64)
            || !dma.contains(address, CSB_SIZE as u64)
        {
            return Err(HandoverError::CsbAddress(address));
        }
        let limit = data_path_registers().count();
        if handover.registers.len() > limit {
            return Err(HandoverError::TooManyRegisters(handover.registers.len()));
        }
        // Registers absent from the hand-over are 0 (it leaves zeros out),
        // not their reset values.
        let mut regs = RegisterFile::new();
        for offset in data_path_registers() {
            regs.set(offset, 0);
        }
        for &(offset, value) in &handover.registers {
            if !is_data_path_register(offset) {
                return Err(HandoverError::Register(offset));
            }
            regs.set(offset, value);
        }
        let mut csb = Csb::new();
        csb.adopt(address, true);
        csb.set_seen(regs.get(TDT), regs.get(RDT));
        let mut tx = TxEngine::default();
        tx.restore(&handover.tx);
        Ok(Self {
            regs,
            csb,
            tx,
            rx: RxEngine::default(),
            stats: Statistics::default(),
            errors: ErrorCounters::default(),
        })
    }

    fn rings(&mut self) -> CsbRings<'_> {
        CsbRings {
            regs: &mut self.regs,
            csb: &mut self.csb,
            tx: &mut self.tx,
            rx: &mut self.rx,
            stats: &mut self.stats,
            errors: &mut self.errors,
        }
    }

    /// Whether the guest still has guest_csb_on set. When it clears it, the
    /// indices are no longer in the CSB: the offloaded side stops walking
    /// and the VMM takes the data path back.
    pub fn guest_on(&mut self, dma: &impl Dma) -> bool {
        self.csb.guest_on(dma, &mut self.errors)
    }

    /// One transmit round ([`crate::E1000::process_tx`] in CSB mode): the
    /// frames go to `backend`; returns what moved and the interrupt causes
    /// the VMM must raise (0: none).
    pub fn transmit<D: Dma, B: NetBackend>(
        &mut self,
        dma: &D,
        backend: &mut B,
    ) -> (TxOutcome, u32) {
        if self.regs.get(TCTL) & tctl::EN == 0 {
            return (TxOutcome::default(), 0);
        }
        self.rings().transmit(dma, backend)
    }

    /// One receive round ([`crate::E1000::process_rx`] in CSB mode): frames
    /// waiting in `backend` go to the guest's buffers (dropped and counted
    /// while the receiver is disabled); returns what moved and the causes
    /// to raise.
    pub fn receive<D: Dma, B: NetBackend>(&mut self, dma: &D, backend: &mut B) -> (RxOutcome, u32) {
        if self.regs.get(RCTL) & rctl::EN == 0 {
            return (csb_path::drop_while_disabled(backend, &mut self.errors), 0);
        }
        self.rings().receive(dma, backend)
    }

    /// The poller starts polling: the guest need not kick.
    pub fn enter_polling(&mut self, dma: &impl Dma) {
        self.rings().enter_polling(dma)
    }

    /// The poller wants to sleep on the guest's kick: true if it may, false
    /// if the guest published work meanwhile (see
    /// [`crate::E1000::csb_prepare_sleep`]).
    pub fn prepare_sleep(&mut self, dma: &impl Dma, rx_waiting: bool) -> bool {
        self.rings().prepare_sleep(dma, rx_waiting)
    }

    /// A data-path register as the walker holds it.
    pub fn register(&self, offset: u32) -> u32 {
        self.regs.get(offset)
    }

    /// What the guest did wrong while offloaded.
    pub fn errors(&self) -> &ErrorCounters {
        &self.errors
    }

    /// The state to hand back to the VMM.
    pub fn hand_back(&self) -> HandBack {
        HandBack {
            tdh: self.regs.get(TDH),
            tdt: self.regs.get(TDT),
            rdh: self.regs.get(RDH),
            rdt: self.regs.get(RDT),
            tx: self.tx.state(),
            statistics: self.stats.words().to_vec(),
        }
    }

    /// The state a hand-back would carry if the offloaded side disappeared
    /// now: the heads as last published in the CSB.
    pub fn heads_in_csb(dma: &impl Dma, csb_address: u64) -> Option<(u32, u32)> {
        let tdh = dma
            .read_u32(csb_address + csb_field::HOST_TDH as u64)
            .ok()?;
        let rdh = dma
            .read_u32(csb_address + csb_field::HOST_RDH as u64)
            .ok()?;
        Some((tdh, rdh))
    }
}
