//! Intel 82540EM (e1000) device model, independent of KVM and of the bus.
//!
//! The device is driven through [`E1000::mmio_read`]/[`E1000::mmio_write`]
//! (BAR0) and [`E1000::io_read`]/[`E1000::io_write`] (BAR1, IOADDR/IODATA).
//! Writes report what the VMM should run next ([`Effects`]): the transmit
//! path [`E1000::process_tx`] after a TDT write, the receive path
//! [`E1000::process_rx`] after an RDT write or when the backend has frames.
//! Guest memory is reached only through a [`Dma`] implementation, frames go
//! to and come from a [`NetBackend`], and the interrupt level is reported to
//! a [`Trigger`]. Interrupt moderation needs a timer: the VMM arms one for
//! [`E1000::next_deadline`] and calls [`E1000::on_timer`].
//!
//! Fidelity (8254x Software Developer's Manual): register layout, reset
//! values of what drivers read, Microwire EEPROM (64 words, checksum 0xBABA)
//! and EERD, M88E1011 PHY through MDIC, ICR/ICS/IMS/IMC, RCTL filtering
//! (RAL/RAH, MTA with MO, BAM, UPE, MPE, VFTA), buffer sizes with BSEX, long
//! packets (LPE), CRC stripping (SECRC), VLAN strip/insert (CTRL.VME), legacy
//! and extended TX descriptors with both TCP/IP contexts, checksum offload,
//! TSO, clear-on-read saturating statistics, ITR/TIDV/TADV/RDTR/RADV.
//! Simplified: autonegotiation completes at once; no receive checksum offload
//! (IXSM is reported); EEPROM writes, flow control, wake-up and manageability
//! registers are stored only; frames wait in the backend instead of a FIFO.
//! DMA happens only while PCI bus mastering is on ([`E1000::set_bus_master`]).
//!
//! Paravirtual extension ([`csb`], enabled by [`E1000Config::csb`]): while
//! the guest has mapped a Common Status Block and set guest_csb_on, the ring
//! indices come from and go to the CSB instead of TDT/RDT and TDH/RDH
//! (the four index functions below are the only place that reads or
//! publishes them), TDT/RDT register writes are kicks for the VMM's net
//! worker ([`Effects::csb_kick`]), TX and RX interrupts are raised only while
//! the guest asks for them, and the worker announces its sleep through
//! [`E1000::csb_prepare_sleep`] and its wake-up through
//! [`E1000::csb_enter_polling`].
//!
//! Every number of the guest/device contract (register offsets and bits,
//! descriptor layouts, EEPROM words, PHY registers, PCI ids, the CSB layout)
//! comes from the `e1000-spec` crate, which the guest image's driver uses
//! too; the modules here hold the behaviour.
//!
//! Modules: `registers` (the register file), `eeprom`, `phy` (MDIC),
//! `interrupts` and `moderation`, `tx`, `rx`, `ring` (descriptor rings),
//! `checksum`, `stats` (statistics registers and error counters), `csb` (the
//! paravirtual extension), `dma` and `backend` (the interfaces).

#![warn(missing_docs)]

pub mod backend;
pub mod checksum;
pub mod csb;
mod csb_path;
pub mod dma;
pub mod eeprom;
pub mod interrupts;
pub mod moderation;
pub mod offload;
pub mod phy;
pub mod registers;
pub mod ring;
pub mod rx;
pub mod stats;
pub mod tx;

#[cfg(test)]
mod tests;

pub use backend::{NetBackend, QueueBackend};
pub use dma::{Dma, DmaError, VecMemory};
pub use interrupts::Trigger;
pub use moderation::{Clock, MonotonicClock};
pub use stats::{ErrorCounters, Statistics};

use e1000_spec::csb::{field as csb_field, CSBAH, CSBAL};
use e1000_spec::pci;
use e1000_spec::regs::*;

