//! Interrupt causes (ICR, ICS, IMS, IMC), the interrupt level and its report
//! to the VMM through a [`Trigger`].

use super::moderation::Moderation;
use e1000_spec::regs::icr;

/// Receives the device's interrupt level (INTx); the VMM turns rising edges
/// into interrupts (a pulse of the GSI on hosts where level INTx is broken).
pub trait Trigger {
    /// The level changed to `asserted`.
    fn set_level(&self, asserted: bool);
}

/// Interrupt cause and mask registers, moderation, and the line state.
#[derive(Clone, Debug)]
pub struct Interrupts {
    icr: u32,
    ims: u32,
    asserted: bool,
    /// Moderation registers and timers.
    pub moderation: Moderation,
}

impl Interrupts {
    /// No causes, all masked, line low; `mitigation` enables moderation.
    pub fn new(mitigation: bool) -> Self {
        Self {
            icr: 0,
            ims: 0,
            asserted: false,
            moderation: Moderation::new(mitigation),
        }
    }

    /// Clears causes, mask and moderation (device reset). The line goes low
    /// at the next [`Interrupts::update`].
    pub fn reset(&mut self) {
        self.icr = 0;
        self.ims = 0;
        self.moderation.reset();
    }

    /// Sets cause bits in ICR.
    pub fn raise(&mut self, causes: u32) {
        self.icr |= causes & icr::VALID;
    }

    /// Software reads ICR: returns it and clears every bit.
    pub fn read_icr(&mut self) -> u32 {
        std::mem::take(&mut self.icr)
    }

    /// ICR without the clear-on-read side effect.
    pub fn peek_icr(&self) -> u32 {
        self.icr
    }

    /// Software writes ICR: writing 1s clears those bits.
    pub fn write_icr(&mut self, value: u32) {
        self.icr &= !value;
    }

    /// Software writes ICS: sets causes as if the events happened.
    pub fn write_ics(&mut self, value: u32) {
        self.raise(value);
    }

    /// IMS as software reads it.
    pub fn ims(&self) -> u32 {
        self.ims
    }

    /// Software writes IMS: enables the causes written as 1.
    pub fn write_ims(&mut self, value: u32) {
        self.ims |= value & icr::VALID;
    }

    /// Software writes IMC: disables the causes written as 1.
    pub fn write_imc(&mut self, value: u32) {
        self.ims &= !value;
    }

    /// Whether an enabled cause is pending.
    pub fn pending(&self) -> bool {
        self.icr & self.ims != 0
    }

    /// Whether the line is asserted.
    pub fn asserted(&self) -> bool {
        self.asserted
    }

    /// Recomputes the line at `now`: low without enabled causes; raised when
    /// an enabled cause is pending and ITR allows it. Returns the level.
    pub fn update(&mut self, now: u64) -> bool {
        if !self.pending() {
            self.asserted = false;
        } else if !self.asserted && now >= self.moderation.assert_allowed_at() {
            self.asserted = true;
            self.moderation.asserted(now);
        }
        self.asserted
    }

    /// When the VMM must call [`Interrupts::on_timer`] next.
    pub fn next_deadline(&self) -> Option<u64> {
        self.moderation
            .next_deadline(self.pending() && !self.asserted)
    }

    /// Fires the expired timers and recomputes the line. Returns the level.
    pub fn on_timer(&mut self, now: u64) -> bool {
        let causes = self.moderation.expire(now);
        self.raise(causes);
        self.update(now)
    }
}
