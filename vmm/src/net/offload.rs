//! The offloaded data path (`--e1000 offload=on`): while the guest runs in
//! CSB mode, the switch daemon walks the guest's e1000 rings itself and the
//! VMM keeps only the registers, the interrupt and the decisions.
//!
//! [`Offload`] holds what the exchange with the daemon needs besides the
//! device: guest RAM (its sealed memfd), the two call eventfds the daemon
//! writes when the guest asked for an interrupt (rx-call: RXT0, tx-call:
//! TXDW), and whether the daemon refused. Its functions run on the device's
//! locked state ([`super::device`] decides when):
//!
//! - [`Offload::hand_over`]: the frames waiting in the switch port's RX ring
//!   go into the guest first (what does not fit is dropped and counted in
//!   `offload.handover_drops`), then the model's state
//!   ([`E1000::handover`]) travels in `offload_port` on the port's control
//!   connection with the memfd, the TDT kick eventfd and the call eventfds.
//! - [`Offload::reclaim`]: `reclaim_port`, and the hand-back goes into the
//!   model ([`E1000::take_back`]); when the exchange fails (the daemon is
//!   gone), the heads as last published in the CSB
//!   ([`E1000::take_back_from_csb`]).
//! - [`Offload::raise_calls`]: the interrupt causes the daemon's calls
//!   stand for, raised in the model.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use e1000_spec::regs::icr;
use e1000_spec::stats;
use switch_port::client::OffloadFds;
use switch_port::control::client::ClientError;
use thiserror::Error;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::backend::PortBackend;
use super::dma::GuestDma;
use crate::e1000::offload::HandBack;
use crate::e1000::{Clock, Statistics, Trigger, E1000};
use crate::memory::GuestRam;
use crate::stats::Stats;

/// Calls of `process_rx` at a hand-over to move what waits in the port's RX
/// ring into the guest before the port's rings go idle.
const HANDOVER_RX_ROUNDS: u32 = 64;

/// Why the data path could not be handed over or taken back.
#[derive(Debug, Error)]
pub enum OffloadError {
    /// The port has no daemon to hand the data path to (a test port, the
    /// link-down port).
    #[error("the port cannot take an offloaded data path")]
    Unsupported,
    /// The daemon answered with a refusal.
    #[error("the switch daemon refused")]
    Refused(#[source] ClientError),
    /// The exchange itself failed (connection closed, timeout, a malformed
    /// answer): the daemon is gone or out of step.
    #[error("the exchange with the switch daemon failed")]
    Exchange(#[source] ClientError),
}

impl From<ClientError> for OffloadError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Refused { .. } => OffloadError::Refused(e),
            other => OffloadError::Exchange(other),
        }
    }
}

/// What a hand-over attempt came to.
#[derive(Debug, PartialEq, Eq)]
pub enum HandoverOutcome {
    /// The daemon walks the rings now.
    Offloaded,
    /// Not now: the CSB is not active, or the backend cannot offload.
    NotNow,
    /// The daemon refused (or the exchange failed): stay in CSB mode.
    Refused,
}

/// The offload's fixed parts: guest memory and the call eventfds.
pub struct Offload {
    ram: Arc<GuestRam>,
    /// Written by the daemon when the guest asked for a receive interrupt.
    rx_call: EventFd,
    /// Written by the daemon when the guest asked for a transmit interrupt,
    /// or left CSB mode.
    tx_call: EventFd,
    /// The daemon refused once; no further attempt until the CSB is
    /// remapped.
    refused: bool,
    stats: Arc<Stats>,
}

impl Offload {
    /// The offload of a device whose guest memory is `ram`.
    pub fn new(ram: Arc<GuestRam>, stats: Arc<Stats>) -> std::io::Result<Offload> {
        Ok(Offload {
            ram,
            rx_call: EventFd::new(EFD_NONBLOCK)?,
            tx_call: EventFd::new(EFD_NONBLOCK)?,
            refused: false,
            stats,
        })
    }

    /// The rx-call eventfd (I/O thread).
    pub fn rx_call_fd(&self) -> RawFd {
        self.rx_call.as_raw_fd()
    }

    /// The tx-call eventfd (I/O thread).
    pub fn tx_call_fd(&self) -> RawFd {
        self.tx_call.as_raw_fd()
    }

    /// The CSB was mapped anew (or unmapped), or the port is new: a refusal
    /// is forgotten.
    pub fn forget_refusal(&mut self) {
        self.refused = false;
    }