use csb::{Csb, CsbMapping};
use csb_path::CsbRings;
use eeprom::{Eeprom, EepromIdentity};
use interrupts::Interrupts;
use phy::Phy;
use registers::{is_storage_register, RegisterFile};
use rx::{RxEngine, RxEnv};
use tx::{TxEngine, TxEnv};
/// TX descriptors walked in one [`E1000::process_tx`] call in CSB mode, so
/// that a thread holds the device lock for one bounded batch (512 frames
/// are roughly 50-100 us of work here, less than one VM exit costs). Large
/// on purpose: every wake-up of the net worker and every poll-port exit
/// costs ~100 us on this host, and 64-frame batches capped VM-to-VM at
/// about 0.4 Mpps (measured: 64 -> 0.43 Mpps, 256 -> 1.3 Mpps, 1024 ->
/// 1.7 Mpps with 512-entry guest rings).
pub const CSB_TX_BATCH: u32 = 512;
/// RX frames handled in one [`E1000::process_rx`] call in CSB mode, for the
/// same reason.
pub const CSB_RX_BATCH: u32 = 512;

/// Device configuration chosen by the VMM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct E1000Config {
    /// MAC address stored in the EEPROM and loaded into RAL0/RAH0.
    pub mac: [u8; 6],
    /// Emulate interrupt moderation (ITR, TIDV/TADV, RDTR/RADV), like QEMU's
    /// `mitigation=on`; off makes every interrupt immediate.
    pub mitigation: bool,
    /// PCI subsystem vendor id (also in the EEPROM).
    pub subsystem_vendor_id: u16,
    /// PCI subsystem id (also in the EEPROM).
    pub subsystem_id: u16,
    /// The CSB paravirtual extension: the CSBAL/CSBAH registers exist.
    /// Set it with [`E1000Config::with_csb`], which also advertises it in the
    /// subsystem id.
    pub csb: bool,
}

impl E1000Config {
    /// Configuration with `mac`, moderation on, the Intel subsystem ids and
    /// no paravirtual extension (a stock 82540EM).
    pub fn new(mac: [u8; 6]) -> Self {
        Self {
            mac,
            mitigation: true,
            subsystem_vendor_id: pci::SUBSYSTEM_VENDOR_ID,
            subsystem_id: pci::SUBSYSTEM_ID,
            csb: false,
        }
    }

    /// Turns the CSB extension on or off, with its advertisement: subsystem
    /// id [`e1000_spec::csb::SUBSYSTEM_ID`] when on, the stock one
    /// ([`pci::SUBSYSTEM_ID`]) when off.
    pub fn with_csb(mut self, on: bool) -> Self {
        self.csb = on;
        self.subsystem_id = if on {
            e1000_spec::csb::SUBSYSTEM_ID
        } else {
            pci::SUBSYSTEM_ID
        };
        self
    }
}

/// Work a register write asks the VMM to do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// Run [`E1000::process_tx`] (TDT written, or transmit enabled).
    pub process_tx: bool,
    /// Run [`E1000::process_rx`] (RDT written, or receive enabled).
    pub process_rx: bool,
    /// CSB mode: TDT or RDT was written as a kick. Wake the net worker; do
    /// not process in the caller.
    pub csb_kick: bool,
}

impl Effects {
    fn merge(self, other: Effects) -> Effects {
        Effects {
            process_tx: self.process_tx || other.process_tx,
            process_rx: self.process_rx || other.process_rx,
            csb_kick: self.csb_kick || other.csb_kick,
        }
    }

    /// Whether any work was asked for.
    pub fn any(&self) -> bool {
        self.process_tx || self.process_rx || self.csb_kick
    }
}

/// What [`E1000::process_tx`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxOutcome {
    /// Frames handed to the backend.
    pub frames: u32,
    /// Descriptors consumed.
    pub descriptors: u32,
    /// The backend had no free slot: call again when it has.
    pub backend_full: bool,
}

/// What [`E1000::process_rx`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxOutcome {
    /// Frames written to guest memory.
    pub frames: u32,
    /// Frames taken from the backend and dropped (filters, errors, disabled).
    pub dropped: u32,
    /// Frames wait for receive buffers: call again after an RDT write.
    pub waiting_for_buffers: bool,
    /// The per-call budget ran out: call again.
    pub more: bool,
}

/// The emulated 82540EM.
pub struct E1000<T: Trigger, C: Clock = MonotonicClock> {
    config: E1000Config,
    regs: RegisterFile,
    eeprom: Eeprom,
    phy: Phy,
    mdic: u32,
    irq: Interrupts,
    stats: Statistics,
    errors: ErrorCounters,
    tx: TxEngine,
    rx: RxEngine,
    csb: Csb,
    /// PCI command register bus-master bit: DMA allowed.
    bus_master: bool,
    /// Work was refused and counted in the current bus-master-off period.
    dma_refusal_counted: bool,
    io_address: u32,
    trigger: T,
    clock: C,
    level: bool,
}

