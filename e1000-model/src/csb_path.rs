//! The CSB-mode ring walk: one bounded round of transmit and of receive with
//! the ring indices in the Common Status Block. The one implementation of
//! the paravirtual data path, run by the VMM's [`crate::E1000`] (its net
//! worker) and by the switch daemon for an offloaded port
//! ([`crate::offload::OffloadedRings`]).

use std::sync::atomic::{fence, Ordering};

use e1000_spec::csb::field as csb_field;
use e1000_spec::desc;
use e1000_spec::regs::*;

use crate::backend::NetBackend;
use crate::csb::{Csb, GuestIndex};
use crate::dma::Dma;
use crate::registers::RegisterFile;
use crate::rx::{self, RxEngine, RxEnv};
use crate::stats::{ErrorCounters, Statistics};
use crate::tx::{TxEngine, TxEnv};
use crate::{RxOutcome, TxOutcome, CSB_RX_BATCH, CSB_TX_BATCH};

const _: () = assert!(crate::tx::MAX_PACKET_DESCRIPTORS <= CSB_TX_BATCH);

/// The device state a CSB-mode round reads and writes, borrowed from
/// whoever owns it.
pub(crate) struct CsbRings<'a> {
    pub regs: &'a mut RegisterFile,
    pub csb: &'a mut Csb,
    pub tx: &'a mut TxEngine,
    pub rx: &'a mut RxEngine,
    pub stats: &'a mut Statistics,
    pub errors: &'a mut ErrorCounters,
}