    /// Hands the data path to the daemon behind `backend`, if the CSB is
    /// active: moves the frames waiting in the port's RX ring into the
    /// guest (dropping and counting what does not fit), then sends the
    /// model's state with guest memory, `kick` (the TDT ioeventfd) and the
    /// call eventfds. A refusal is logged once and remembered.
    pub fn hand_over<T: Trigger, C: Clock>(
        &mut self,
        model: &mut E1000<T, C>,
        backend: &mut PortBackend,
        dma: &GuestDma,
        kick: &EventFd,
    ) -> HandoverOutcome {
        if self.refused || !backend.can_offload() || !model.csb_active(dma) {
            return HandoverOutcome::NotNow;
        }
        for _ in 0..HANDOVER_RX_ROUNDS {
            let rx = model.process_rx(dma, backend);
            if rx.frames == 0 && rx.dropped == 0 {
                break;
            }
        }
        let Some(handover) = model.handover(dma) else {
            return HandoverOutcome::NotNow;
        };
        let dropped = backend.drop_rx();
        self.stats.offload.handover_drops.add(dropped);
        let fds = OffloadFds {
            memory: self.ram.memfd(),
            kick: kick.as_raw_fd(),
            rx_call: self.rx_call.as_raw_fd(),
            tx_call: self.tx_call.as_raw_fd(),
        };
        match backend.offload(self.ram.size(), &handover, fds) {
            Ok(()) => {
                self.stats.offload.handovers.inc();
                // The guest may poll its rings now: the switch fills them.
                model.set_offloaded_flag(dma, true);
                HandoverOutcome::Offloaded
            }
            Err(e) => {
                self.refused = true;
                self.stats.offload.refusals.inc();
                if !matches!(e, OffloadError::Refused(_)) {
                    // The daemon may have taken the rings without the VMM
                    // learning it: end the connection, which makes it let
                    // go of the guest's memory (and the port).
                    backend.disconnect();
                }
                log::warn!(
                    "e1000: data path not offloaded, staying in CSB mode: {}",
                    switch_port::error_chain::Chain(&e)
                );
                HandoverOutcome::Refused
            }
        }
    }

    /// Takes the data path back from the daemon behind `backend` into
    /// `model`. If that fails, the daemon may still walk the rings: the
    /// connection is ended, which makes it let go of the guest's memory,
    /// and the data path comes back from the CSB. Any call the daemon made
    /// before is raised in the model (none is lost).
    pub fn reclaim<T: Trigger, C: Clock>(
        &mut self,
        model: &mut E1000<T, C>,
        backend: &mut PortBackend,
        dma: &GuestDma,
    ) {
        // While offloaded the daemon delivers into the guest's ring, not
        // into the port's: what is there reached it while the daemon
        // swapped the port's I/O at the hand-over, and is older than every
        // frame the guest got since. Delivered now it would arrive out of
        // order; it is dropped and counted as the hand-over's.
        let stale = backend.drop_rx();
        self.stats.offload.handover_drops.add(stale);
        match backend.reclaim() {
            Ok(back) => {
                self.stats.offload.reclaims.inc();
                self.count_moved(&back);
                model.take_back(&back, dma);
            }
            Err(e) => {
                log::warn!(
                    "e1000: the switch daemon did not give the data path back; \
                     disconnecting and taking it back from the CSB: {}",
                    switch_port::error_chain::Chain(&e)
                );
                backend.disconnect();
                self.abandon(model, dma);
                return;
            }
        }
        self.raise_calls(model);
    }

    /// Adds what the daemon moved to the VMM's own traffic counters, from
    /// the statistics registers it counted (GPTC and GOTC, GPRC and GORC;
    /// octets without the 4-byte FCS those count).
    fn count_moved(&self, back: &HandBack) {
        let mut counted = Statistics::default();
        counted.merge(&back.statistics);
        let frames_and_bytes = |packets: u32, octets_low: u32| {
            let frames = u64::from(counted.peek(packets));
            let bytes = counted.peek_wide(octets_low).saturating_sub(4 * frames);
            (frames, bytes)
        };
        let (tx_frames, tx_bytes) = frames_and_bytes(stats::GPTC, stats::GOTCL);
        let (rx_frames, rx_bytes) = frames_and_bytes(stats::GPRC, stats::GORCL);
        self.stats.tx.packets.add(tx_frames);
        self.stats.tx.bytes.add(tx_bytes);
        self.stats.rx.packets.add(rx_frames);
        self.stats.rx.bytes.add(rx_bytes);
    }

    /// Takes the data path back without the daemon (it went away): the
    /// heads as last published in the CSB; any call it made before is
    /// raised in the model.
    pub fn abandon<T: Trigger, C: Clock>(&mut self, model: &mut E1000<T, C>, dma: &GuestDma) {
        self.stats.offload.abandoned.inc();
        model.take_back_from_csb(dma);
        self.raise_calls(model);
    }

    /// Raises in the model the interrupt causes of the calls not yet taken.
    pub fn raise_calls<T: Trigger, C: Clock>(&self, model: &mut E1000<T, C>) {
        let causes = self.take_calls();
        if causes != 0 {
            model.raise_offloaded(causes);
        }
    }

    /// Reads both call eventfds: the interrupt causes they stand for (RXT0
    /// for rx-call, TXDW for tx-call; 0 when neither was written).
    fn take_calls(&self) -> u32 {
        let mut causes = 0;
        if let Ok(n) = self.rx_call.read() {
            self.stats.offload.rx_calls.add(n);
            causes |= icr::RXT0;
        }
        if let Ok(n) = self.tx_call.read() {
            self.stats.offload.tx_calls.add(n);
            causes |= icr::TXDW;
        }
        causes
    }
}