impl<T: Trigger, C: Clock> std::fmt::Debug for E1000<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("E1000")
            .field("config", &self.config)
            .field("level", &self.level)
            .field("errors", &self.errors)
            .finish_non_exhaustive()
    }
}

/// Whether `offset` is a RAH register.
fn is_rah(offset: u32) -> bool {
    (RA..ra_low(RA_ENTRIES)).contains(&offset) && offset == ra_high((offset - RA) / RA_STRIDE)
}

impl<T: Trigger, C: Clock> E1000<T, C> {
    /// A device after power-on reset, link up.
    pub fn new(config: E1000Config, trigger: T, clock: C) -> Self {
        let eeprom = Eeprom::new(&EepromIdentity {
            mac: config.mac,
            vendor_id: pci::VENDOR_ID,
            device_id: pci::DEVICE_ID,
            subsystem_vendor_id: config.subsystem_vendor_id,
            subsystem_id: config.subsystem_id,
        });
        let mut device = Self {
            irq: Interrupts::new(config.mitigation),
            config,
            regs: RegisterFile::new(),
            eeprom,
            phy: Phy::new(true),
            mdic: 0,
            stats: Statistics::default(),
            errors: ErrorCounters::default(),
            tx: TxEngine::default(),
            rx: RxEngine::default(),
            csb: Csb::new(),
            bus_master: true,
            dma_refusal_counted: false,
            io_address: 0,
            trigger,
            clock,
            level: false,
        };
        device.reset();
        device
    }

    /// The configuration.
    pub fn config(&self) -> &E1000Config {
        &self.config
    }

    /// Counters of guest errors and refused operations.
    pub fn errors(&self) -> &ErrorCounters {
        &self.errors
    }

    /// The statistics registers (read without clearing via `peek`).
    pub fn statistics(&self) -> &Statistics {
        &self.stats
    }

    /// The EEPROM.
    pub fn eeprom(&self) -> &Eeprom {
        &self.eeprom
    }

    /// The level last reported to the trigger.
    pub fn interrupt_level(&self) -> bool {
        self.level
    }

    /// ICR without clearing it.
    pub fn pending_causes(&self) -> u32 {
        self.irq.peek_icr()
    }

    /// The trigger.
    pub fn trigger(&self) -> &T {
        &self.trigger
    }

    /// Software or power-on reset: every register to its default, EEPROM
    /// reloaded into RAL0/RAH0, statistics cleared, interrupt line low, CSB
    /// off. The error counters are the host's and are kept, and so is the
    /// bus-master bit (PCI configuration space is not reset by CTRL.RST).
    pub fn reset(&mut self) {
        self.regs.reset();
        self.csb.reset();
        self.eeprom.reset();
        self.phy = Phy::new(self.phy.link_up());
        self.mdic = 0;
        self.irq.reset();
        self.stats.reset();
        self.tx.reset();
        self.rx.reset();
        self.io_address = 0;
        self.load_mac_from_eeprom();
        let now = self.now();
        self.update_level(now);
    }

    fn load_mac_from_eeprom(&mut self) {
        let mac = self.eeprom.mac();
        self.regs.set(
            ra_low(0),
            u32::from_le_bytes([mac[0], mac[1], mac[2], mac[3]]),
        );
        self.regs.set(
            ra_high(0),
            u32::from(u16::from_le_bytes([mac[4], mac[5]])) | rah::AV,
        );
    }

    /// Sets the link state (e.g. the backend went away); a change raises LSC.
    pub fn set_link(&mut self, up: bool) {
        if self.phy.set_link(up) {
            self.irq.raise(icr::LSC);
            let now = self.now();
            self.update_level(now);
        }
    }

    /// Whether the link is up (STATUS.LU).
    pub fn link_up(&self) -> bool {
        self.phy.link_up()
    }

    fn now(&self) -> u64 {
        if self.irq.moderation.enabled() {
            self.clock.now_ns()
        } else {
            0
        }
    }

