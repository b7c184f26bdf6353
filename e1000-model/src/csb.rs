//! The CSB paravirtual extension, the device's side: a Common Status Block,
//! one 4 KiB page of guest memory through which the guest driver and the
//! device exchange ring indices and "need kick" flags instead of registers
//! and interrupts (`docs/csb.md`; the layout, register offsets and ids are
//! [`e1000_spec::csb`]'s).
//!
//! Registers: CSBAL and CSBAH. The guest writes the high half first; the
//! CSBAL write (re)maps the block at the combined address, which must be
//! [`ALIGN`]-byte aligned with the whole page in guest RAM; address 0 turns
//! the extension off.
//!
//! Every field is a little-endian u32 accessed with one 32-bit load or store
//! ([`Dma::read_u32`]/[`Dma::write_u32`]). The guest-written half (first cache
//! line) is untrusted: indices are checked against the ring size (out of
//! range: counted once per distinct value and ignored, the last valid index
//! stays in use), flags are read as `!= 0`.

use e1000_spec::csb::{field, is_set, ALIGN, FLAG_CLEAR, FLAG_SET, NONE, SIZE};

use super::dma::Dma;
use super::stats::ErrorCounters;

/// Which guest producer index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestIndex {
    /// guest_tdt.
    Tx,
    /// guest_rdt.
    Rx,
}

impl GuestIndex {
    fn offset(self) -> usize {
        match self {
            GuestIndex::Tx => field::GUEST_TDT,
            GuestIndex::Rx => field::GUEST_RDT,
        }
    }
}

/// What a CSBAL write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CsbMapping {
    /// The block is mapped at this guest-physical address.
    Mapped(u64),
    /// Address 0: the extension is off.
    Off,
    /// The address is unaligned or the page is not in guest RAM: off.
    Invalid,
}

/// The CSB registers and the mapped block.
#[derive(Clone, Debug, Default)]
pub struct Csb {
    low: u32,
    high: u32,
    base: Option<u64>,
    /// guest_csb_on at the last look.
    guest_on: bool,
    /// guest_tdt and guest_rdt as last read, raw (to notice new values).
    seen: [u32; 2],
}

impl Csb {
    /// Registers 0, nothing mapped.
    pub fn new() -> Self {
        Self::default()
    }

    /// Back to the reset state: off, registers 0.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// CSBAL as written.
    pub fn low(&self) -> u32 {
        self.low
    }

    /// CSBAH as written.
    pub fn high(&self) -> u32 {
        self.high
    }

    /// Stores CSBAH (takes effect at the next CSBAL write).
    pub fn write_high(&mut self, value: u32) {
        self.high = value;
    }

    /// Stores CSBAL and (re)maps the block at CSBAH:CSBAL. An invalid address
    /// leaves the extension off.
    pub fn write_low(&mut self, value: u32, dma: &impl Dma) -> CsbMapping {
        self.low = value;
        let address = (u64::from(self.high) << 32) | u64::from(value);
        self.base = None;
        if address == 0 {
            return CsbMapping::Off;
        }
        if !address.is_multiple_of(ALIGN as u64) || !dma.contains(address, SIZE as u64) {
            return CsbMapping::Invalid;
        }
        self.base = Some(address);
        CsbMapping::Mapped(address)
    }

    /// The guest-physical address of the mapped block.
    pub fn base(&self) -> Option<u64> {
        self.base
    }

    /// Reads the field at `offset`; `None` when unmapped or unreadable.
    pub fn load(&self, dma: &impl Dma, offset: usize) -> Option<u32> {
        let base = self.base?;
        dma.read_u32(base + offset as u64).ok()
    }

    /// Writes the field at `offset` (nothing when unmapped).
    pub fn store(&self, dma: &impl Dma, offset: usize, value: u32) {
        if let Some(base) = self.base {
            // The whole page was checked at mapping time: this cannot fail
            // unless guest RAM shrank, and then there is nothing to update.
            let _ = dma.write_u32(base + offset as u64, value);
        }
    }

