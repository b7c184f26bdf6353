//! The driver state shared by the packet loops and the interrupt handler,
//! and the policies that decide when registers are written:
//! - TX: `plain` publishes TDT for every frame (the stock driver);
//!   `combine` publishes only when no TX interrupt is pending, and otherwise
//!   lets the interrupt handler publish everything queued meanwhile, so there
//!   is at most one TDT write per TX interrupt (send combining).
//! - RX: buffers go back to the device (RDT) in batches of
//!   [`RX_RETURN_BATCH`]; RX interrupts are enabled only while the driver is
//!   about to idle, and the handler masks them again (as NAPI does), so a
//!   busy receiver takes no interrupts at all.
//!
//! A [`Driver`] is only ever used through [`crate::irq::with_driver`] or
//! from the interrupt handler, never both at once.

use crate::args::TxMode;
use crate::counters::COUNTERS;
use crate::e1000::nic::{Moderation, Nic, NicError};
use crate::e1000::regs::{INT_LSC, INT_RX, INT_RXO, INT_TXDW};
use crate::e1000::rx::RxRing;
use crate::e1000::tx::TxRing;
use crate::tsc;

/// Consumed RX buffers are returned (one RDT write) once this many are
/// waiting. With a 512-entry ring the device always keeps 447 or more.
pub const RX_RETURN_BATCH: u32 = 64;
/// In combine mode, an expected TX interrupt that has not come after this
/// long is given up on and TDT written anyway (a safety net; counted).
pub const TX_WATCHDOG_MS: u64 = 10;

/// How the driver is set up for a workload.
#[derive(Clone, Copy, Debug)]
pub struct Setup {
    /// TX publication mode.
    pub txmode: TxMode,
    /// Enable the receiver.
    pub rx_enable: bool,
    /// Interrupt causes enabled for the whole run (RX causes are managed
    /// separately, see [`Driver::arm_rx_wakeup`]).
    pub irq_mask: u32,
    /// Moderation register values.
    pub moderation: Moderation,
}

/// What bring-up found.
#[derive(Clone, Copy, Debug)]
pub struct BringUp {
    /// The MAC address.
    pub mac: [u8; 6],
    /// STATUS.LU came up.
    pub link_up: bool,
}

/// Interrupt causes seen, by kind.
#[derive(Clone, Copy, Debug, Default)]
pub struct CauseCounts {
    /// ICR had TXDW.
    pub tx: u64,
    /// ICR had an RX cause.
    pub rx: u64,
    /// ICR had RXO (the device ran out of RX descriptors).
    pub rx_overruns: u64,
    /// ICR had LSC.
    pub link_changes: u64,
    /// ICR had only causes the driver does not handle.
    pub other: u64,
}

/// The device, its rings and the driver's interrupt state.
pub struct Driver {
    /// The device.
    pub nic: Nic,
    /// The TX ring.
    pub tx: TxRing,
    /// The RX ring.
    pub rx: RxRing,
    /// Only count interrupt causes, touch no ring (the chaos workload).
    pub count_only: bool,
    /// Causes seen.
    pub causes: CauseCounts,
    txmode: TxMode,
    irq_mask: u32,
    tx_irq_pending: bool,
    tx_pending_since: u64,
    rx_armed: bool,
}

impl Driver {
    /// A driver for `nic` with the given rings (nothing programmed yet).
    pub fn new(nic: Nic, tx: TxRing, rx: RxRing) -> Driver {
        Driver {
            nic,
            tx,
            rx,
            count_only: false,
            causes: CauseCounts::default(),
            txmode: TxMode::Plain,
            irq_mask: 0,
            tx_irq_pending: false,
            tx_pending_since: 0,
            rx_armed: false,
        }
    }

    /// Resets and programs the device: MAC from the EEPROM, link up, rings,
    /// moderation, the run's interrupt mask.
    pub fn start(&mut self, setup: Setup) -> Result<BringUp, NicError> {
        self.nic.reset()?;
        let mac = self.nic.read_mac()?;
        let link_up = self.nic.link_up(1000);
        self.nic.set_mac_filter();
        self.nic.set_moderation(setup.moderation);
        self.tx.reset();
        self.nic.setup_tx(&self.tx);
        self.rx.reset();
        self.nic.setup_rx(&self.rx, setup.rx_enable);
        self.txmode = setup.txmode;
        self.irq_mask = setup.irq_mask;
        self.tx_irq_pending = false;
        self.rx_armed = false;
        if setup.irq_mask != 0 {
            self.nic.enable_interrupts(setup.irq_mask);
        }
        Ok(BringUp { mac, link_up })
    }

