//! The workloads and what they share: device bring-up, waiting for frames,
//! progress lines and the result line.

mod chaos;
pub mod conform;
mod ping;
mod pong;
mod rx;
mod tx;

use crate::apic;
use crate::args::{Config, Mac, TxMode, Workload};
use crate::boot_info::StartInfo;
use crate::counters::{Snapshot, COUNTERS};
use crate::driver::{Driver, Setup};
use crate::e1000::csb::Csb;
use crate::e1000::desc::DMA;
use crate::e1000::nic::{Moderation, Nic, STOCK_MODERATION};
use crate::e1000::regs::{Regs, INT_RX};
use crate::e1000::rx::RxRing;
use crate::e1000::tx::TxRing;
use crate::irq::{self, with_driver};
use crate::json::JsonObject;
use crate::pci::{self, E1000Function};
use crate::serial::Serial;
use crate::tsc::{self, Deadline};
use crate::{println, EXIT_SETUP};
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use e1000_spec::regs::icr::{LSC as INT_LSC, TXDW as INT_TXDW};

/// Upper bound of any run whose `duration=` is not given.
pub const DEFAULT_MAX_MS: u64 = 300_000;
/// A receiving workload stops after this much silence once traffic began.
pub const IDLE_STOP_MS: u64 = 2_000;
/// How long a waiting loop polls the RX ring before it enables the RX
/// interrupt and idles (each sleep/wake-up costs several exits).
pub const SPIN_US: u64 = 200;
/// The same in CSB mode, where polling costs no exits at all but a spinning
/// vCPU keeps a host core from the device's net worker and the switch:
/// measured on this 2-core machine, VM-to-VM ping p50 was ~650 us without
/// a spin, ~880 us with 50 us, ~1.1 ms with 200 us and ~4 ms with 2 ms,
/// while a ping answered by the VMM itself needs the spin (1.3 us with
/// 50 us against ~300 us without). 50 us is the compromise.
pub const CSB_RX_SPIN_US: u64 = 50;
/// How long a CSB-mode RX wait polls the ring (no exits) when the switch
/// walks the rings (host_offloaded): frames arrive without any VMM thread,
/// so the spin catches a reply that comes within it without an interrupt
/// (each costs an injection and the handler's exits). The longest spin: it
/// adapts ([`OFFLOADED_RX_SPIN_US`]).
pub const CSB_OFFLOADED_RX_SPIN_US: u64 = 200;
/// The shortest offloaded RX spin: enough for a peer that answers at once
/// (a polling pktgen: ~5 us) to be caught, so the spin grows back.
pub const OFFLOADED_RX_SPIN_MIN_US: u64 = 10;
/// The current offloaded RX spin, set after each wait by
/// `adapt_offloaded_spin`. On two cores, three spinners (two vCPUs and the
/// switch's thread) starve each other: a guest waiting for another VM that
/// answers slowly must stop spinning.
static OFFLOADED_RX_SPIN_US: AtomicU64 = AtomicU64::new(CSB_OFFLOADED_RX_SPIN_US);
/// CSB mode: after the native spin, how long a receiver with nothing to do
/// keeps asking the VMM to run the device's work (poll-port exits, each
/// one fills the RX ring from the switch port in the vCPU thread, no
/// interrupt) before it sets guest_need_rxkick and idles until an
/// interrupt (which costs about twice an exit here).
pub const CSB_POLL_US: u64 = 2000;
/// CSB mode: a sender waiting for TX completions that sees none for this
/// long makes a poll-port exit (the device's worker is asleep or has no
/// CPU: the vCPU thread drains the ring itself).
pub const CSB_TX_STALL_US: u64 = 20;
/// CSB mode: how long a sender whose TX ring is full polls for completions
/// (the device's worker is draining the ring meanwhile) before it asks for
/// a TX interrupt and idles.
pub const TX_SPIN_US: u64 = 500;
/// Moderation in CSB mode: the need-kick flags already limit interrupts to
/// the moments the driver sleeps, so ITR would only delay its wake-ups.
/// The TX and RX delay timers do not apply in CSB mode (CSB.md).
pub const CSB_MODERATION: Moderation = Moderation {
    itr: 0,
    ..STOCK_MODERATION
};
/// The IOAPIC pin used when the PCI interrupt line register is unusable.
pub const FALLBACK_IRQ_PIN: u8 = 11;

/// What every workload gets.
pub struct Env<'a> {
    /// The command line.
    pub config: &'a Config,
    /// The start info.
    pub info: &'a StartInfo,
    /// The device's PCI function.
    pub pci: E1000Function,
    /// Our MAC.
    pub mac: [u8; 6],
}

