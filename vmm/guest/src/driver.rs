//! The driver state shared by the packet loops and the interrupt handler,
//! and the policies that decide when registers are written:
//! - TX: `plain` publishes TDT for every frame (the stock driver);
//!   `combine` publishes only when no TX interrupt is pending, and otherwise
//!   lets the interrupt handler publish everything queued meanwhile, so there
//!   is at most one TDT write per TX interrupt (send combining); `csb`
//!   publishes guest_tdt in the shared block once per `burst` frames (and
//!   at [`Driver::flush_tx`]) and writes TDT only when the device asks for
//!   a kick.
//! - RX: buffers go back to the device (RDT, or guest_rdt with the CSB) in
//!   batches of [`RX_RETURN_BATCH`]; RX interrupts are enabled only while
//!   the driver is about to idle, and the handler masks them again (as NAPI
//!   does), so a busy receiver takes no interrupts at all. With the CSB the
//!   causes stay enabled and the need-kick flags decide instead: the device
//!   interrupts only while guest_need_rxkick / guest_need_txkick is set.
//!
//! A [`Driver`] is only ever used through [`crate::irq::with_driver`] or
//! from the interrupt handler, never both at once.

use crate::args::TxMode;
use crate::counters::COUNTERS;
use crate::e1000::csb::{full_barrier, Csb};
use crate::e1000::nic::{Moderation, Nic, NicError};
use crate::e1000::regs::INT_RX;
use crate::e1000::rx::RxRing;
use crate::e1000::tx::TxRing;
use crate::tsc::{self, Deadline};
use e1000_spec::regs::icr::{LSC as INT_LSC, RXO as INT_RXO, TXDW as INT_TXDW};
use e1000_spec::regs::{status, STATUS};

/// Consumed RX buffers are returned (one RDT write) once this many are
/// waiting. With a 4096-entry ring the device always keeps 4031 or more.
pub const RX_RETURN_BATCH: u32 = 64;
/// In combine mode, an expected TX interrupt that has not come after this
/// long is given up on and TDT written anyway (a safety net; counted).
pub const TX_WATCHDOG_MS: u64 = 10;
/// How long bring-up waits for the device to initialize its half of the
/// CSB after the CSBAL write.
pub const CSB_TAKE_MS: u64 = 10;

/// How the driver is set up for a workload.
#[derive(Clone, Copy, Debug)]
pub struct Setup {
    /// TX publication mode.
    pub txmode: TxMode,
    /// Frames per TX publication in CSB mode (`burst=`).
    pub burst: u32,
    /// Enable the receiver.
    pub rx_enable: bool,
    /// Interrupt causes enabled for the whole run (RX causes are managed
    /// separately, see [`Driver::arm_rx_wakeup`], except in CSB mode).
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
    /// LSC found STATUS.LU clear after it was set.
    pub link_downs: u64,
    /// LSC found STATUS.LU set after it was clear.
    pub link_ups: u64,
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
    /// The CSB page (given to the device only in CSB mode).
    pub csb: Csb,
    /// Only count interrupt causes, touch no ring (the chaos workload).
    pub count_only: bool,
    /// Causes seen.
    pub causes: CauseCounts,
    /// STATUS.LU as last read (at bring-up, then at every LSC): while the
    /// link is down the workloads do not transmit.
    pub link_up: bool,
    txmode: TxMode,
    burst: u32,
    irq_mask: u32,
    tx_irq_pending: bool,
    tx_pending_since: u64,
    rx_armed: bool,
    csb_on: bool,
}

impl Driver {
    /// A driver for `nic` with the given rings and CSB page (nothing
    /// programmed yet).
    pub fn new(nic: Nic, tx: TxRing, rx: RxRing, csb: Csb) -> Driver {
        Driver {
            nic,
            tx,
            rx,
            csb,
            count_only: false,
            causes: CauseCounts::default(),
            txmode: TxMode::Plain,
            burst: 1,
            irq_mask: 0,
            link_up: false,
            tx_irq_pending: false,
            tx_pending_since: 0,
            rx_armed: false,
            csb_on: false,
        }
    }