    /// Recomputes the interrupt level and reports a change to the trigger.
    fn update_level(&mut self, now: u64) {
        let level = self.irq.update(now);
        if level != self.level {
            self.level = level;
            self.trigger.set_level(level);
        }
    }

    /// When the VMM must call [`E1000::on_timer`] (moderation clock, ns).
    pub fn next_deadline(&self) -> Option<u64> {
        self.irq.next_deadline()
    }

    /// Moderation timer callback: fires expired delay timers and raises the
    /// line if an interrupt was held back and may now be asserted.
    pub fn on_timer(&mut self, now_ns: u64) {
        self.irq.on_timer(now_ns);
        self.update_level(now_ns);
    }

    fn status(&self) -> u32 {
        let mut value = status::FD | status::SPEED_1000 | status::ASDV_1000;
        if self.phy.link_up() {
            value |= status::LU;
        }
        value
    }

    /// Reads the 32-bit register at BAR0 `offset` with its side effects.
    pub fn read_register(&mut self, offset: u32) -> u32 {
        match offset {
            CTRL => self.regs.get(CTRL),
            STATUS => self.status(),
            EECD => self.eeprom.read_eecd(),
            EERD => self.eeprom.read_eerd(),
            MDIC => self.mdic,
            ICR => {
                let value = self.irq.read_icr();
                let now = self.now();
                self.update_level(now);
                value
            }
            ICS | IMC => 0,
            IMS => self.irq.ims(),
            ITR => self.irq.moderation.itr(),
            TIDV => self.irq.moderation.tidv(),
            TADV => self.irq.moderation.tadv(),
            RDTR => self.irq.moderation.rdtr(),
            RADV => self.irq.moderation.radv(),
            CSBAL if self.config.csb => self.csb.low(),
            CSBAH if self.config.csb => self.csb.high(),
            _ if Statistics::is_register(offset) => self.stats.read(offset).unwrap_or(0),
            _ if is_storage_register(offset) => self.regs.get(offset),
            _ => {
                self.errors.unknown_register_reads += 1;
                0
            }
        }
    }