impl CsbRings<'_> {
    /// TDH and guest_tdt (validated; the last valid tail is kept in TDT, so
    /// an invalid value leaves the previous tail in use).
    fn tx_indices<D: Dma>(&mut self, dma: &D) -> (u32, u32) {
        let size = self.regs.get(TDLEN) / desc::SIZE as u32;
        if let Some(tail) = self.csb.guest_index(dma, GuestIndex::Tx, size, self.errors) {
            self.regs.set(TDT, tail);
        }
        (self.regs.get(TDH), self.regs.get(TDT))
    }

    /// RDH and guest_rdt, as [`CsbRings::tx_indices`].
    fn rx_indices<D: Dma>(&mut self, dma: &D) -> (u32, u32) {
        let size = self.regs.get(RDLEN) / desc::SIZE as u32;
        if let Some(tail) = self.csb.guest_index(dma, GuestIndex::Rx, size, self.errors) {
            self.regs.set(RDT, tail);
        }
        (self.regs.get(RDH), self.regs.get(RDT))
    }

    /// Transmits up to [`CSB_TX_BATCH`] descriptors from TDH towards
    /// guest_tdt, publishes host_tdh and returns what moved with the
    /// interrupt causes to raise (TXDW, TXQE: only while guest_need_txkick
    /// is set). The caller has checked TCTL.EN and DMA.
    pub fn transmit<D: Dma, B: NetBackend>(
        &mut self,
        dma: &D,
        backend: &mut B,
    ) -> (TxOutcome, u32) {
        let (head, tail) = self.tx_indices(dma);
        if head == tail {
            return (TxOutcome::default(), 0);
        }
        let Some(env) = TxEnv::from_registers(self.regs, dma, head, tail, self.errors) else {
            return (TxOutcome::default(), 0);
        };
        let batch_end = if env.ring.distance(head, tail) > CSB_TX_BATCH {
            (head + CSB_TX_BATCH) % env.ring.size
        } else {
            tail
        };
        let env = TxEnv {
            tail: batch_end,
            ..env
        };
        // A packet spans at most MAX_PACKET_DESCRIPTORS (checked below to
        // fit a batch), so a batch always ends or drops the packet it starts
        // with: no walk needs to go past the batch.
        let run = self.tx.run(env, dma, backend, self.stats, self.errors);
        self.regs.set(TDH, run.head);
        self.csb.store(dma, csb_field::HOST_TDH, run.head);
        // host_tdh is published: now look at the guest's flag (the waker's
        // side of the need-kick rule).
        fence(Ordering::SeqCst);
        let mut causes = 0;
        if run.descriptors > 0 && self.csb.flag(dma, csb_field::GUEST_NEED_TXKICK) {
            causes |= icr::TXDW;
            if run.head == tail {
                causes |= icr::TXQE;
            }
        }
        let outcome = TxOutcome {
            frames: run.frames,
            descriptors: run.descriptors,
            backend_full: run.backend_full,
        };
        (outcome, causes)
    }

    /// Receives up to [`CSB_RX_BATCH`] frames from `backend` into the
    /// buffers between RDH and guest_rdt, publishes host_rdh (when it moved)
    /// and returns what moved with the causes to raise (RXT0, RXDMT0: only
    /// while guest_need_rxkick is set). The caller has checked RCTL.EN and
    /// DMA.
    pub fn receive<D: Dma, B: NetBackend>(&mut self, dma: &D, backend: &mut B) -> (RxOutcome, u32) {
        let (head, tail) = self.rx_indices(dma);
        let waiting = backend.rx_peek().is_some();
        let env = RxEnv::from_registers(
            self.regs,
            dma,
            head,
            tail,
            CSB_RX_BATCH,
            waiting,
            self.errors,
        );
        let Some(env) = env else {
            let outcome = RxOutcome {
                waiting_for_buffers: true,
                ..RxOutcome::default()
            };
            return (outcome, 0);
        };
        let run = self
            .rx
            .run(env, self.regs, dma, backend, self.stats, self.errors);
        let moved = self.regs.get(RDH) != run.head;
        self.regs.set(RDH, run.head);
        if moved {
            // Only when it moved: the guest polls that cache line.
            self.csb.store(dma, csb_field::HOST_RDH, run.head);
        }
        fence(Ordering::SeqCst);
        let mut causes = 0;
        if (run.frames > 0 || run.threshold_reached)
            && self.csb.flag(dma, csb_field::GUEST_NEED_RXKICK)
        {
            if run.frames > 0 {
                causes |= icr::RXT0;
            }
            if run.threshold_reached {
                causes |= icr::RXDMT0;
            }
        }
        let outcome = RxOutcome {
            frames: run.frames,
            dropped: run.dropped,
            waiting_for_buffers: run.waiting_for_buffers,
            more: run.more,
        };
        (outcome, causes)
    }

    /// The poller starts polling: clears host_need_txkick and
    /// host_need_rxkick so the guest stops kicking.
    pub fn enter_polling<D: Dma>(&mut self, dma: &D) {
        self.csb.set_flag(dma, csb_field::HOST_NEED_TXKICK, false);
        self.csb.set_flag(dma, csb_field::HOST_NEED_RXKICK, false);
    }

    /// The poller found nothing to do and wants to sleep: sets
    /// host_need_txkick (and host_need_rxkick when `rx_waiting`), full
    /// barrier, then re-reads guest_tdt (and guest_rdt). True if it may
    /// sleep until a kick; false (flags cleared again) if the guest
    /// published new work meanwhile.
    pub fn prepare_sleep<D: Dma>(&mut self, dma: &D, rx_waiting: bool) -> bool {
        self.csb.set_flag(dma, csb_field::HOST_NEED_TXKICK, true);
        if rx_waiting {
            self.csb.set_flag(dma, csb_field::HOST_NEED_RXKICK, true);
        }
        fence(Ordering::SeqCst);
        let tx_new = self.regs.get(TCTL) & tctl::EN != 0
            && self.csb.guest_index_changed(dma, GuestIndex::Tx);
        let rx_new = rx_waiting
            && self.regs.get(RCTL) & rctl::EN != 0
            && self.csb.guest_index_changed(dma, GuestIndex::Rx);
        if tx_new || rx_new {
            self.enter_polling(dma);
            return false;
        }
        true
    }
}

/// Drops up to [`rx::RX_BUDGET`] frames waiting in `backend` (the receiver
/// is disabled, as the hardware does), counting them.
pub(crate) fn drop_while_disabled<B: NetBackend>(
    backend: &mut B,
    errors: &mut ErrorCounters,
) -> RxOutcome {
    let mut outcome = RxOutcome::default();
    while backend.rx_peek().is_some() {
        if outcome.dropped >= rx::RX_BUDGET {
            outcome.more = true;
            break;
        }
        backend.rx_consume();
        errors.rx_disabled_drops += 1;
        outcome.dropped += 1;
    }
    if outcome.dropped > 0 {
        backend.rx_flush();
    }
    outcome
}