    /// Resets and programs the device: MAC from the EEPROM, link up, rings,
    /// moderation, the run's interrupt mask; in CSB mode then the CSB.
    pub fn start(&mut self, setup: Setup) -> Result<BringUp, NicError> {
        self.detach_csb();
        self.nic.reset()?;
        let mac = self.nic.read_mac()?;
        let link_up = self.nic.link_up(1000);
        self.link_up = link_up;
        self.nic.set_mac_filter();
        self.nic.set_moderation(setup.moderation);
        self.tx.reset();
        self.nic.setup_tx(&self.tx);
        self.rx.reset();
        self.nic.setup_rx(&self.rx, setup.rx_enable);
        self.txmode = setup.txmode;
        self.burst = setup.burst.max(1);
        self.irq_mask = setup.irq_mask;
        self.tx_irq_pending = false;
        self.rx_armed = false;
        if setup.txmode == TxMode::Csb {
            self.enable_csb()?;
        }
        if setup.irq_mask != 0 {
            self.nic.enable_interrupts(setup.irq_mask);
        }
        Ok(BringUp { mac, link_up })
    }

    /// Hands the CSB to the device and starts using it:
    /// [`Driver::map_csb`], then [`Driver::use_csb`].
    pub fn enable_csb(&mut self) -> Result<(), NicError> {
        self.map_csb();
        self.use_csb()
    }

    /// Writes the guest half with the rings' current tails (guest_csb_on
    /// 0), then the block's address: CSBAH, then CSBAL (the device maps the
    /// block and writes its half on that write).
    pub fn map_csb(&mut self) {
        self.csb.init_guest_half(self.tx.tail(), self.rx.tail());
        self.nic.set_csb_address(self.csb.addr());
    }

    /// After [`Driver::map_csb`]: waits up to [`CSB_TAKE_MS`] for the
    /// device's half (host_need_txkick = 1: its TX worker waits for the
    /// first kick), then sets guest_csb_on and makes the rings publish
    /// through the block.
    pub fn use_csb(&mut self) -> Result<(), NicError> {
        let csb = self.csb;
        let deadline = Deadline::after_ms(CSB_TAKE_MS);
        while !csb.host_needs_txkick() {
            if deadline.passed() {
                return Err(NicError::CsbNotTaken(csb.addr()));
            }
            core::hint::spin_loop();
        }
        csb.set_on(true);
        self.tx.set_csb(Some(csb));
        self.rx.set_csb(Some(csb));
        self.csb_on = true;
        Ok(())
    }

    /// Stops using the CSB: guest_csb_on = 0 and the rings publish through
    /// the registers again (the device's registers hold the last tails it
    /// took from the block). The device keeps the mapping until reset or a
    /// CSBAL write.
    pub fn detach_csb(&mut self) {
        if self.csb_on {
            self.csb.set_on(false);
        }
        self.tx.set_csb(None);
        self.rx.set_csb(None);
        self.csb_on = false;
    }