    /// Writes `value` to the 32-bit register at BAR0 `offset`. `dma` reaches
    /// guest memory for the registers whose write touches it (CSBAL maps the
    /// CSB; TDT/RDT read guest_csb_on while it is mapped).
    pub fn write_register<D: Dma>(&mut self, offset: u32, value: u32, dma: &D) -> Effects {
        let mut effects = Effects::default();
        match offset {
            CTRL => {
                if value & ctrl::RST != 0 {
                    self.reset();
                    return effects;
                }
                let old = self.regs.get(CTRL);
                self.regs.set(CTRL, value);
                if value & ctrl::PHY_RST != 0 && old & ctrl::PHY_RST == 0 {
                    self.phy.reset();
                }
            }
            STATUS => {}
            EECD => self.eeprom.write_eecd(value),
            EERD => {
                if !self.eeprom.write_eerd(value) {
                    self.errors.eeprom_address_invalid += 1;
                }
            }
            CTRL_EXT => {
                if value & ctrl_ext::EE_RST != 0 {
                    self.load_mac_from_eeprom();
                }
                self.regs.set(CTRL_EXT, value & !ctrl_ext::EE_RST);
            }
            MDIC => {
                self.mdic = phy::mdic_command(&mut self.phy, value);
                if self.mdic & mdic::ERROR != 0 {
                    self.errors.mdic_invalid += 1;
                }
                if value & mdic::INTERRUPT != 0 {
                    self.irq.raise(icr::MDAC);
                }
            }
            ICR => self.irq.write_icr(value),
            ICS => self.irq.write_ics(value),
            IMS => self.irq.write_ims(value),
            IMC => self.irq.write_imc(value),
            ITR => self.irq.moderation.set_itr(value),
            TIDV => self.irq.moderation.set_tidv(value),
            TADV => self.irq.moderation.set_tadv(value),
            RADV => self.irq.moderation.set_radv(value),
            RDTR => {
                if self.irq.moderation.set_rdtr(value) {
                    self.irq.raise(icr::RXT0);
                }
            }
            RCTL => {
                self.regs.set(RCTL, value);
                effects.process_rx = value & rctl::EN != 0;
            }
            TCTL => {
                self.regs.set(TCTL, value);
                if value & tctl::EN != 0 {
                    effects.process_tx = true;
                } else {
                    self.tx.ring_changed();
                }
            }
            TDBAL | RDBAL => {
                if value & !RING_BASE_LOW_MASK != 0 {
                    self.errors.ring_base_unaligned += 1;
                }
                self.regs.set(offset, value & RING_BASE_LOW_MASK);
                self.tx.ring_changed();
            }
            TDBAH | RDBAH => {
                self.regs.set(offset, value);
                self.tx.ring_changed();
            }
            TDLEN | RDLEN => {
                if value & !RING_LEN_MASK != 0 {
                    self.errors.ring_length_invalid += 1;
                }
                self.regs.set(offset, value & RING_LEN_MASK);
                self.tx.ring_changed();
            }
            CSBAL if self.config.csb => match self.csb.write_low(value, dma) {
                CsbMapping::Mapped(_) => {
                    if self.bus_master {
                        self.csb_init_host_half(dma);
                    }
                }
                CsbMapping::Off => {}
                CsbMapping::Invalid => self.errors.csb_address_invalid += 1,
            },
            CSBAH if self.config.csb => self.csb.write_high(value),
            TDT | RDT if self.csb_guest_active(dma) => {
                // The guest's index is in the CSB: the write is only a kick.
                if value & !RING_INDEX_MASK != 0 {
                    self.errors.ring_index_invalid += 1;
                }
                effects.csb_kick = true;
            }
            TDH | RDH | TDT | RDT => {
                if value & !RING_INDEX_MASK != 0 {
                    self.errors.ring_index_invalid += 1;
                }
                let value = value & RING_INDEX_MASK;
                self.regs.set(offset, value);
                match offset {
                    TDT => effects.process_tx = true,
                    RDT => effects.process_rx = true,
                    TDH => self.tx.ring_changed(),
                    _ => {}
                }
                // A head the driver set by hand is the device's head: keep
                // the CSB's copy in step (no-op when unmapped).
                if self.bus_master {
                    match offset {
                        TDH => self.csb.store(dma, csb_field::HOST_TDH, value),
                        RDH => self.csb.store(dma, csb_field::HOST_RDH, value),
                        _ => {}
                    }
                }
            }
            _ if is_rah(offset) => self.regs.set(offset, value & rah::WRITABLE),
            TIPG => self.regs.set(TIPG, value & tipg::WRITABLE),
            _ if Statistics::is_register(offset) => {}
            _ if is_storage_register(offset) => self.regs.set(offset, value),
            _ => self.errors.unknown_register_writes += 1,
        }
        let now = self.now();
        self.update_level(now);
        effects
    }