impl Env<'_> {
    /// The overall deadline of the run.
    pub fn deadline(&self) -> Deadline {
        Deadline::after_ms(self.config.duration_ms.unwrap_or(DEFAULT_MAX_MS))
    }
}

/// Prints a setup error (human line and result line).
pub fn report_setup_error(workload: &str, message: fmt::Arguments) {
    println!("guest: setup error: {message}");
    let mut serial = Serial;
    let mut o = JsonObject::begin(&mut serial);
    o.str("result", workload).display("error", message);
    o.end();
    println!();
}

fn setup_for(config: &Config) -> Setup {
    let csb = config.txmode == TxMode::Csb;
    let combine = if config.txmode == TxMode::Combine {
        INT_TXDW
    } else {
        0
    };
    let irq_mask = match config.workload {
        // The stock driver reclaims in the TX interrupt; combining needs it.
        Workload::Tx => INT_TXDW,
        // With the CSB the device interrupts only while a need-kick flag is
        // set, so the causes can stay enabled. LSC (rare) tells the traffic
        // workloads that the link went down (the switch daemon went away)
        // or came back.
        Workload::Rx | Workload::Ping | Workload::Pong if csb => INT_TXDW | INT_RX | INT_LSC,
        Workload::Rx | Workload::Ping | Workload::Pong => combine | INT_LSC,
        Workload::Chaos => INT_TXDW | INT_RX | INT_LSC,
        // Brings nothing up (see `conform::run`).
        Workload::Conform => 0,
    };
    Setup {
        txmode: config.txmode,
        burst: config.burst as u32,
        rx_enable: config.workload != Workload::Tx,
        irq_mask,
        moderation: if csb {
            CSB_MODERATION
        } else {
            STOCK_MODERATION
        },
    }
}

/// Brings the device up and runs the configured workload; returns the exit
/// code.
pub fn run(config: &Config, info: &StartInfo) -> u8 {
    let name = config.workload.name();
    match config.tsc_khz {
        Some(khz) => tsc::set_khz(khz),
        None => match tsc::calibrate_with_pit() {
            Some(khz) => {
                println!("guest: no tsc_khz=, measured {khz} kHz against the PIT");
                tsc::set_khz(khz);
            }
            None => println!("guest: no tsc_khz= and no PIT: assuming 1 GHz"),
        },
    }
    let pci = match pci::enable_e1000() {
        Ok(pci) => pci,
        Err(err) => {
            report_setup_error(name, format_args!("e1000: {err:?}"));
            return EXIT_SETUP;
        }
    };
    if config.txmode == TxMode::Csb && !pci.has_csb() {
        report_setup_error(
            name,
            format_args!(
                "txmode=csb needs the e1000 CSB extension (PCI subsystem id {:#06x}); this device has subsystem id {:#06x}",
                e1000_spec::csb::SUBSYSTEM_ID,
                pci.subsystem_device
            ),
        );
        return EXIT_SETUP;
    }
    let pins = apic::ioapic_pins();
    let pin = if pci.irq_line != 0 && (pci.irq_line as u32) < pins {
        pci.irq_line
    } else {
        println!(
            "guest: interrupt line {} unusable ({} IOAPIC pins), using {}",
            pci.irq_line, pins, FALLBACK_IRQ_PIN
        );
        FALLBACK_IRQ_PIN
    };
    if config.workload == Workload::Conform {
        // SAFETY: BAR0 as assigned and enabled by `enable_e1000`, inside
        // the identity-mapped MMIO window.
        let regs = unsafe { Regs::new(pci.bar0 as usize) };
        return conform::run(config, &pci, regs, pin);
    }
    let Some(dma) = DMA.take() else {
        report_setup_error(name, format_args!("DMA memory already taken"));
        return EXIT_SETUP;
    };
    let tx = TxRing::new(&mut dma.tx_desc, &mut dma.tx_buf);
    let rx = RxRing::new(&mut dma.rx_desc, &mut dma.rx_buf);
    let csb = Csb::new(&dma.csb);
    // SAFETY: BAR0 as assigned and enabled by `enable_e1000`, inside the
    // identity-mapped MMIO window.
    let regs = unsafe { Regs::new(pci.bar0 as usize) };
    let mut driver = Driver::new(Nic::new(regs), tx, rx, csb);
    let up = match driver.start(setup_for(config)) {
        Ok(up) => up,
        Err(err) => {
            report_setup_error(name, format_args!("e1000 bring-up: {err:?}"));
            return EXIT_SETUP;
        }
    };
    irq::install(driver);
    apic::ioapic_route_edge(pin, irq::VECTOR_NIC, apic::id());
    println!(
        "guest: e1000 at 00:{:02x}.{} bar0 {:#x}{} io {:#x} irq line {} pin {} subsystem {:#06x} mac {} link {}",
        pci.function.device,
        pci.function.function,
        pci.bar0,
        if pci.bar0_assigned_by_guest { " (assigned)" } else { "" },
        pci.io_base.unwrap_or(0),
        pin,
        pci.irq_pin,
        pci.subsystem_device,
        Mac(up.mac),
        if up.link_up { "up" } else { "DOWN" },
    );
    if config.txmode == TxMode::Csb {
        println!(
            "guest: csb at {:#x}, {} frames per publication at most",
            csb.addr(),
            config.burst
        );
    }
    println!(
        "guest: {} txmode={} size={} tsc {} kHz",
        name,
        config.txmode.name(),
        config.size,
        tsc::khz()
    );
    let env = Env {
        config,
        info,
        pci,
        mac: up.mac,
    };
    match config.workload {
        Workload::Tx => tx::run(&env),
        Workload::Rx => rx::run(&env),
        Workload::Ping => ping::run(&env),
        Workload::Pong => pong::run(&env),
        Workload::Chaos => chaos::run(&env),
        Workload::Conform => unreachable!("run above"),
    }
}

