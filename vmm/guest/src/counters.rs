//! Driver counters: every register access, interrupt and exit-causing event,
//! so that a run can be explained in exits per frame.

use core::sync::atomic::{AtomicU64, Ordering};

/// One event counter, safe to bump from the main loop and from (nested)
/// interrupt handlers alike.
pub struct Counter(AtomicU64);

impl Counter {
    /// A zero counter.
    pub const fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Default for Counter {
    fn default() -> Self {
        Counter::new()
    }
}

/// All driver counters (one global instance, [`COUNTERS`]).
pub struct Counters {
    /// MMIO reads of e1000 registers.
    pub mmio_reads: Counter,
    /// MMIO writes of e1000 registers.
    pub mmio_writes: Counter,
    /// Port I/O instructions (serial, PCI configuration, exit/idle ports).
    pub pio: Counter,
    /// e1000 interrupts taken.
    pub irqs: Counter,
    /// LAPIC timer ticks taken (the idle backstop).
    pub timer_irqs: Counter,
    /// Spurious or unexpected vectors.
    pub other_irqs: Counter,
    /// Interrupts that found the driver busy and were deferred to its owner.
    pub irqs_deferred: Counter,
    /// Reads of ICR.
    pub icr_reads: Counter,
    /// Writes of TDT.
    pub tdt_writes: Counter,
    /// Writes of RDT.
    pub rdt_writes: Counter,
    /// Writes of IMS (interrupts enabled).
    pub ims_writes: Counter,
    /// Writes of IMC (interrupts masked).
    pub imc_writes: Counter,
    /// Writes of the LAPIC EOI register.
    pub eoi_writes: Counter,
    /// Writes of the idle port.
    pub idle_exits: Counter,
    /// Frames queued without a TDT write because a TX interrupt was pending
    /// (send combining).
    pub tdt_deferred: Counter,
    /// TDT writes forced because an expected TX interrupt did not come.
    pub tx_watchdog: Counter,
}

impl Counters {
    const fn new() -> Counters {
        Counters {
            mmio_reads: Counter::new(),
            mmio_writes: Counter::new(),
            pio: Counter::new(),
            irqs: Counter::new(),
            timer_irqs: Counter::new(),
            other_irqs: Counter::new(),
            irqs_deferred: Counter::new(),
            icr_reads: Counter::new(),
            tdt_writes: Counter::new(),
            rdt_writes: Counter::new(),
            ims_writes: Counter::new(),
            imc_writes: Counter::new(),
            eoi_writes: Counter::new(),
            idle_exits: Counter::new(),
            tdt_deferred: Counter::new(),
            tx_watchdog: Counter::new(),
        }
    }

    /// The counters' values now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            mmio_reads: self.mmio_reads.get(),
            mmio_writes: self.mmio_writes.get(),
            pio: self.pio.get(),
            irqs: self.irqs.get(),
            timer_irqs: self.timer_irqs.get(),
            other_irqs: self.other_irqs.get(),
            irqs_deferred: self.irqs_deferred.get(),
            icr_reads: self.icr_reads.get(),
            tdt_writes: self.tdt_writes.get(),
            rdt_writes: self.rdt_writes.get(),
            ims_writes: self.ims_writes.get(),
            imc_writes: self.imc_writes.get(),
            eoi_writes: self.eoi_writes.get(),
            idle_exits: self.idle_exits.get(),
            tdt_deferred: self.tdt_deferred.get(),
            tx_watchdog: self.tx_watchdog.get(),
        }
    }
}

/// The global driver counters.
pub static COUNTERS: Counters = Counters::new();

/// A copy of the counters at one moment; subtract two to get a run's share.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// See [`Counters::mmio_reads`].
    pub mmio_reads: u64,
    /// See [`Counters::mmio_writes`].
    pub mmio_writes: u64,
    /// See [`Counters::pio`].
    pub pio: u64,
    /// See [`Counters::irqs`].
    pub irqs: u64,
    /// See [`Counters::timer_irqs`].
    pub timer_irqs: u64,
    /// See [`Counters::other_irqs`].
    pub other_irqs: u64,
    /// See [`Counters::irqs_deferred`].
    pub irqs_deferred: u64,
    /// See [`Counters::icr_reads`].
    pub icr_reads: u64,
    /// See [`Counters::tdt_writes`].
    pub tdt_writes: u64,
    /// See [`Counters::rdt_writes`].
    pub rdt_writes: u64,
    /// See [`Counters::ims_writes`].
    pub ims_writes: u64,
    /// See [`Counters::imc_writes`].
    pub imc_writes: u64,
    /// See [`Counters::eoi_writes`].
    pub eoi_writes: u64,
    /// See [`Counters::idle_exits`].
    pub idle_exits: u64,
    /// See [`Counters::tdt_deferred`].
    pub tdt_deferred: u64,
    /// See [`Counters::tx_watchdog`].
    pub tx_watchdog: u64,
}

impl Snapshot {
    /// The events between `earlier` and `self`.
    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        Snapshot {
            mmio_reads: self.mmio_reads - earlier.mmio_reads,
            mmio_writes: self.mmio_writes - earlier.mmio_writes,
            pio: self.pio - earlier.pio,
            irqs: self.irqs - earlier.irqs,
            timer_irqs: self.timer_irqs - earlier.timer_irqs,
            other_irqs: self.other_irqs - earlier.other_irqs,
            irqs_deferred: self.irqs_deferred - earlier.irqs_deferred,
            icr_reads: self.icr_reads - earlier.icr_reads,
            tdt_writes: self.tdt_writes - earlier.tdt_writes,
            rdt_writes: self.rdt_writes - earlier.rdt_writes,
            ims_writes: self.ims_writes - earlier.ims_writes,
            imc_writes: self.imc_writes - earlier.imc_writes,
            eoi_writes: self.eoi_writes - earlier.eoi_writes,
            idle_exits: self.idle_exits - earlier.idle_exits,
            tdt_deferred: self.tdt_deferred - earlier.tdt_deferred,
            tx_watchdog: self.tx_watchdog - earlier.tx_watchdog,
        }
    }

    /// Register accesses and idle-port writes: the events that exit to the
    /// VMM (interrupt deliveries come on top).
    pub fn exits(&self) -> u64 {
        self.mmio_reads + self.mmio_writes + self.pio + self.eoi_writes
    }
}