    /// Handles the causes of one interrupt (an ICR value).
    pub fn on_interrupt(&mut self, icr: u32) {
        if icr & INT_TXDW != 0 {
            self.causes.tx += 1;
        }
        if icr & INT_RX != 0 {
            self.causes.rx += 1;
        }
        if icr & INT_RXO != 0 {
            self.causes.rx_overruns += 1;
        }
        if icr & INT_LSC != 0 {
            self.causes.link_changes += 1;
        }
        if icr & (INT_TXDW | INT_RX | INT_LSC) == 0 {
            self.causes.other += 1;
        }
        if self.count_only {
            return;
        }
        if icr & INT_TXDW != 0 {
            self.tx.reclaim();
            if self.txmode == TxMode::Combine {
                self.tx_irq_pending = false;
                if self.tx.unpublished() > 0 {
                    self.publish_tx();
                }
            }
        }
        if icr & INT_RX != 0 && self.rx_armed {
            self.nic.disable_interrupts(INT_RX);
            self.rx_armed = false;
        }
    }

    /// Publishes the TX tail; in combine mode a TX interrupt is then due.
    fn publish_tx(&mut self) {
        self.tx.publish(&self.nic.regs);
        if self.txmode == TxMode::Combine {
            self.tx_irq_pending = true;
            self.tx_pending_since = tsc::now();
        }
    }

    /// Queues the frame written into the buffer at the ring's tail (`len`
    /// bytes) and tells the device according to the TX mode.
    #[inline]
    pub fn queue_frame(&mut self, len: u16) {
        self.tx.push(len);
        match self.txmode {
            TxMode::Combine if self.tx_irq_pending => COUNTERS.tdt_deferred.inc(),
            _ => self.publish_tx(),
        }
    }

    /// Reclaims completed TX descriptors, and in combine mode publishes
    /// frames whose TX interrupt is overdue ([`TX_WATCHDOG_MS`]).
    pub fn service_tx(&mut self) -> u32 {
        let done = self.tx.reclaim();
        if self.tx_irq_pending
            && tsc::now() - self.tx_pending_since > tsc::ms_to_ticks(TX_WATCHDOG_MS)
        {
            COUNTERS.tx_watchdog.inc();
            self.tx_irq_pending = false;
            if self.tx.unpublished() > 0 {
                self.publish_tx();
            }
        }
        done
    }

    /// True while frames are queued but not yet published.
    pub fn tx_unpublished(&self) -> bool {
        self.tx.unpublished() > 0
    }

    /// Marks the frame at the RX ring's head consumed; returns buffers to
    /// the device once [`RX_RETURN_BATCH`] are waiting.
    #[inline]
    pub fn rx_consumed(&mut self) {
        self.rx.release();
        if self.rx.to_return() >= RX_RETURN_BATCH {
            self.rx.publish(&self.nic.regs);
        }
    }

    /// Returns every consumed RX buffer now.
    pub fn rx_return_all(&mut self) {
        if self.rx.to_return() > 0 {
            self.rx.publish(&self.nic.regs);
        }
    }

    /// Before idling for RX: clears stale causes (ICR), enables the RX
    /// interrupt causes, and tells whether a frame is already waiting (then
    /// the caller should not idle). The handler masks them again.
    pub fn arm_rx_wakeup(&mut self) -> bool {
        if !self.rx_armed {
            let icr = self.nic.read_icr();
            if icr != 0 {
                self.on_interrupt(icr);
            }
            self.nic.enable_interrupts(INT_RX);
            self.rx_armed = true;
        }
        self.rx.poll().is_some()
    }