/// How long an RX wait idles at most before it looks again, now: starts at
/// [`irq::IDLE_BACKSTOP_US`], doubles after every such period that brought
/// no frame, up to [`irq::IDLE_MAX_MS`], and starts again at a frame. So while
/// traffic flows a receiver looks at its ring at least every 10 ms, as it
/// did with the periodic tick (a backstop against an RX interrupt that
/// comes late: a VMM that delivered edges through an irqfd was seen to
/// have them injected up to 700 ms late on a nested host, and a receiver
/// relying on them alone lost frames), and an idle one wakes about once a
/// second.
static RX_BACKSTOP_US: AtomicU64 = AtomicU64::new(irq::IDLE_BACKSTOP_US);

/// Waits until a frame is in the RX ring (true) or `deadline` passes
/// (false): polls for [`SPIN_US`] ([`CSB_RX_SPIN_US`] with the CSB); with
/// the CSB then returns its buffers and asks the VMM to run the device's
/// work (poll-port exits, [`irq::poll_exit`]) for up to [`CSB_POLL_US`];
/// then asks for the RX interrupt and idles until it comes, or until
/// `deadline` or the combine-mode TX watchdog is due (no periodic tick:
/// an idle receiver wakes only for those and [`RX_BACKSTOP_US`], see
/// `wake_timer`).
pub fn wait_for_rx(deadline: Deadline) -> bool {
    let start = tsc::now();
    let got = wait_for_rx_frame(deadline);
    if got {
        RX_BACKSTOP_US.store(irq::IDLE_BACKSTOP_US, Relaxed);
        if with_driver(|d| d.csb_on() && d.csb.host_offloaded()) {
            adapt_offloaded_spin(tsc::ticks_to_ns(tsc::now().saturating_sub(start)) / 1000);
        }
    }
    got
}

/// Sets the next offloaded RX spin from how long this wait took: twice
/// that when it was short (a quick peer: the next reply is caught
/// spinning), half the current spin when it was longer than the longest
/// spin (another VM that sleeps, a slow peer: a vCPU that spins would take
/// a core the others need).
fn adapt_offloaded_spin(waited_us: u64) {
    let next = if waited_us <= CSB_OFFLOADED_RX_SPIN_US {
        (waited_us * 2).clamp(OFFLOADED_RX_SPIN_MIN_US, CSB_OFFLOADED_RX_SPIN_US)
    } else {
        (OFFLOADED_RX_SPIN_US.load(Relaxed) / 2).max(OFFLOADED_RX_SPIN_MIN_US)
    };
    OFFLOADED_RX_SPIN_US.store(next, Relaxed);
}

