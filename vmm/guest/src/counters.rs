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

/// Declares the counters once: [`Counters`] (live, atomic), [`Snapshot`]
/// (a copy) and the code that copies and subtracts them.
macro_rules! counters {
    ($($(#[doc = $doc:literal])* $name:ident,)*) => {
        /// All driver counters (one global instance, [`COUNTERS`]).
        pub struct Counters {
            $($(#[doc = $doc])* pub $name: Counter,)*
        }

        impl Counters {
            const fn new() -> Counters {
                Counters { $($name: Counter::new(),)* }
            }

            /// The counters' values now.
            pub fn snapshot(&self) -> Snapshot {
                Snapshot { $($name: self.$name.get(),)* }
            }
        }

        /// A copy of the counters at one moment; subtract two to get a
        /// run's share.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct Snapshot {
            $($(#[doc = $doc])* pub $name: u64,)*
        }

        impl Snapshot {
            /// The events between `earlier` and `self`.
            pub fn since(&self, earlier: &Snapshot) -> Snapshot {
                Snapshot { $($name: self.$name - earlier.$name,)* }
            }
        }
    };
}

counters! {
    /// MMIO reads of e1000 registers.
    mmio_reads,
    /// MMIO writes of e1000 registers.
    mmio_writes,
    /// Port I/O instructions (serial, PCI configuration, exit/idle ports).
    pio,
    /// e1000 interrupts taken.
    irqs,
    /// LAPIC timer ticks taken (the idle backstop).
    timer_irqs,
    /// Spurious or unexpected vectors.
    other_irqs,
    /// Interrupts that found the driver busy and were deferred to its owner.
    irqs_deferred,
    /// e1000 interrupts that arrived while one was being handled (only
    /// where the hypervisor EOIs at delivery) and left it to the outermost
    /// handler.
    irqs_nested,
    /// Reads of ICR.
    icr_reads,
    /// Writes of TDT (in CSB mode: the kicks).
    tdt_writes,
    /// Writes of RDT (in CSB mode: the kicks).
    rdt_writes,
    /// Writes of IMS (interrupts enabled).
    ims_writes,
    /// Writes of IMC (interrupts masked).
    imc_writes,
    /// Writes of the LAPIC EOI register.
    eoi_writes,
    /// Writes of the idle port.
    idle_exits,
    /// Writes of the poll port (CSB mode: the VMM runs the device's work in
    /// the vCPU thread and returns at once).
    poll_exits,
    /// Frames queued without a TDT write because a TX interrupt was pending
    /// (send combining).
    tdt_deferred,
    /// TDT writes forced because an expected TX interrupt did not come.
    tx_watchdog,
    /// Publications of the TX tail: TDT writes in plain and combine mode,
    /// guest_tdt stores in CSB mode.
    tx_publications,
    /// TX descriptors published (summed over the publications).
    tx_published,
    /// CSB mode: TDT writes made because host_need_txkick was set.
    csb_tx_kicks,
    /// CSB mode: guest_rdt stores (RX buffers returned).
    csb_rx_publications,
    /// CSB mode: RDT writes made because host_need_rxkick was set.
    csb_rx_kicks,
    /// CSB mode: idles with guest_need_txkick set (waiting for TX
    /// completions).
    csb_tx_sleeps,
    /// CSB mode: idles with guest_need_rxkick set (waiting for frames).
    csb_rx_sleeps,
    /// CSB mode: sleeps given up because the re-check after setting a
    /// need-kick flag found work.
    csb_sleeps_avoided,
    /// CSB mode: host_rdh values outside the ring, or pointing at a
    /// descriptor without DD (ignored).
    csb_bad_host_index,
}

/// The global driver counters.
pub static COUNTERS: Counters = Counters::new();

impl Snapshot {
    /// Register accesses and idle-port writes: the events that exit to the
    /// VMM (interrupt deliveries come on top).
    pub fn exits(&self) -> u64 {
        self.mmio_reads + self.mmio_writes + self.pio + self.eoi_writes
    }
}