    /// True while the rings publish through the CSB.
    pub fn csb_on(&self) -> bool {
        self.csb_on
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
            let up = self.nic.regs.read(STATUS) & status::LU != 0;
            match (self.link_up, up) {
                (true, false) => self.causes.link_downs += 1,
                (false, true) => self.causes.link_ups += 1,
                _ => {}
            }
            self.link_up = up;
        }
        if icr & (INT_TXDW | INT_RX | INT_LSC) == 0 {
            self.causes.other += 1;
        }
        if self.count_only {
            return;
        }
        if icr & INT_TXDW != 0 {
            if self.csb_on {
                // The wake-up asked for has come: no more TX interrupts
                // until the driver sleeps again.
                self.csb.set_need_txkick(false);
            }
            self.tx.reclaim();
            if self.txmode == TxMode::Combine {
                self.tx_irq_pending = false;
                if self.tx.unpublished() > 0 {
                    self.publish_tx();
                }
            }
        }
        if icr & INT_RX != 0 {
            if self.csb_on {
                self.csb.set_need_rxkick(false);
            } else if self.rx_armed {
                self.nic.disable_interrupts(INT_RX);
                self.rx_armed = false;
            }
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
    /// bytes) and tells the device according to the TX mode (CSB mode:
    /// once `burst` frames wait; call [`Driver::flush_tx`] after a batch).
    #[inline]
    pub fn queue_frame(&mut self, len: u16) {
        self.tx.push(len);
        match self.txmode {
            TxMode::Combine if self.tx_irq_pending => COUNTERS.tdt_deferred.inc(),
            TxMode::Csb if self.tx.unpublished() < self.burst => {}
            _ => self.publish_tx(),
        }
    }

    /// Ends a batch of [`Driver::queue_frame`] calls: in CSB mode publishes
    /// what is still unpublished (plain mode has published everything;
    /// combine mode leaves it to the TX interrupt).
    #[inline]
    pub fn flush_tx(&mut self) {
        if self.txmode == TxMode::Csb && self.tx.unpublished() > 0 {
            self.publish_tx();
        }
    }

    /// The TSC value at which [`Driver::service_tx`] gives up on an
    /// expected TX interrupt (combine mode), if one is expected: a waiting
    /// loop must look again by then.
    pub fn tx_watchdog_due(&self) -> Option<u64> {
        self.tx_irq_pending
            .then(|| self.tx_pending_since + tsc::ms_to_ticks(TX_WATCHDOG_MS) + 1)
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

    /// Before idling until TX descriptors complete: true if the caller may
    /// idle. Without the CSB always (the TX interrupt is enabled for the
    /// whole run). With it: sets guest_need_txkick, full barrier, reclaims
    /// again; if that found completed descriptors the flag is cleared and
    /// the answer is false. Call [`Driver::end_tx_sleep`] after the idle.
    pub fn prepare_tx_sleep(&mut self) -> bool {
        if !self.csb_on {
            return true;
        }
        self.flush_tx();
        self.csb.set_need_txkick(true);
        full_barrier();
        if self.tx.reclaim() > 0 || self.tx.in_flight() == 0 {
            self.csb.set_need_txkick(false);
            COUNTERS.csb_sleeps_avoided.inc();
            return false;
        }
        COUNTERS.csb_tx_sleeps.inc();
        true
    }

    /// After idling for TX completions: clears guest_need_txkick (CSB).
    pub fn end_tx_sleep(&mut self) {
        if self.csb_on {
            self.csb.set_need_txkick(false);
        }
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

    /// Before idling for RX: true if a frame is already waiting (then the
    /// caller should not idle). Without the CSB: [`Driver::arm_rx_wakeup`].
    /// With it: returns the consumed buffers, sets guest_need_rxkick, full
    /// barrier, re-checks host_rdh; if a frame is there the flag is cleared
    /// again. Call [`Driver::end_rx_sleep`] after the idle.
    pub fn prepare_rx_sleep(&mut self) -> bool {
        if !self.csb_on {
            return self.arm_rx_wakeup();
        }
        self.rx_return_all();
        self.csb.set_need_rxkick(true);
        full_barrier();
        if self.rx.poll().is_some() {
            self.csb.set_need_rxkick(false);
            COUNTERS.csb_sleeps_avoided.inc();
            return true;
        }
        COUNTERS.csb_rx_sleeps.inc();
        false
    }

    /// After idling for RX (or giving up): clears guest_need_rxkick (CSB).
    pub fn end_rx_sleep(&mut self) {
        if self.csb_on {
            self.csb.set_need_rxkick(false);
        }
    }

    /// Before idling for RX without the CSB: clears stale causes (ICR),
    /// enables the RX interrupt causes, and tells whether a frame is already
    /// waiting (then the caller should not idle). The handler masks them
    /// again.
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
    use crate::e1000::csb::CsbPage;
    use crate::e1000::desc::{RxDesc, TxDesc, BUF_SIZE};
    use crate::e1000::regs::Regs;
    use e1000_spec::csb::{field, CSBAH, CSBAL};
    use e1000_spec::desc::rx::status::{DD as RXD_STAT_DD, EOP as RXD_STAT_EOP};
    use e1000_spec::desc::tx::status::DD as TXD_STAT_DD;
    use e1000_spec::regs::{MMIO_SIZE, RDT, TDT};

    /// A driver over leaked host memory: the "registers" are plain memory,
    /// so the tests read what the driver wrote and play the device.
    fn driver(txmode: TxMode) -> (Driver, *mut TxDesc, *mut RxDesc) {
        let regs_mem: &'static mut [u32] =
            Box::leak(vec![0u32; MMIO_SIZE as usize / 4].into_boxed_slice());
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
        let csb = Csb::new(Box::leak(Box::new(CsbPage::new())));
        let mut d = Driver::new(Nic::new(regs), tx, rx, csb);
        d.txmode = txmode;
        d.irq_mask = INT_TXDW;
        (d, txp, rxp)
    }

    /// A driver in CSB mode publishing every `burst` frames, as bring-up
    /// leaves it; the test plays the device's side of the block.
    fn csb_driver(burst: u32) -> (Driver, *mut TxDesc, *mut RxDesc) {
        let (mut d, txp, rxp) = driver(TxMode::Csb);
        d.burst = burst;
        d.map_csb();
        // The device's half after the CSBAL write: its TX worker sleeps.
        d.csb.store(field::HOST_NEED_TXKICK, 1);
        d.use_csb().unwrap();
        assert_eq!(
            reg(&d, CSBAL) as u64 | (reg(&d, CSBAH) as u64) << 32,
            d.csb.addr()
        );
        assert_eq!(d.csb.load(field::GUEST_CSB_ON), 1);
        assert_eq!(d.csb.load(field::GUEST_RDT), 63);
        assert_eq!(d.csb.load(field::GUEST_TXKICK_AT), u32::MAX);
        (d, txp, rxp)
    }

    fn set_reg(d: &Driver, offset: u32, value: u32) {
        d.nic.regs.write(offset, value);
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

    #[test]
    fn csb_publishes_per_burst_and_kicks_only_when_asked() {
        let (mut d, desc, _) = csb_driver(4);
        // The worker sleeps (host_need_txkick = 1): the first publication
        // stores guest_tdt and kicks with a TDT write.
        set_reg(&d, TDT, 0xFFFF);
        for _ in 0..3 {
            d.queue_frame(60);
        }
        assert_eq!(d.csb.load(field::GUEST_TDT), 0, "below the burst: not yet");
        d.queue_frame(60);
        assert_eq!(d.csb.load(field::GUEST_TDT), 4);
        assert_eq!(reg(&d, TDT), 4, "kicked");
        // The worker polls now: publications are stores only.
        d.csb.store(field::HOST_NEED_TXKICK, 0);
        set_reg(&d, TDT, 0xFFFF);
        for _ in 0..6 {
            d.queue_frame(60);
        }
        assert_eq!(d.csb.load(field::GUEST_TDT), 8);
        d.flush_tx();
        assert_eq!(d.csb.load(field::GUEST_TDT), 10);
        d.flush_tx(); // nothing new: no publication
        assert_eq!(
            reg(&d, TDT),
            0xFFFF,
            "no register write while the worker polls"
        );
        // Completions are reclaimed by DD as usual.
        for i in 0..10 {
            // SAFETY: inside the leaked ring.
            unsafe { (*desc.add(i)).status |= TXD_STAT_DD };
        }
        assert_eq!(d.service_tx(), 10);
        assert_eq!(d.tx.in_flight(), 0);
    }

    #[test]
    fn csb_tx_sleep_sets_the_flag_and_rechecks() {
        let (mut d, desc, _) = csb_driver(1);
        d.csb.store(field::HOST_NEED_TXKICK, 0);
        d.queue_frame(60);
        d.queue_frame(60);
        // Nothing completed: the driver may sleep, with the flag set.
        assert!(d.prepare_tx_sleep());
        assert_eq!(d.csb.load(field::GUEST_NEED_TXKICK), 1);
        // The interrupt it asked for clears the flag and reclaims.
        // SAFETY: inside the leaked ring.
        unsafe { (*desc).status |= TXD_STAT_DD };
        d.on_interrupt(INT_TXDW);
        assert_eq!(d.csb.load(field::GUEST_NEED_TXKICK), 0);
        assert_eq!(d.tx.in_flight(), 1);
        // A completion that lands before the re-check: no sleep, flag clear.
        // SAFETY: inside the leaked ring.
        unsafe { (*desc.add(1)).status |= TXD_STAT_DD };
        assert!(!d.prepare_tx_sleep());
        assert_eq!(d.csb.load(field::GUEST_NEED_TXKICK), 0);
        d.end_tx_sleep();
        assert_eq!(d.tx.in_flight(), 0);
    }

    #[test]
    fn csb_rx_goes_by_host_rdh_and_returns_buffers_through_guest_rdt() {
        let (mut d, _, desc) = csb_driver(1);
        let fill = |from: usize, to: usize| {
            for i in from..to {
                // SAFETY: inside the leaked ring; the "device" fills it.
                unsafe {
                    (*desc.add(i % 64)).length = 60;
                    (*desc.add(i % 64)).status = RXD_STAT_DD | RXD_STAT_EOP;
                }
            }
        };
        // Filled but host_rdh not yet published: not visible.
        fill(0, 10);
        assert!(d.rx.poll().is_none());
        d.csb.store(field::HOST_RDH, 10);
        set_reg(&d, RDT, 0xFFFF);
        let mut got = 0;
        while d.rx.poll().is_some() {
            d.rx_consumed();
            got += 1;
        }
        assert_eq!(got, 10);
        // A host_rdh outside the ring is ignored.
        fill(10, 20);
        d.csb.store(field::HOST_RDH, 64);
        assert!(d.rx.poll().is_none());
        d.csb.store(field::HOST_RDH, 20);
        while d.rx.poll().is_some() {
            d.rx_consumed();
        }
        // Idle: buffers go back (store only: the device has buffers), the
        // flag is set and nothing is waiting, so the caller may sleep.
        assert!(!d.prepare_rx_sleep());
        assert_eq!(d.csb.load(field::GUEST_RDT), 19);
        assert_eq!(d.csb.load(field::GUEST_NEED_RXKICK), 1);
        assert_eq!(reg(&d, RDT), 0xFFFF, "no kick wanted, none written");
        // A frame that arrived before the re-check: the flag is cleared.
        d.end_rx_sleep();
        fill(20, 21);
        d.csb.store(field::HOST_RDH, 21);
        assert!(d.prepare_rx_sleep());
        assert_eq!(d.csb.load(field::GUEST_NEED_RXKICK), 0);
        // The device waits for buffers: the next return kicks through RDT.
        d.rx.poll().unwrap();
        d.rx_consumed();
        d.csb.store(field::HOST_NEED_RXKICK, 1);
        d.rx_return_all();
        assert_eq!(d.csb.load(field::GUEST_RDT), 20);
        assert_eq!(reg(&d, RDT), 20);
    }

    #[test]
    fn csb_wraps_around_the_ring() {
        let (mut d, desc, rxd) = csb_driver(16);
        d.csb.store(field::HOST_NEED_TXKICK, 0);
        let mut rx_head = 0u32;
        for _round in 0..10 {
            for _ in 0..40 {
                d.queue_frame(60);
            }
            d.flush_tx();
            let tail = d.csb.load(field::GUEST_TDT) as usize;
            for i in 0..64 {
                if (i + 64 - tail) % 64 >= 24 {
                    // SAFETY: inside the leaked ring.
                    unsafe { (*desc.add(i)).status |= TXD_STAT_DD };
                }
            }
            d.service_tx();
            assert_eq!(d.tx.in_flight(), 0);
            for _ in 0..40 {
                let i = rx_head as usize;
                // SAFETY: inside the leaked ring.
                unsafe { (*rxd.add(i)).status = RXD_STAT_DD | RXD_STAT_EOP };
                rx_head = (rx_head + 1) % 64;
            }
            d.csb.store(field::HOST_RDH, rx_head);
            let mut n = 0;
            while d.rx.poll().is_some() {
                d.rx_consumed();
                n += 1;
            }
            assert_eq!(n, 40);
        }
        assert_eq!(d.csb.load(field::GUEST_TDT), 400 % 64);
    }

    #[test]
    fn csb_not_taken_is_a_setup_error() {
        let (mut d, _, _) = driver(TxMode::Csb);
        assert_eq!(d.enable_csb(), Err(NicError::CsbNotTaken(d.csb.addr())));
        assert!(!d.csb_on());
        assert_eq!(d.csb.load(field::GUEST_CSB_ON), 0);
    }
}