fn wait_for_rx_frame(deadline: Deadline) -> bool {
    // With the CSB, spinning only helps while the device's net worker
    // polls (host_need_txkick clear): it may fill the ring meanwhile. While
    // it sleeps, the cheapest way to get frames is this vCPU's own
    // poll-port exit: go there at once instead of burning the spin. With
    // the data path offloaded the switch fills the ring as frames come:
    // spin first (adaptively, see OFFLOADED_RX_SPIN_US).
    let (csb, worker_polls, offloaded) = with_driver(|d| {
        let csb = d.csb_on();
        (
            csb,
            csb && !d.csb.host_needs_txkick(),
            csb && d.csb.host_offloaded(),
        )
    });
    let spin_us = match (csb, worker_polls, offloaded) {
        (false, _, _) => SPIN_US,
        (true, _, true) => OFFLOADED_RX_SPIN_US.load(Relaxed),
        (true, true, false) => CSB_RX_SPIN_US,
        (true, false, false) => 0,
    };
    if offloaded {
        // The switch can fill only the buffers it has.
        with_driver(|d| d.rx_return_all());
    }
    let spin_end = Deadline::after_ticks(tsc::us_to_ticks(spin_us));
    loop {
        if with_driver(|d| d.rx.poll().is_some()) {
            return true;
        }
        if deadline.passed() {
            return false;
        }
        if spin_end.passed() {
            break;
        }
        core::hint::spin_loop();
    }

    if csb {
        // Offloaded too: the VMM has nothing to move then, but the exit
        // lets the host run the switch's thread or the other VM on this CPU
        // (the VMM yields), which a spinning vCPU would starve.
        with_driver(|d| d.rx_return_all());
        let poll_end = Deadline::after_ticks(tsc::us_to_ticks(CSB_POLL_US));
        loop {
            irq::poll_exit();
            if with_driver(|d| {
                d.service_tx();
                d.rx.poll().is_some()
            }) {
                return true;
            }
            if deadline.passed() {
                return false;
            }
            if poll_end.passed() {
                break;
            }
        }
    }
    loop {
        let token = irq::idle_token();
        let (ready, watchdog) = with_driver(|d| {
            d.service_tx();
            (d.prepare_rx_sleep(), d.tx_watchdog_due())
        });
        if ready {
            return true;
        }
        if deadline.passed() {
            with_driver(|d| d.end_rx_sleep());
            return false;
        }
        let backstop_us = RX_BACKSTOP_US.load(Relaxed);
        let period = tsc::us_to_ticks(backstop_us);
        let start = tsc::now();
        let wake = deadline
            .tsc()
            .min(watchdog.unwrap_or(u64::MAX))
            .min(start.saturating_add(period));
        irq::idle_until(token, wake);
        if tsc::now() - start >= period / 2 {
            // (About) a whole backstop period without a frame: an idle also
            // ends early at any interrupt or our VMM's halt polling, and the
            // timer may fire a little before the TSC gets there.
            RX_BACKSTOP_US.store((backstop_us * 2).min(irq::IDLE_MAX_MS * 1000), Relaxed);
        }
        with_driver(|d| d.end_rx_sleep());
    }
}

/// Waits for TX descriptors to complete (the ring is full, or the caller
/// drains it); `token` from [`irq::idle_token`] taken before the caller
/// last looked. Without the CSB: idles until an interrupt (the TX
/// interrupt is enabled for the run). With it: polls (no exits) until
/// `want_free` descriptors are free (at most all of them: `u32::MAX`
/// waits for the ring to drain); when no completion came for
/// [`CSB_TX_STALL_US`] it asks the VMM to run the device's work (a
/// poll-port exit), and after [`TX_SPIN_US`] without any completion it
/// sets guest_need_txkick, re-checks and idles until the TX interrupt it
/// asked for.
pub fn wait_for_tx(token: u32, want_free: u32) {
    if with_driver(|d| d.csb_on()) {
        let after = |us| Deadline::after_ticks(tsc::us_to_ticks(us));
        let mut spin_end = after(TX_SPIN_US);
        let mut stall_end = after(CSB_TX_STALL_US);
        loop {
            let (done, free, all) = with_driver(|d| (d.service_tx(), d.tx.free(), d.tx.size() - 1));
            if free >= want_free.min(all) {
                return;
            }
            if done > 0 {
                spin_end = after(TX_SPIN_US);
                stall_end = after(CSB_TX_STALL_US);
            } else if spin_end.passed() {
                break;
            } else if stall_end.passed() {
                irq::poll_exit();
                stall_end = after(CSB_TX_STALL_US);
            }
            core::hint::spin_loop();
        }
    }
    if with_driver(|d| d.prepare_tx_sleep()) {
        irq::idle(token);
    }
    with_driver(|d| d.end_tx_sleep());
}

/// How close to its target [`wait_until`] stops idling and busy-waits (a
/// timer wake-up can come late by an exit or two).
pub const WAIT_SPIN_MS: u64 = 10;

