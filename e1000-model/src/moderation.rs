//! Interrupt moderation: the ITR throttle and the TIDV/TADV and RDTR/RADV
//! delay timers, driven by a clock passed in so that tests use a fake one.
//!
//! Semantics follow the 8254x manual (sections 3.2.7, 3.4 and 13.4.18):
//! - a TX descriptor written back with RS and IDE restarts the TIDV timer and
//!   starts (once) the TADV timer; either expiring sets ICR.TXDW. RS without
//!   IDE, or TIDV = 0, sets TXDW at once and stops both timers;
//! - a received frame restarts the RDTR timer and starts (once) the RADV
//!   timer; either expiring sets ICR.RXT0. RDTR = 0 means an immediate RXT0;
//! - ITR is a minimum interval between interrupt assertions: causes still set
//!   ICR at once, but the line goes up no sooner than ITR x 256 ns after the
//!   previous assertion. Causes that arrive meanwhile are coalesced.
//!
//! With moderation off (QEMU's `mitigation=off`) every cause is immediate and
//! the registers are only stored.

use std::time::Instant;

use e1000_spec::regs::moderation::{DELAY_UNIT_NS, INTERVAL_MASK, ITR_UNIT_NS};

/// Time source in nanoseconds.
pub trait Clock {
    /// Nanoseconds since an arbitrary, fixed origin; never decreases.
    fn now_ns(&self) -> u64;
}

/// The host's monotonic clock.
#[derive(Clone, Copy, Debug)]
pub struct MonotonicClock {
    origin: Instant,
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Clock for MonotonicClock {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// Moderation registers and timers.
#[derive(Clone, Debug, Default)]
pub struct Moderation {
    enabled: bool,
    itr: u32,
    tidv: u32,
    tadv: u32,
    rdtr: u32,
    radv: u32,
    tx_packet_deadline: Option<u64>,
    tx_absolute_deadline: Option<u64>,
    rx_packet_deadline: Option<u64>,
    rx_absolute_deadline: Option<u64>,
    last_assertion: Option<u64>,
}

fn after(now: u64, units: u32, unit_ns: u64) -> u64 {
    now.saturating_add(u64::from(units).saturating_mul(unit_ns))
}

fn earliest(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

impl Moderation {
    /// Moderation with all registers 0; `enabled` selects emulation of the
    /// timers (on) or immediate interrupts (off).
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            ..Self::default()
        }
    }

    /// Whether the timers are emulated.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Registers to 0 and timers stopped (device reset).
    pub fn reset(&mut self) {
        *self = Self::new(self.enabled);
    }

    /// ITR value.
    pub fn itr(&self) -> u32 {
        self.itr
    }
    /// TIDV value.
    pub fn tidv(&self) -> u32 {
        self.tidv
    }
    /// TADV value.
    pub fn tadv(&self) -> u32 {
        self.tadv
    }
    /// RDTR value (the FPD bit reads as 0).
    pub fn rdtr(&self) -> u32 {
        self.rdtr
    }
    /// RADV value.
    pub fn radv(&self) -> u32 {
        self.radv
    }
    /// Software writes ITR.
    pub fn set_itr(&mut self, value: u32) {
        self.itr = value & INTERVAL_MASK;
    }
    /// Software writes TIDV.
    pub fn set_tidv(&mut self, value: u32) {
        self.tidv = value & INTERVAL_MASK;
    }
    /// Software writes TADV.
    pub fn set_tadv(&mut self, value: u32) {
        self.tadv = value & INTERVAL_MASK;
    }
    /// Software writes RADV.
    pub fn set_radv(&mut self, value: u32) {
        self.radv = value & INTERVAL_MASK;
    }

    /// Software writes RDTR. With FPD set, running RX timers expire now: the
    /// return value tells whether RXT0 must be raised.
    pub fn set_rdtr(&mut self, value: u32) -> bool {
        self.rdtr = value & INTERVAL_MASK;
        if value & e1000_spec::regs::rdtr::FPD == 0 {
            return false;
        }
        let running = self.rx_packet_deadline.is_some() || self.rx_absolute_deadline.is_some();
        self.rx_packet_deadline = None;
        self.rx_absolute_deadline = None;
        running
    }

    /// A TX descriptor with RS was written back; `ide` is its IDE bit.
    /// Returns true when TXDW must be raised now.
    pub fn tx_reported(&mut self, ide: bool, now: u64) -> bool {
        if !self.enabled || !ide || self.tidv == 0 {
            self.tx_packet_deadline = None;
            self.tx_absolute_deadline = None;
            return true;
        }
        self.tx_packet_deadline = Some(after(now, self.tidv, DELAY_UNIT_NS));
        if self.tadv != 0 && self.tx_absolute_deadline.is_none() {
            self.tx_absolute_deadline = Some(after(now, self.tadv, DELAY_UNIT_NS));
        }
        false
    }

    /// A frame reached guest memory. Returns true when RXT0 must be raised now.
    pub fn rx_delivered(&mut self, now: u64) -> bool {
        if !self.enabled || self.rdtr == 0 {
            self.rx_packet_deadline = None;
            self.rx_absolute_deadline = None;
            return true;
        }
        self.rx_packet_deadline = Some(after(now, self.rdtr, DELAY_UNIT_NS));
        if self.radv != 0 && self.rx_absolute_deadline.is_none() {
            self.rx_absolute_deadline = Some(after(now, self.radv, DELAY_UNIT_NS));
        }
        false
    }

    /// Stops the timers whose deadline passed and returns the causes they set.
    pub fn expire(&mut self, now: u64) -> u32 {
        use e1000_spec::regs::icr;
        let mut causes = 0;
        let due = |deadline: Option<u64>| deadline.is_some_and(|d| d <= now);
        if due(self.tx_packet_deadline) || due(self.tx_absolute_deadline) {
            self.tx_packet_deadline = None;
            self.tx_absolute_deadline = None;
            causes |= icr::TXDW;
        }
        if due(self.rx_packet_deadline) || due(self.rx_absolute_deadline) {
            self.rx_packet_deadline = None;
            self.rx_absolute_deadline = None;
            causes |= icr::RXT0;
        }
        causes
    }

    /// The earliest time the interrupt line may be asserted again.
    pub fn assert_allowed_at(&self) -> u64 {
        match self.last_assertion {
            Some(last) if self.enabled && self.itr != 0 => after(last, self.itr, ITR_UNIT_NS),
            _ => 0,
        }
    }

    /// Records that the line was asserted at `now`.
    pub fn asserted(&mut self, now: u64) {
        self.last_assertion = Some(now);
    }

    /// The next time [`Moderation::expire`] or a held-back assertion needs the
    /// clock; `assertion_waiting` says whether an interrupt waits for ITR.
    pub fn next_deadline(&self, assertion_waiting: bool) -> Option<u64> {
        let timers = earliest(
            earliest(self.tx_packet_deadline, self.tx_absolute_deadline),
            earliest(self.rx_packet_deadline, self.rx_absolute_deadline),
        );
        let throttle = assertion_waiting.then(|| self.assert_allowed_at());
        earliest(timers, throttle)
    }
}