    /// Sets or clears a host flag field.
    pub fn set_flag(&self, dma: &impl Dma, offset: usize, on: bool) {
        self.store(dma, offset, if on { FLAG_SET } else { FLAG_CLEAR });
    }

    /// Whether a guest flag field is set ([`is_set`]: any non-zero value).
    pub fn flag(&self, dma: &impl Dma, offset: usize) -> bool {
        self.load(dma, offset).is_some_and(is_set)
    }

    /// guest_csb_on as last read (false when unmapped); no memory access.
    pub fn guest_on_seen(&self) -> bool {
        self.base.is_some() && self.guest_on
    }

    /// Reads guest_csb_on; counts changes while mapped.
    pub fn guest_on(&mut self, dma: &impl Dma, errors: &mut ErrorCounters) -> bool {
        let on = self.flag(dma, field::GUEST_CSB_ON);
        if on != self.guest_on {
            errors.csb_guest_on_changes += 1;
            self.guest_on = on;
        }
        on
    }

    /// Reads a guest producer index and checks it against `ring_size`: the
    /// index if valid, `None` if unreadable or out of range (counted once per
    /// distinct bad value; a ring of size 0 is the ring's problem, not the
    /// index's, and is not counted).
    pub fn guest_index(
        &mut self,
        dma: &impl Dma,
        which: GuestIndex,
        ring_size: u32,
        errors: &mut ErrorCounters,
    ) -> Option<u32> {
        let raw = self.load(dma, which.offset())?;
        let seen = std::mem::replace(&mut self.seen[which as usize], raw);
        if raw < ring_size {
            return Some(raw);
        }
        if ring_size > 0 && raw != seen {
            errors.csb_index_invalid += 1;
        }
        None
    }

    /// Whether the guest wrote a new value to the index since it was last
    /// read with [`Csb::guest_index`].
    pub fn guest_index_changed(&self, dma: &impl Dma, which: GuestIndex) -> bool {
        self.load(dma, which.offset())
            .is_some_and(|raw| raw != self.seen[which as usize])
    }

    /// Remembers `tdt` and `rdt` as the guest indices last read (after the
    /// rings were walked elsewhere: an offloaded data path handing back).
    pub fn set_seen(&mut self, tdt: u32, rdt: u32) {
        self.seen = [tdt, rdt];
    }

    /// Maps the block at `address`, already validated by whoever handed it
    /// over, without touching the registers; `guest_on` as last seen.
    pub fn adopt(&mut self, address: u64, guest_on: bool) {
        self.low = address as u32;
        self.high = (address >> 32) as u32;
        self.base = Some(address);
        self.guest_on = guest_on;
    }