/// Busy-waits (no exits) until the TSC reaches `tsc`; idles until
/// [`WAIT_SPIN_MS`] before it if that is further away.
pub fn wait_until(tsc_value: u64) {
    loop {
        let now = tsc::now();
        if now >= tsc_value {
            return;
        }
        let spin_from = tsc_value - tsc::ms_to_ticks(WAIT_SPIN_MS).min(tsc_value);
        if now < spin_from {
            irq::idle_until(irq::idle_token(), spin_from);
        } else {
            core::hint::spin_loop();
        }
    }
}

/// Once-a-second progress lines (none with `quiet`).
pub struct Progress {
    quiet: bool,
    label: &'static str,
    start: u64,
    next: u64,
    last_frames: u64,
    last_tsc: u64,
}

impl Progress {
    /// Starts the clock now.
    pub fn new(label: &'static str, quiet: bool) -> Progress {
        let now = tsc::now();
        Progress {
            quiet,
            label,
            start: now,
            next: now + tsc::ms_to_ticks(1000),
            last_frames: 0,
            last_tsc: now,
        }
    }

    /// Prints a line if a second has passed since the last one.
    #[inline]
    pub fn tick(&mut self, frames: u64) {
        if self.quiet {
            return;
        }
        let now = tsc::now();
        if now < self.next {
            return;
        }
        let interval = tsc::ticks_to_secs(now - self.last_tsc);
        let pps = (frames - self.last_frames) as f64 / interval;
        println!(
            "{}: {:.1} s {} frames {:.0} pps",
            self.label,
            tsc::ticks_to_secs(now - self.start),
            frames,
            pps
        );
        self.last_frames = frames;
        self.last_tsc = now;
        self.next = now + tsc::ms_to_ticks(1000);
    }
}

/// Prints the result line: `result`, the workload's own fields (`fill`),
/// then the driver counters of the run (since `baseline`).
pub fn print_result(
    env: &Env,
    baseline: &Snapshot,
    fill: impl FnOnce(&mut JsonObject<'_, Serial>),
) {
    let c = COUNTERS.snapshot().since(baseline);
    let mut serial = Serial;
    let mut o = JsonObject::begin(&mut serial);
    o.str("result", env.config.workload.name());
    fill(&mut o);
    o.str("txmode", env.config.txmode.name())
        .display("mac", Mac(env.mac))
        .u64("tsc_khz", tsc::khz())
        .u64("irqs", c.irqs)
        .u64("tdt_writes", c.tdt_writes)
        .u64("rdt_writes", c.rdt_writes)
        .u64("icr_reads", c.icr_reads)
        .u64("ims_writes", c.ims_writes)
        .u64("imc_writes", c.imc_writes)
        .u64("eoi_writes", c.eoi_writes)
        .u64("mmio_reads", c.mmio_reads)
        .u64("mmio_writes", c.mmio_writes)
        .u64("pio", c.pio)
        .u64("idle", c.idle_exits)
        .u64("poll_exits", c.poll_exits)
        .u64("timer_irqs", c.timer_irqs)
        .u64("irqs_deferred", c.irqs_deferred)
        .u64("irqs_nested", c.irqs_nested)
        .u64("tdt_deferred", c.tdt_deferred)
        .u64("tx_watchdog", c.tx_watchdog)
        .u64("tx_publications", c.tx_publications)
        .f64(
            "frames_per_publication",
            ratio(c.tx_published, c.tx_publications),
            2,
        )
        .f64(
            "frames_per_tdt_write",
            ratio(c.tx_published, c.tdt_writes),
            2,
        )
        .u64("csb_tx_kicks", c.csb_tx_kicks)
        .u64("csb_rx_kicks", c.csb_rx_kicks)
        .u64("csb_rx_publications", c.csb_rx_publications)
        .u64("csb_tx_sleeps", c.csb_tx_sleeps)
        .u64("csb_rx_sleeps", c.csb_rx_sleeps)
        .u64("csb_sleeps_avoided", c.csb_sleeps_avoided)
        .u64("csb_bad_host_index", c.csb_bad_host_index);
    let causes = with_driver(|d| d.causes);
    o.object("irq_causes", |o| {
        o.u64("tx", causes.tx)
            .u64("rx", causes.rx)
            .u64("rx_overruns", causes.rx_overruns)
            .u64("link", causes.link_changes)
            .u64("link_down", causes.link_downs)
            .u64("link_up", causes.link_ups)
            .u64("other", causes.other);
    });
    o.end();
    println!();
}

/// `part / whole`, 0 when `whole` is 0.
fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Frames per second over `ticks` (0 if too short to tell).
pub fn rate(frames: u64, ticks: u64) -> f64 {
    if ticks == 0 || frames == 0 {
        0.0
    } else {
        frames as f64 / tsc::ticks_to_secs(ticks)
    }
}