    /// BAR0 read of `data.len()` bytes at `offset`. Aligned 32-bit reads are
    /// the norm; an aligned 64-bit read is two register reads; a narrower
    /// read inside one register returns its bytes; anything else reads 0.
    pub fn mmio_read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        let len = data.len() as u64;
        if offset
            .checked_add(len)
            .is_none_or(|end| end > u64::from(MMIO_SIZE))
        {
            self.errors.bad_access_size += 1;
            return;
        }
        let offset = offset as u32;
        match (offset % 4, data.len()) {
            (0, 4) => data.copy_from_slice(&self.read_register(offset).to_le_bytes()),
            (0, 8) => {
                let low = self.read_register(offset);
                let high = self.read_register(offset + 4);
                data[..4].copy_from_slice(&low.to_le_bytes());
                data[4..].copy_from_slice(&high.to_le_bytes());
            }
            (within, n) if n > 0 && within as usize + n <= 4 => {
                let value = self.read_register(offset & !3).to_le_bytes();
                data.copy_from_slice(&value[within as usize..within as usize + n]);
            }
            _ => self.errors.bad_access_size += 1,
        }
    }

    /// BAR0 write of `data` at `offset`. Only aligned 32-bit and 64-bit writes
    /// reach registers; others are ignored and counted. `dma` as in
    /// [`E1000::write_register`].
    pub fn mmio_write<D: Dma>(&mut self, offset: u64, data: &[u8], dma: &D) -> Effects {
        let len = data.len() as u64;
        if offset
            .checked_add(len)
            .is_none_or(|end| end > u64::from(MMIO_SIZE))
        {
            self.errors.bad_access_size += 1;
            return Effects::default();
        }
        let offset = offset as u32;
        let word = |bytes: &[u8]| u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        match (offset % 4, data.len()) {
            (0, 4) => self.write_register(offset, word(data), dma),
            (0, 8) => {
                let first = self.write_register(offset, word(&data[..4]), dma);
                first.merge(self.write_register(offset + 4, word(&data[4..]), dma))
            }
            _ => {
                self.errors.bad_access_size += 1;
                Effects::default()
            }
        }
    }

    /// BAR1 read: IOADDR returns the selected offset, IODATA the selected
    /// register; the reserved range reads 0.
    pub fn io_read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if data.len() != 4 {
            self.errors.bad_access_size += 1;
            return;
        }
        let value = match offset {
            0 => self.io_address,
            4 => self.read_register(self.io_address),
            _ => {
                self.errors.unknown_register_reads += 1;
                0
            }
        };
        data.copy_from_slice(&value.to_le_bytes());
    }

    /// BAR1 write: IOADDR selects a BAR0 offset, IODATA writes that register.
    pub fn io_write<D: Dma>(&mut self, offset: u64, data: &[u8], dma: &D) -> Effects {
        let [a, b, c, d] = data else {
            self.errors.bad_access_size += 1;
            return Effects::default();
        };
        let value = u32::from_le_bytes([*a, *b, *c, *d]);
        match offset {
            0 => {
                self.io_address = value & (MMIO_SIZE - 1) & !3;
                Effects::default()
            }
            4 => self.write_register(self.io_address, value, dma),
            _ => {
                self.errors.unknown_register_writes += 1;
                Effects::default()
            }
        }
    }

    // --- PCI bus mastering and the CSB extension.

    /// Applies the PCI command register's bus-master bit: without it the
    /// device does no DMA (TX and RX work waits, the CSB is not touched).
    /// Turning it back on (re)publishes the CSB's host half if one is mapped;
    /// the caller should then run the pending TX and RX work.
    pub fn set_bus_master<D: Dma>(&mut self, enabled: bool, dma: &D) {
        let was = std::mem::replace(&mut self.bus_master, enabled);
        if enabled {
            self.dma_refusal_counted = false;
            if !was && self.csb.base().is_some() {
                self.csb_init_host_half(dma);
            }
        }
    }

    /// Whether PCI bus mastering (DMA) is on.
    pub fn bus_master(&self) -> bool {
        self.bus_master
    }

    /// Whether DMA is allowed; refused work is counted once per period
    /// with bus mastering off.
    fn dma_allowed(&mut self) -> bool {
        if !self.bus_master && !self.dma_refusal_counted {
            self.errors.dma_refused_bus_master_off += 1;
            self.dma_refusal_counted = true;
        }
        self.bus_master
    }

    /// The guest-physical address of the mapped CSB, if any.
    pub fn csb_address(&self) -> Option<u64> {
        self.csb.base()
    }

    /// Whether the CSB is mapped and guest_csb_on was set at the device's
    /// last look (no guest memory access): while true, TDT writes are kicks.
    pub fn csb_guest_on_seen(&self) -> bool {
        self.csb.guest_on_seen()
    }

    /// Whether the CSB carries the ring indices now: mapped, DMA allowed,
    /// and guest_csb_on set (read from guest memory).
    pub fn csb_active<D: Dma>(&mut self, dma: &D) -> bool {
        self.csb_guest_active(dma)
    }

    fn csb_guest_active<D: Dma>(&mut self, dma: &D) -> bool {
        self.csb.base().is_some() && self.bus_master && self.csb.guest_on(dma, &mut self.errors)
    }

    fn csb_init_host_half<D: Dma>(&mut self, dma: &D) {
        let [tdh, rdh, tdt, rdt] = [TDH, RDH, TDT, RDT].map(|r| self.regs.get(r));
        self.csb.init_host_half(dma, tdh, rdh, tdt, rdt);
    }

    /// The net worker starts polling (woken by a kick, or about to spin):
    /// clears host_need_txkick and host_need_rxkick so the guest stops
    /// kicking. No effect unless the CSB is active.
    pub fn csb_enter_polling<D: Dma>(&mut self, dma: &D) {
        if self.csb_guest_active(dma) {
            self.csb_rings().enter_polling(dma);
        }
    }

    /// The net worker found nothing to do and wants to sleep: sets
    /// host_need_txkick (and host_need_rxkick when `rx_waiting`, i.e. frames
    /// wait for RX buffers), full barrier, then re-reads guest_tdt (and
    /// guest_rdt). Returns true if the worker may sleep until a kick; false
    /// if the guest published new work meanwhile, in which case the flags
    /// are cleared again and the worker must keep polling. Always true when
    /// the CSB is not active (the registers carry the kicks then).
    pub fn csb_prepare_sleep<D: Dma>(&mut self, dma: &D, rx_waiting: bool) -> bool {
        if !self.csb_guest_active(dma) {
            return true;
        }
        self.csb_rings().prepare_sleep(dma, rx_waiting)
    }

    /// The data path's state for an offloaded walker ([`offload`]), if the
    /// CSB is active (mapped, DMA allowed, guest_csb_on set). Until
    /// [`E1000::take_back`], the caller must not run [`E1000::process_tx`]
    /// or [`E1000::process_rx`], and must take the data path back before any
    /// register access that [`offload::access_keeps_offload`] refuses.
    pub fn handover<D: Dma>(&mut self, dma: &D) -> Option<offload::Handover> {
        if !self.csb_guest_active(dma) {
            return None;
        }
        let csb_address = self.csb.base()?;
        let registers = offload::data_path_registers()
            .map(|offset| (offset, self.regs.get(offset)))
            // Zeros are left out: the walker starts from zeroed registers.
            .filter(|&(_, value)| value != 0)
            .collect();
        Some(offload::Handover {
            csb_address,
            registers,
            tx: self.tx.state(),
        })
    }

    /// Tells the guest through the CSB (host_offloaded) that another walker
    /// has the rings: the VMM sets it once the hand-over was accepted.
    /// [`E1000::take_back`] and [`E1000::take_back_from_csb`] clear it.
    pub fn set_offloaded_flag<D: Dma>(&mut self, dma: &D, on: bool) {
        self.csb.set_flag(dma, csb_field::HOST_OFFLOADED, on);
    }

    /// Takes the data path back from an offloaded walker: its heads, last
    /// tails and transmit contexts, and the statistics it counted. Values
    /// are checked when next used, as a guest's are.
    pub fn take_back<D: Dma>(&mut self, back: &offload::HandBack, dma: &D) {
        self.set_offloaded_flag(dma, false);
        self.regs.set(TDH, back.tdh);
        self.regs.set(TDT, back.tdt);
        self.regs.set(RDH, back.rdh);
        self.regs.set(RDT, back.rdt);
        self.csb.set_seen(back.tdt, back.rdt);
        self.tx.restore(&back.tx);
        self.stats.merge(&back.statistics);
    }

    /// Takes the data path back from a walker that disappeared without
    /// handing back: the heads as last published in the CSB (host_tdh,
    /// host_rdh), the contexts as they were handed over. Statistics counted
    /// meanwhile are lost.
    pub fn take_back_from_csb<D: Dma>(&mut self, dma: &D) {
        let Some(address) = self.csb.base() else {
            return;
        };
        self.set_offloaded_flag(dma, false);
        if let Some((tdh, rdh)) = offload::OffloadedRings::heads_in_csb(dma, address) {
            self.regs.set(TDH, tdh);
            self.regs.set(RDH, rdh);
        }
    }

    /// Raises the interrupt `causes` (ICR bits) an offloaded walker
    /// reported ([`offload::OffloadedRings::transmit`] and `receive` return
    /// them; the VMM learns of them through its call eventfds), as the
    /// device's own CSB rounds would: no delay timers, ITR still applies.
    pub fn raise_offloaded(&mut self, causes: u32) {
        self.irq.raise(causes);
        let now = self.now();
        self.update_level(now);
    }

    /// The state a CSB-mode round works on (`csb_path`).
    fn csb_rings(&mut self) -> CsbRings<'_> {
        CsbRings {
            regs: &mut self.regs,
            csb: &mut self.csb,
            tx: &mut self.tx,
            rx: &mut self.rx,
            stats: &mut self.stats,
            errors: &mut self.errors,
        }
    }

    /// Transmits what the guest queued between TDH and TDT (guest_tdt with
    /// the CSB active, at most [`CSB_TX_BATCH`] descriptors a call then, by
    /// `csb_path`): gathers frames, applies offloads and TSO, hands them to
    /// `backend` (flushing once per batch), writes back descriptor status
    /// and raises TXDW/TXQE (with the CSB active: only while
    /// guest_need_txkick is set, and without delay timers).
    pub fn process_tx<D: Dma, B: NetBackend>(&mut self, dma: &D, backend: &mut B) -> TxOutcome {
        if self.regs.get(TCTL) & tctl::EN == 0 || !self.dma_allowed() {
            return TxOutcome::default();
        }
        if self.csb_guest_active(dma) {
            let (outcome, causes) = self.csb_rings().transmit(dma, backend);
            self.irq.raise(causes);
            let now = self.now();
            self.update_level(now);
            return outcome;
        }
        let (head, tail) = (self.regs.get(TDH), self.regs.get(TDT));
        if head == tail {
            return TxOutcome::default();
        }
        let Some(env) = TxEnv::from_registers(&self.regs, dma, head, tail, &mut self.errors) else {
            return TxOutcome::default();
        };
        let run = self
            .tx
            .run(env, dma, backend, &mut self.stats, &mut self.errors);
        self.regs.set(TDH, run.head);

        let now = self.now();
        let mut causes = 0;
        if run.report_delayed && self.irq.moderation.tx_reported(true, now) {
            causes |= icr::TXDW;
        }
        if run.report_now && self.irq.moderation.tx_reported(false, now) {
            causes |= icr::TXDW;
        }
        if run.descriptors > 0 && run.head == tail {
            causes |= icr::TXQE;
        }
        self.irq.raise(causes);
        self.update_level(now);
        TxOutcome {
            frames: run.frames,
            descriptors: run.descriptors,
            backend_full: run.backend_full,
        }
    }

    /// Receives frames waiting in `backend` into the guest's buffers, raising
    /// RXT0 (subject to moderation) and RXDMT0; with the CSB active (by
    /// `csb_path`) the free buffers end at guest_rdt, the head goes to
    /// host_rdh, at most [`CSB_RX_BATCH`] frames are handled a call, and both
    /// causes are raised only while guest_need_rxkick is set (without delay
    /// timers). Frames stay in the backend while the guest has no buffers or
    /// bus mastering is off; with the receiver disabled they are dropped, as
    /// the hardware does.
    pub fn process_rx<D: Dma, B: NetBackend>(&mut self, dma: &D, backend: &mut B) -> RxOutcome {
        let rctl_value = self.regs.get(RCTL);
        if rctl_value & rctl::EN == 0 {
            return csb_path::drop_while_disabled(backend, &mut self.errors);
        }
        if !self.dma_allowed() {
            return RxOutcome::default();
        }
        if self.csb_guest_active(dma) {
            let (outcome, causes) = self.csb_rings().receive(dma, backend);
            self.irq.raise(causes);
            let now = self.now();
            self.update_level(now);
            return outcome;
        }
        let (head, tail) = (self.regs.get(RDH), self.regs.get(RDT));
        let waiting = backend.rx_peek().is_some();
        let env = RxEnv::from_registers(
            &self.regs,
            dma,
            head,
            tail,
            rx::RX_BUDGET,
            waiting,
            &mut self.errors,
        );
        let Some(env) = env else {
            return RxOutcome {
                waiting_for_buffers: true,
                ..RxOutcome::default()
            };
        };
        let run = self.rx.run(
            env,
            &self.regs,
            dma,
            backend,
            &mut self.stats,
            &mut self.errors,
        );
        self.regs.set(RDH, run.head);

        let now = self.now();
        let mut causes = 0;
        if run.frames > 0 && self.irq.moderation.rx_delivered(now) {
            causes |= icr::RXT0;
        }
        if run.threshold_reached {
            causes |= icr::RXDMT0;
        }
        self.irq.raise(causes);
        self.update_level(now);
        RxOutcome {
            frames: run.frames,
            dropped: run.dropped,
            waiting_for_buffers: run.waiting_for_buffers,
            more: run.more,
        }
    }
}