    /// The interrupt mask of the run (without the RX wake-up causes).
    pub fn irq_mask(&self) -> u32 {
        self.irq_mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::e1000::desc::{RxDesc, TxDesc, BUF_SIZE, RXD_STAT_DD, RXD_STAT_EOP, TXD_STAT_DD};
    use crate::e1000::regs::{Regs, BAR0_SIZE, RDT, TDT};

    /// A driver over leaked host memory: the "registers" are plain memory,
    /// so the tests read what the driver wrote and play the device.
    fn driver(txmode: TxMode) -> (Driver, *mut TxDesc, *mut RxDesc) {
        let regs_mem: &'static mut [u32] =
            Box::leak(vec![0u32; BAR0_SIZE as usize / 4].into_boxed_slice());
        // SAFETY: a leaked buffer as large as BAR0, used as fake registers.
        let regs = unsafe { Regs::new(regs_mem.as_mut_ptr() as usize) };
        let tx_desc = Box::leak(vec![TxDesc::default(); 64].into_boxed_slice());
        let rx_desc = Box::leak(vec![RxDesc::default(); 64].into_boxed_slice());
        let (txp, rxp) = (tx_desc.as_mut_ptr(), rx_desc.as_mut_ptr());
        let tx = TxRing::new(
            tx_desc,
            Box::leak(vec![[0u8; BUF_SIZE]; 64].into_boxed_slice()),
        );
        let rx = RxRing::new(
            rx_desc,
            Box::leak(vec![[0u8; BUF_SIZE]; 64].into_boxed_slice()),
        );
        let mut d = Driver::new(Nic::new(regs), tx, rx);
        d.txmode = txmode;
        d.irq_mask = INT_TXDW;
        (d, txp, rxp)
    }

    fn reg(d: &Driver, offset: u32) -> u32 {
        d.nic.regs.read(offset)
    }

    /// The device completes every published descriptor.
    fn complete_all(d: &Driver, desc: *mut TxDesc) {
        for i in 0..reg(d, TDT) as usize {
            // SAFETY: inside the leaked ring.
            unsafe { (*desc.add(i)).status |= TXD_STAT_DD };
        }
    }

    #[test]
    fn plain_mode_writes_tdt_for_every_frame() {
        let (mut d, desc, _) = driver(TxMode::Plain);
        for expected_tdt in 1..=3 {
            d.queue_frame(60);
            assert_eq!(reg(&d, TDT), expected_tdt);
        }
        assert_eq!(d.tx.in_flight(), 3);
        complete_all(&d, desc);
        d.on_interrupt(INT_TXDW);
        assert_eq!(d.tx.in_flight(), 0);
        assert_eq!(d.tx.free(), 63);
    }

    #[test]
    fn combine_mode_writes_tdt_once_per_tx_interrupt() {
        let (mut d, desc, _) = driver(TxMode::Combine);
        d.queue_frame(60); // nothing pending: published at once
        assert_eq!(reg(&d, TDT), 1);
        for _ in 0..5 {
            d.queue_frame(60); // a TX interrupt is pending: deferred
        }
        assert_eq!(reg(&d, TDT), 1);
        assert!(d.tx_unpublished());
        complete_all(&d, desc);
        d.on_interrupt(INT_TXDW); // the handler publishes the five at once
        assert_eq!(reg(&d, TDT), 6);
        assert_eq!(d.tx.in_flight(), 5);
        complete_all(&d, desc);
        d.on_interrupt(INT_TXDW); // nothing new: no TDT write, nothing pending
        assert!(!d.tx_irq_pending);
        d.queue_frame(60);
        assert_eq!(reg(&d, TDT), 7);
    }

    #[test]
    fn unpublished_descriptors_are_not_reclaimed() {
        let (mut d, desc, _) = driver(TxMode::Combine);
        d.queue_frame(60);
        d.queue_frame(60);
        // A hostile or confused device marks the unpublished one done too.
        // SAFETY: inside the leaked ring.
        unsafe {
            (*desc).status = TXD_STAT_DD;
            (*desc.add(1)).status = TXD_STAT_DD;
        }
        assert_eq!(d.tx.reclaim(), 1);
        assert_eq!(d.tx.in_flight(), 1);
    }

    #[test]
    fn rx_buffers_go_back_in_batches() {
        let (mut d, _, desc) = driver(TxMode::Plain);
        assert_eq!(d.rx.initial_tail(), 63);
        let mut received = 0;
        for round in 0..3u32 {
            for i in 0..40u32 {
                let index = ((round * 40 + i) % 64) as usize;
                // SAFETY: inside the leaked ring; the "device" fills it.
                unsafe {
                    (*desc.add(index)).length = 60;
                    (*desc.add(index)).status = RXD_STAT_DD | RXD_STAT_EOP;
                }
            }
            while let Some(c) = d.rx.poll() {
                assert_eq!(c.len, 60);
                d.rx_consumed();
                received += 1;
            }
        }
        assert_eq!(received, 120);
        // 120 consumed: returned at 64 (RDT 63), the other 56 wait.
        assert_eq!(reg(&d, RDT), 63);
        assert_eq!(d.rx.to_return(), 56);
        d.rx_return_all();
        assert_eq!(reg(&d, RDT), (120 + 64 - 1) % 64);
        assert!(d.rx.poll().is_none());
    }
}