    /// Writes the host half after mapping (or when DMA becomes possible):
    /// the device's heads, its TX worker asleep (the first TDT write is a
    /// kick), no RX kick needed, unused fields cleared. Remembers the guest's
    /// current indices and csb_on as the starting point.
    pub fn init_host_half(&mut self, dma: &impl Dma, tdh: u32, rdh: u32, tdt: u32, rdt: u32) {
        self.store(dma, field::HOST_TDH, tdh);
        self.set_flag(dma, field::HOST_NEED_TXKICK, true);
        self.store(dma, field::HOST_TXCYCLES_LIM, 0);
        self.store(dma, field::HOST_TXCYCLES, 0);
        self.store(dma, field::HOST_RDH, rdh);
        self.set_flag(dma, field::HOST_NEED_RXKICK, false);
        self.store(dma, field::HOST_ISR, 0);
        self.store(dma, field::HOST_RXKICK_AT, NONE);
        self.set_flag(dma, field::HOST_OFFLOADED, false);
        self.seen = [tdt, rdt];
        self.guest_on = self.flag(dma, field::GUEST_CSB_ON);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dma::VecMemory;

    /// Where the tests map the block.
    const BASE: u64 = 0x2000;

    /// Guest address of a field of the block at [`BASE`].
    fn at(field: usize) -> u64 {
        BASE + field as u64
    }

    #[test]
    fn mapping_checks_alignment_and_bounds() {
        let mem = VecMemory::new(64 * 1024);
        let mut csb = Csb::new();
        assert_eq!(csb.write_low(0x1000, &mem), CsbMapping::Mapped(0x1000));
        assert_eq!(csb.base(), Some(0x1000));
        assert_eq!(csb.write_low(0x1020, &mem), CsbMapping::Invalid);
        assert_eq!(csb.base(), None);
        assert_eq!(csb.write_low(0x1040, &mem), CsbMapping::Mapped(0x1040));
        // The last page fits, one cache line further does not.
        assert_eq!(csb.write_low(0xF000, &mem), CsbMapping::Mapped(0xF000));
        assert_eq!(csb.write_low(0xF040, &mem), CsbMapping::Invalid);
        csb.write_high(1);
        assert_eq!(csb.write_low(0x1000, &mem), CsbMapping::Invalid);
        csb.write_high(0);
        assert_eq!(csb.write_low(0, &mem), CsbMapping::Off);
        assert_eq!((csb.low(), csb.high()), (0, 0));
        csb.write_high(u32::MAX);
        assert_eq!(csb.write_low(0xFFFF_FFC0, &mem), CsbMapping::Invalid);
    }

    #[test]
    fn indices_are_validated_and_bad_values_counted_once() {
        let mem = VecMemory::new(64 * 1024);
        let mut errors = ErrorCounters::default();
        let mut csb = Csb::new();
        csb.write_low(BASE as u32, &mem);
        csb.init_host_half(&mem, 3, 4, 3, 7);
        assert_eq!(mem.read_u32(at(field::HOST_TDH)).unwrap(), 3);
        assert_eq!(mem.read_u32(at(field::HOST_RDH)).unwrap(), 4);
        assert_eq!(mem.read_u32(at(field::HOST_NEED_TXKICK)).unwrap(), 1);
        assert_eq!(mem.read_u32(at(field::HOST_RXKICK_AT)).unwrap(), NONE);
        mem.write_u32(at(field::GUEST_TDT), 5).unwrap();
        assert!(csb.guest_index_changed(&mem, GuestIndex::Tx));
        assert_eq!(
            csb.guest_index(&mem, GuestIndex::Tx, 8, &mut errors),
            Some(5)
        );
        assert!(!csb.guest_index_changed(&mem, GuestIndex::Tx));
        mem.write_u32(at(field::GUEST_TDT), 8).unwrap();
        for _ in 0..3 {
            assert_eq!(csb.guest_index(&mem, GuestIndex::Tx, 8, &mut errors), None);
        }
        assert_eq!(errors.csb_index_invalid, 1, "one bad value, counted once");
        mem.write_u32(at(field::GUEST_TDT), 0xDEAD).unwrap();
        assert_eq!(csb.guest_index(&mem, GuestIndex::Tx, 8, &mut errors), None);
        assert_eq!(errors.csb_index_invalid, 2);
        // A ring of size 0 is not the index's fault.
        assert_eq!(csb.guest_index(&mem, GuestIndex::Rx, 0, &mut errors), None);
        assert_eq!(errors.csb_index_invalid, 2);
        // Flags: any non-zero value is set; csb_on changes are counted.
        assert!(!csb.guest_on(&mem, &mut errors));
        mem.write_u32(at(field::GUEST_CSB_ON), 0x8000_0000).unwrap();
        assert!(csb.guest_on(&mem, &mut errors));
        assert!(csb.guest_on(&mem, &mut errors));
        mem.write_u32(at(field::GUEST_CSB_ON), 0).unwrap();
        assert!(!csb.guest_on(&mem, &mut errors));
        assert_eq!(errors.csb_guest_on_changes, 2);
        csb.reset();
        assert_eq!(csb.load(&mem, field::GUEST_TDT), None);
    }
}
