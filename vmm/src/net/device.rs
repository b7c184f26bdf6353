//! The e1000 NIC as the VMM runs it: the device model, its backend and its
//! DMA, shared by the vCPU thread (register accesses, and the TX/RX work they
//! start) and the I/O thread (switch kicks, moderation timer, and in CSB mode
//! all TX/RX work) behind one mutex, held for one batch at a time.
//!
//! Who moves frames is decided in one place, [`DataPath`], when a register
//! write maps or unmaps the guest's Common Status Block; every event handler
//! then follows that decision:
//!
//! - [`DataPath::Registers`] (no CSB): register writes and kicks run TX and
//!   RX inline, then the device settles: the moderation timerfd is re-armed
//!   when the model's next deadline changed, and the port is asked for the
//!   kicks the device now needs (RX when the port ran dry, TX space when it
//!   was full), so that the I/O thread sleeps only when nothing is pending.
//! - [`DataPath::Csb`]: the vCPU thread never runs TX or RX on a register
//!   write; work only wakes the I/O thread, which runs the polling loop of
//!   [`crate::net::worker`] through the [`Pollable`] implementation here (and
//!   a guest waiting at the poll port lends its vCPU thread for a few rounds).
//!   While the guest has guest_csb_on set, a KVM ioeventfd on TDT (BAR0 +
//!   0x3818, 4-byte writes) turns the guest's kick into an eventfd signal
//!   without a userspace exit; it follows BAR0 when the guest moves it.
//! - [`DataPath::Offloaded`] (`--e1000 offload=on`, [`super::offload`]):
//!   once the CSB is active the net worker hands the rings to the switch
//!   daemon and stops walking them; the daemon sleeps on the TDT ioeventfd
//!   and writes the call eventfds, which the I/O thread turns into RXT0 and
//!   TXDW. Register accesses that [`access_keeps_offload`] refuses, a reset,
//!   bus mastering off, a link change and the guest leaving CSB mode (a call
//!   with guest_csb_on clear) take the data path back first; TDT and RDT
//!   writes that exit meanwhile are passed on to the daemon as kicks.

use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kvm_ioctls::VmFd;
use thiserror::Error;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::backend::{self, BackendError, BackendSpec, PortBackend};
use super::dma::GuestDma;
use super::ioevent::MmioKick;
use super::offload::{HandoverOutcome, Offload};
use super::register_names::e1000_register_name;
use super::worker::{Pollable, Round};
use crate::devices::pci::{config, BarKind, BarSpec, PciFunction, PciHeader};
use crate::e1000::offload::access_keeps_offload;
use crate::e1000::{Clock, E1000Config, Effects, Trigger, E1000};
use crate::irq::IrqLine;
use crate::memory::GuestRam;
use crate::stats::Stats;
use crate::timer::{monotonic_ns, DeadlineTimer};

/// Guest-physical address the VMM assigns to BAR0 (MMIO, 128 KiB).
pub const E1000_BAR0_ADDRESS: u32 = 0xFEB0_0000;
/// I/O port the VMM assigns to BAR1 (IOADDR/IODATA, 64 ports).
pub const E1000_BAR1_ADDRESS: u32 = 0xC000;
/// Interrupt line register value: GSI 11, INTA#.
pub const E1000_INTERRUPT_LINE: u8 = 11;
/// Rounds of "process, re-arm, already ready again" before handing the rest
/// to the I/O thread, so that a register write never holds the vCPU long.
const MAX_SETTLE_ROUNDS: u32 = 8;
/// CSB rounds the vCPU thread runs per poll-port exit while they move
/// frames: an exit costs ~100 us here, so each one should fill the guest's
/// RX ring (and drain its TX ring) as far as the port allows: 8 rounds of
/// 512 cover a 4096-entry ring and a 4096-slot switch port.
const VCPU_POLL_ROUNDS: u32 = 8;
/// Calls of `process_rx` in a row while the model reports more work.
const MAX_RX_ROUNDS: u32 = 16;

/// How the NIC is configured.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// The port to open.
    pub backend: BackendSpec,
    /// The vswitch daemon's control socket (for switch ports).
    pub socket: PathBuf,
    /// The NIC's MAC address.
    pub mac: [u8; 6],
    /// Emulate interrupt moderation.
    pub mitigation: bool,
    /// Offer the CSB paravirtual extension (subsystem id 0x1101, CSBAL/CSBAH).
    pub csb: bool,
    /// How long the net worker keeps polling after its last work in CSB mode.
    pub spin: Duration,
    /// Re-open a switch port after a daemon restart ([`super::link`]).
    pub reconnect: bool,
    /// Test-frame timestamps kept ([`super::latency_trace`]); 0: off.
    pub trace_samples: usize,
    /// Hand the CSB data path to the switch daemon ([`super::offload`]).
    pub offload: bool,
}

impl NetConfig {
    /// A configuration with the defaults: moderation on, CSB offered,
    /// [`super::worker::DEFAULT_SPIN`], reconnecting after a daemon restart.
    pub fn new(backend: BackendSpec, socket: PathBuf, mac: [u8; 6]) -> NetConfig {
        NetConfig {
            backend,
            socket,
            mac,
            mitigation: true,
            csb: true,
            spin: super::worker::DEFAULT_SPIN,
            reconnect: true,
            trace_samples: 0,
            offload: false,
        }
    }
}

/// Why the NIC could not be created.
#[derive(Debug, Error)]
pub enum NetError {
    /// The backend port.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// timerfd or eventfd creation.
    #[error("cannot create the e1000's timer or eventfd")]
    Fd(#[source] std::io::Error),
}

/// The host's CLOCK_MONOTONIC as the model's moderation clock, so deadlines
/// go to the timerfd unchanged.
#[derive(Clone, Copy, Debug, Default)]
pub struct HostClock;

impl Clock for HostClock {
    fn now_ns(&self) -> u64 {
        monotonic_ns()
    }
}

/// The model's interrupt output: the INTx line.
pub struct IntxTrigger(Arc<IrqLine>);

impl Trigger for IntxTrigger {
    fn set_level(&self, asserted: bool) {
        self.0.set_level(asserted);
    }
}

/// Who moves the device's frames; decided by `NetDevice::follow_data_path`
/// after every register write (the only thing that maps or unmaps the CSB).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataPath {
    /// No CSB: the thread that causes work (a register write, a port kick, the
    /// moderation timer) does it inline and settles the device.
    Registers,
    /// The CSB is mapped at this guest-physical address: the net worker polls
    /// TX and RX; other threads only wake it.
    Csb(u64),
    /// The CSB is mapped at this address and the switch daemon walks the
    /// rings ([`super::offload`]); nobody in the VMM does.
    Offloaded(u64),
}

/// What the mutex protects.
struct Shared {
    model: E1000<IntxTrigger, HostClock>,
    backend: PortBackend,
    /// Who moves frames now.
    path: DataPath,
    /// The deadline the timerfd is armed for.
    armed_deadline: Option<u64>,
    /// BAR0's guest-physical address while it decodes.
    bar0: Option<u64>,
    /// The ioeventfd on TDT.
    tdt_kick: MmioKick,
    /// Ports replaced by [`NetDevice::replace_port`] that the I/O thread has
    /// not yet taken out of its epoll.
    retired: Vec<Box<dyn backend::Port>>,
    /// The hand-over to the switch daemon (`offload=on` only).
    offload: Option<Offload>,
}

/// The e1000 shared by the vCPU and I/O threads.
pub struct NetDevice {
    shared: Mutex<Shared>,
    dma: GuestDma,
    irq: Arc<IrqLine>,
    timer: DeadlineTimer,
    /// Written when work is left for the I/O thread.
    deferred: EventFd,
    /// Signalled by KVM when the guest writes TDT in CSB mode.
    tdt_kick: EventFd,
    /// Written when the port was replaced (the I/O thread re-registers the
    /// kick eventfd).
    port_changed: EventFd,
    /// The path is [`DataPath::Offloaded`] (read without the lock by the
    /// I/O thread, which stops watching the TDT kick meanwhile).
    offloaded: AtomicBool,
    /// The offload's rx-call and tx-call eventfds (`offload=on` only).
    call_fds: Option<[RawFd; 2]>,
    header: PciHeader,
    stats: Arc<Stats>,
    spin: Duration,
}

/// TX and RX work, as a register write or a kick asks for it.
const ALL_WORK: Effects = Effects {
    process_tx: true,
    process_rx: true,
    csb_kick: false,
};

impl NetDevice {
    /// Opens the backend and builds the device. `vm` registers the TDT
    /// ioeventfd in CSB mode (without it the kicks exit to userspace).
    pub fn new(
        config: &NetConfig,
        vm: Option<Arc<VmFd>>,
        ram: Arc<GuestRam>,
        irq: Arc<IrqLine>,
        stats: Arc<Stats>,
    ) -> Result<NetDevice, NetError> {
        let port = backend::open(&config.backend, &config.socket, config.mac)?;
        Self::with_port(config, port, vm, ram, irq, stats)
    }

    /// Builds the device over an already open port.
    pub fn with_port(
        config: &NetConfig,
        port: Box<dyn backend::Port>,
        vm: Option<Arc<VmFd>>,
        ram: Arc<GuestRam>,
        irq: Arc<IrqLine>,
        stats: Arc<Stats>,
    ) -> Result<NetDevice, NetError> {
        let mut model_config = E1000Config::new(config.mac).with_csb(config.csb);
        model_config.mitigation = config.mitigation;
        let header = pci_header(&model_config);
        let model = E1000::new(model_config, IntxTrigger(Arc::clone(&irq)), HostClock);
        if config.trace_samples > 0 {
            stats.latency.enable(config.trace_samples);
        }
        let backend = PortBackend::new(port, Arc::clone(&stats));
        let offload = if config.offload {
            Some(Offload::new(Arc::clone(&ram), Arc::clone(&stats)).map_err(NetError::Fd)?)
        } else {
            None
        };
        let call_fds = offload.as_ref().map(|o| [o.rx_call_fd(), o.tx_call_fd()]);
        let device = NetDevice {
            shared: Mutex::new(Shared {
                model,
                backend,
                path: DataPath::Registers,
                armed_deadline: None,
                bar0: Some(u64::from(E1000_BAR0_ADDRESS)),
                tdt_kick: MmioKick::new(vm, 4),
                retired: Vec::new(),
                offload,
            }),
            dma: GuestDma::new(ram),
            irq,
            timer: DeadlineTimer::new().map_err(NetError::Fd)?,
            deferred: EventFd::new(EFD_NONBLOCK).map_err(NetError::Fd)?,
            tdt_kick: EventFd::new(EFD_NONBLOCK).map_err(NetError::Fd)?,
            port_changed: EventFd::new(EFD_NONBLOCK).map_err(NetError::Fd)?,
            offloaded: AtomicBool::new(false),
            call_fds,
            header,
            stats,
            spin: config.spin,
        };
        {
            let mut s = device.lock();
            device.settle(&mut s);
        }
        Ok(device)
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic while holding the lock would be a bug in the model; keep
        // serving rather than poisoning every later access.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The PCI configuration space of the function in its reset state.
    pub fn pci_function(&self) -> PciFunction {
        PciFunction::new(&self.header)
    }

    /// The MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.lock().model.config().mac
    }

    /// The current port's kick eventfd (I/O thread).
    pub fn kick_fd(&self) -> RawFd {
        self.lock().backend.kick_fd()
    }

    /// The current port's control connection to the switch daemon, if any.
    pub fn control_fd(&self) -> Option<RawFd> {
        self.lock().backend.control_fd()
    }

    /// The eventfd written when the port was replaced (I/O thread).
    pub fn port_changed_fd(&self) -> RawFd {
        self.port_changed.as_raw_fd()
    }

    /// Whether the link is up (as the guest sees it in STATUS.LU).
    pub fn link_up(&self) -> bool {
        self.lock().model.link_up()
    }

    /// Puts `port` in place of the current one and sets the link up or down
    /// (a change raises LSC in the guest). The old port is kept until the
    /// I/O thread has taken its kick eventfd out of its epoll
    /// ([`NetDevice::take_retired_ports`]); the work that waited runs.
    pub fn replace_port(&self, port: Box<dyn backend::Port>, link_up: bool) {
        let mut s = self.lock();
        // Only the link watcher replaces the port, when the old port's
        // daemon went away: an offloaded data path is taken back from the
        // CSB without asking it.
        self.abandon_offload(&mut s);
        if let Some(offload) = &mut s.offload {
            // A new port may have a daemon that takes the data path.
            offload.forget_refusal();
        }
        let old = s.backend.replace_port(port);
        s.retired.push(old);
        s.model.set_link(link_up);
        let _ = self.port_changed.write(1);
        self.run(&mut s, ALL_WORK);
    }

    /// I/O thread, after the port changed: the replaced ports (to take out
    /// of the epoll, then drop) and the current port's kick eventfd.
    pub fn take_retired_ports(&self) -> (Vec<Box<dyn backend::Port>>, RawFd) {
        let _ = self.port_changed.read();
        let mut s = self.lock();
        (std::mem::take(&mut s.retired), s.backend.kick_fd())
    }

    /// Runs `f` while no exchange with the switch daemon is in flight (they
    /// run under the device lock): the link watcher reads the control
    /// connection through this, so that a response to a hand-over or a
    /// reclaim is never taken for stray data.
    pub fn without_exchange<R>(&self, f: impl FnOnce() -> R) -> R {
        let _s = self.lock();
        f()
    }

    /// The offload's rx-call and tx-call eventfds, when `offload=on` (I/O
    /// thread).
    pub fn offload_call_fds(&self) -> Option<[RawFd; 2]> {
        self.call_fds
    }

    /// The VM is ending: takes an offloaded data path back, so that the
    /// daemon lets go of guest memory and what it moved is counted in the
    /// final statistics (no-op unless offloaded).
    pub fn end_offload(&self) {
        let mut s = self.lock();
        self.reclaim(&mut s);
    }

    /// Whether the switch daemon walks the rings now (the I/O thread does
    /// not watch the TDT kick meanwhile: the daemon does).
    pub fn offloaded(&self) -> bool {
        self.offloaded.load(Ordering::Acquire)
    }

    /// The eventfd written when the vCPU thread leaves work to the I/O thread.
    pub fn deferred_fd(&self) -> RawFd {
        self.deferred.as_raw_fd()
    }

    /// The eventfd KVM signals on a guest TDT write in CSB mode (I/O thread).
    pub fn tdt_kick_fd(&self) -> RawFd {
        self.tdt_kick.as_raw_fd()
    }

    /// Signals the TDT kick eventfd as KVM does on a guest TDT write (for
    /// test drivers that play the guest without a vCPU).
    pub fn signal_tdt_kick(&self) {
        let _ = self.tdt_kick.write(1);
    }

    /// Where the TDT ioeventfd is registered (guest-physical), if anywhere.
    pub fn tdt_kick_address(&self) -> Option<u64> {
        self.lock().tdt_kick.address()
    }

    /// The moderation timerfd (I/O thread).
    pub fn moderation_timer_fd(&self) -> RawFd {
        self.timer.fd()
    }

    /// The interrupt resample eventfd in level mode (I/O thread).
    pub fn resample_fd(&self) -> Option<RawFd> {
        self.irq.resample_fd().map(|fd| fd.as_raw_fd())
    }

    /// How long the net worker keeps polling after its last work.
    pub fn spin(&self) -> Duration {
        self.spin
    }

    /// Who moves frames now.
    pub fn data_path(&self) -> DataPath {
        self.lock().path
    }

    /// Whether a CSB is mapped (the I/O thread is the net worker then, or
    /// the switch daemon walks the rings).
    pub fn csb_mapped(&self) -> bool {
        matches!(self.data_path(), DataPath::Csb(_) | DataPath::Offloaded(_))
    }

    /// The model's counters of guest errors and refused operations, as JSON.
    pub fn model_errors_json(&self) -> serde_json::Value {
        serde_json::to_value(self.lock().model.errors()).unwrap_or_default()
    }

    /// The name under which an MMIO access at BAR0 `offset` is counted.
    pub fn mmio_name(&self, offset: u64) -> &'static str {
        e1000_register_name(offset)
    }

    /// Applies the PCI command register's INTx disable bit.
    pub fn set_intx_disabled(&self, disabled: bool) {
        self.irq.set_disabled(disabled);
    }

    /// Applies the PCI command register's bus-master bit: no DMA without it.
    /// Setting it again runs the work that waited.
    pub fn set_bus_master(&self, enabled: bool) {
        let mut s = self.lock();
        if !enabled {
            self.reclaim(&mut s);
        }
        let was = s.model.bus_master();
        s.model.set_bus_master(enabled, &self.dma);
        if enabled && !was {
            self.run(&mut s, ALL_WORK);
        }
    }

    /// BAR0 moved (or stopped decoding: `None`); the TDT kick follows it.
    pub fn set_bar0(&self, base: Option<u64>) {
        let mut s = self.lock();
        s.bar0 = base;
        self.follow_data_path(&mut s);
    }

    /// A guest read of BAR `bar` at `offset`; false if the BAR is not ours.
    pub fn mmio_read(&self, bar: usize, offset: u64, data: &mut [u8]) -> bool {
        if bar != 0 {
            return false;
        }
        let mut s = self.lock();
        self.before_offloaded_read(&mut s, registers(offset, data.len()));
        s.model.mmio_read(offset, data);
        // ICR reads lower the line and may let a held-back interrupt through.
        self.settle(&mut s);
        true
    }

    /// A guest write to BAR `bar` at `offset`; runs the work it starts.
    pub fn mmio_write(&self, bar: usize, offset: u64, data: &[u8]) -> bool {
        if bar != 0 {
            return false;
        }
        let mut s = self.lock();
        self.before_offloaded_write(&mut s, registers(offset, data.len()));
        let effects = s.model.mmio_write(offset, data, &self.dma);
        self.follow_data_path(&mut s);
        self.run(&mut s, effects);
        true
    }

    /// A guest read of the I/O BAR (IOADDR/IODATA).
    pub fn io_read(&self, bar: usize, offset: u64, data: &mut [u8]) -> bool {
        if bar != 1 {
            return false;
        }
        let mut s = self.lock();
        if offset == IODATA {
            let register = io_address(&mut s.model);
            self.before_offloaded_read(&mut s, std::iter::once(register));
        }
        s.model.io_read(offset, data);
        self.settle(&mut s);
        true
    }

    /// A guest write to the I/O BAR (IOADDR/IODATA).
    pub fn io_write(&self, bar: usize, offset: u64, data: &[u8]) -> bool {
        if bar != 1 {
            return false;
        }
        let mut s = self.lock();
        if offset == IODATA {
            let register = io_address(&mut s.model);
            self.before_offloaded_write(&mut s, std::iter::once(register));
        }
        let effects = s.model.io_write(offset, data, &self.dma);
        self.follow_data_path(&mut s);
        self.run(&mut s, effects);
        true
    }

    /// I/O thread: the port kicked (RX frames or TX space). Returns true if
    /// the net worker must poll (CSB mode).
    pub fn on_kick(&self) -> bool {
        let mut s = self.lock();
        let tx_was_full = s.backend.tx_full();
        s.backend.on_kick();
        let effects = Effects {
            process_tx: tx_was_full,
            ..ALL_WORK
        };
        self.work_or_wake_worker(&mut s, effects)
    }

    /// I/O thread: the vCPU thread left work (more than it wanted to do
    /// inline, or any work in CSB mode). Returns true if the net worker must
    /// poll (CSB mode).
    pub fn on_deferred(&self) -> bool {
        let _ = self.deferred.read();
        let mut s = self.lock();
        self.work_or_wake_worker(&mut s, ALL_WORK)
    }

    /// I/O thread: the guest wrote TDT through the ioeventfd (a CSB kick).
    /// Returns true if the net worker must poll; if the CSB went away between
    /// the kick and now, transmits by registers.
    pub fn on_tdt_kick(&self) -> bool {
        let kicks = self.tdt_kick.read().unwrap_or(0);
        let mut s = self.lock();
        if let DataPath::Offloaded(_) = s.path {
            // The daemon's kick, read before the I/O thread stopped
            // watching: give it back.
            if kicks > 0 {
                let _ = self.tdt_kick.write(kicks);
            }
            return false;
        }
        self.stats.worker.tx_kicks.add(kicks);
        let effects = Effects {
            process_rx: false,
            ..ALL_WORK
        };
        self.work_or_wake_worker(&mut s, effects)
    }

    /// I/O thread: the moderation timerfd fired.
    pub fn on_moderation_timer(&self) {
        if self.timer.take_expirations() == 0 {
            return;
        }
        self.stats.io_thread.timer_fires.inc();
        let mut s = self.lock();
        s.armed_deadline = None;
        s.model.on_timer(monotonic_ns());
        self.settle(&mut s);
    }

    /// I/O thread: the daemon wrote an offload call eventfd: raises the
    /// causes it stands for; if the guest left CSB mode, takes the data path
    /// back. Returns true if the net worker must poll.
    pub fn on_offload_call(&self) -> bool {
        let mut s = self.lock();
        let Shared { model, offload, .. } = &mut *s;
        if let Some(offload) = offload {
            offload.raise_calls(model);
        }
        if let DataPath::Offloaded(_) = s.path {
            if !s.model.csb_active(&self.dma) {
                self.reclaim(&mut s);
                self.follow_data_path(&mut s);
            }
        }
        self.settle_timer(&mut s);
        matches!(s.path, DataPath::Csb(_))
    }

    /// I/O thread: the port's control connection ended while the data path
    /// was offloaded (the daemon went away): takes the data path back from
    /// the CSB. Returns true if the net worker must poll.
    pub fn on_daemon_gone(&self) -> bool {
        let mut s = self.lock();
        if let DataPath::Offloaded(_) = s.path {
            log::warn!("e1000: the switch daemon went away with the data path; taking it back");
        }
        self.abandon_offload(&mut s);
        matches!(s.path, DataPath::Csb(_))
    }

    /// I/O thread: the resample fd fired (level mode).
    pub fn on_resample(&self) {
        self.irq.on_resample();
    }

    /// The I/O thread's share of an event: in CSB mode, tell the caller to
    /// run the net worker (true); by registers, do the work now (false).
    fn work_or_wake_worker(&self, s: &mut Shared, effects: Effects) -> bool {
        match s.path {
            DataPath::Csb(_) => true,
            DataPath::Offloaded(_) => false,
            DataPath::Registers => {
                self.run_by_registers(s, effects);
                false
            }
        }
    }

    /// Before a register read while offloaded: takes the data path back
    /// unless every register read keeps it offloaded.
    fn before_offloaded_read(&self, s: &mut Shared, mut read: impl Iterator<Item = u32>) {
        if matches!(s.path, DataPath::Offloaded(_))
            && !read.all(|register| access_keeps_offload(register, false))
        {
            self.reclaim(s);
        }
    }

    /// Before a register write while offloaded: takes the data path back
    /// unless every register written keeps it offloaded; a TDT or RDT
    /// write is passed on to the daemon as a kick while the guest stays in
    /// CSB mode (else it is an index again: the data path comes back).
    fn before_offloaded_write(&self, s: &mut Shared, written: impl Iterator<Item = u32>) {
        if !matches!(s.path, DataPath::Offloaded(_)) {
            return;
        }
        let mut kick = false;
        for register in written {
            if !access_keeps_offload(register, true) {
                self.reclaim(s);
                return;
            }
            kick |= matches!(register, e1000_spec::regs::TDT | e1000_spec::regs::RDT);
        }
        if kick {
            if s.model.csb_active(&self.dma) {
                self.stats.offload.kicks_passed.inc();
                let _ = self.tdt_kick.write(1);
            } else {
                self.reclaim(s);
            }
        }
    }

    /// Hands the data path to the switch daemon if `offload=on`, the CSB at
    /// `address` is active and the daemon has not refused (net worker).
    /// True if it did: the worker stops walking the rings.
    fn try_offload(&self, s: &mut Shared, address: u64) -> bool {
        let Shared {
            model,
            backend,
            offload: Some(offload),
            ..
        } = s
        else {
            return false;
        };
        if offload.hand_over(model, backend, &self.dma, &self.tdt_kick)
            != HandoverOutcome::Offloaded
        {
            return false;
        }
        s.path = DataPath::Offloaded(address);
        self.offloaded.store(true, Ordering::Release);
        true
    }

    /// Takes an offloaded data path back from the switch daemon (no-op
    /// otherwise); the net worker resumes.
    fn reclaim(&self, s: &mut Shared) {
        let DataPath::Offloaded(address) = s.path else {
            return;
        };
        let Shared {
            model,
            backend,
            offload,
            ..
        } = s;
        if let Some(offload) = offload {
            offload.reclaim(model, backend, &self.dma);
        }
        self.back_in_csb_mode(s, address);
    }

    /// Takes an offloaded data path back without the daemon, which went
    /// away (no-op unless offloaded).
    fn abandon_offload(&self, s: &mut Shared) {
        let DataPath::Offloaded(address) = s.path else {
            return;
        };
        let Shared { model, offload, .. } = s;
        if let Some(offload) = offload {
            offload.abandon(model, &self.dma);
        }
        self.back_in_csb_mode(s, address);
    }

    /// The data path is the net worker's again: wake it (and the I/O
    /// thread watches the TDT kick again).
    fn back_in_csb_mode(&self, s: &mut Shared, address: u64) {
        s.path = DataPath::Csb(address);
        self.offloaded.store(false, Ordering::Release);
        let _ = self.deferred.write(1);
    }

    /// The one place the data path is decided: after a register write (and
    /// after CSB rounds, which may see guest_csb_on change). A change of
    /// path wakes the I/O thread, which takes over (or hands back) the TX/RX
    /// work. The TDT ioeventfd is registered while the CSB is mapped,
    /// guest_csb_on was set at the last look and BAR0 decodes.
    fn follow_data_path(&self, s: &mut Shared) {
        let path = match s.model.csb_address() {
            Some(address) => DataPath::Csb(address),
            None => DataPath::Registers,
        };
        // Offloaded at the CSB the model has mapped is that CSB's path.
        let current = match s.path {
            DataPath::Offloaded(address) => DataPath::Csb(address),
            other => other,
        };
        if path != current {
            // Only a register write that took the data path back first can
            // remap the CSB; an offloaded path is never left behind.
            self.reclaim(s);
            s.path = path;
            if let Some(offload) = &mut s.offload {
                offload.forget_refusal();
            }
            let _ = self.deferred.write(1);
        }
        self.place_tdt_kick(s);
    }

    /// Registers the TDT ioeventfd while the CSB is mapped, guest_csb_on
    /// was set at the last look and BAR0 decodes; else removes it.
    fn place_tdt_kick(&self, s: &mut Shared) {
        let wanted = match s.bar0 {
            Some(bar0) if s.model.csb_guest_on_seen() => {
                Some(bar0 + u64::from(e1000_spec::regs::TDT))
            }
            _ => None,
        };
        if wanted != s.tdt_kick.address() {
            if let Err(e) = s.tdt_kick.place(&self.tdt_kick, wanted) {
                log::warn!("e1000: TDT ioeventfd at {wanted:x?}: {e}; TDT kicks will exit");
            }
        }
    }

    /// Runs the TX and RX work `effects` asks for: inline by registers, by
    /// waking the net worker in CSB mode; then settles.
    fn run(&self, s: &mut Shared, effects: Effects) {
        match s.path {
            DataPath::Csb(_) => {
                if effects.any() {
                    let _ = self.deferred.write(1);
                }
                self.settle_timer(s);
            }
            DataPath::Offloaded(_) => self.settle_timer(s),
            DataPath::Registers => self.run_by_registers(s, effects),
        }
    }

    /// Register-driven TX and RX work, then settle.
    fn run_by_registers(&self, s: &mut Shared, effects: Effects) {
        let Shared { model, backend, .. } = s;
        if effects.process_tx {
            model.process_tx(&self.dma, backend);
        }
        if effects.process_rx {
            for _ in 0..MAX_RX_ROUNDS {
                if !model.process_rx(&self.dma, backend).more {
                    break;
                }
            }
        }
        self.settle(s);
    }

    /// One bounded round of CSB-mode work (TX up to guest_tdt, RX up to
    /// guest_rdt, due moderation deadlines), by whichever thread holds the
    /// lock: the net worker, or the vCPU thread at a poll-port exit.
    fn csb_round(&self, s: &mut Shared) -> Round {
        let Shared { model, backend, .. } = s;
        let tx = model.process_tx(&self.dma, backend);
        let rx = model.process_rx(&self.dma, backend);
        if let Some(deadline) = model.next_deadline() {
            let now = monotonic_ns();
            if deadline <= now {
                model.on_timer(now);
            }
        }
        self.settle_timer(s);
        self.follow_data_path(s);
        let busy = tx.descriptors > 0 || rx.frames > 0 || rx.dropped > 0;
        self.stats.worker.polls.inc();
        if busy {
            self.stats.worker.busy_polls.inc();
        }
        Round {
            busy,
            rx_waiting: rx.waiting_for_buffers,
        }
    }

    /// The vCPU thread's share of the work (the guest wrote the poll port,
    /// [`crate::devices::poll_port`]): in CSB mode a few rounds of TX and RX
    /// while they move frames (the need-kick flags and the port's kick
    /// requests stay the net worker's), by registers one round. True if
    /// descriptors or frames moved.
    pub fn poll_once(&self) -> bool {
        let mut s = self.lock();
        match s.path {
            DataPath::Csb(_) => {
                let mut busy = false;
                for _ in 0..VCPU_POLL_ROUNDS {
                    if !self.csb_round(&mut s).busy {
                        break;
                    }
                    busy = true;
                }
                if busy {
                    self.stats.worker.vcpu_polls.inc();
                }
                busy
            }
            DataPath::Offloaded(_) => {
                // The switch moves the frames; the guest polls its ring
                // between these exits. Give the CPU to whoever the guest
                // waits for (the switch's thread, another VM) if it is
                // runnable here: on two cores a spinning vCPU starves them.
                drop(s);
                std::thread::yield_now();
                false
            }
            DataPath::Registers => {
                let moved = || self.stats.tx.packets.get() + self.stats.rx.packets.get();
                let before = moved();
                self.run_by_registers(&mut s, ALL_WORK);
                moved() != before
            }
        }
    }

    /// Re-arms the moderation timerfd if the model's deadline changed.
    fn settle_timer(&self, s: &mut Shared) {
        let deadline = s.model.next_deadline();
        if deadline != s.armed_deadline {
            let armed = match deadline {
                Some(at) => self.timer.arm_at(at),
                None => self.timer.disarm(),
            };
            if let Err(e) = armed {
                log::error!("e1000 moderation timer: {e}");
            }
            s.armed_deadline = deadline;
        }
    }

    /// Re-arms the moderation timer; by registers, also asks the port for
    /// the kicks the device now needs, and if the port is already ready,
    /// processes again (a bounded number of rounds, then defers to the I/O
    /// thread). In CSB mode the net worker arms the port when it sleeps.
    fn settle(&self, s: &mut Shared) {
        self.settle_timer(s);
        if s.path != DataPath::Registers {
            return;
        }
        for _ in 0..MAX_SETTLE_ROUNDS {
            if !s.backend.arm() {
                return;
            }
            // Frames or space arrived while arming: process them now.
            let Shared { model, backend, .. } = s;
            let tx_was_full = backend.tx_full();
            backend.disarm();
            if tx_was_full {
                model.process_tx(&self.dma, backend);
            }
            model.process_rx(&self.dma, backend);
            self.settle_timer(s);
        }
        let _ = self.deferred.write(1);
    }
}

/// The net worker's view of the device (CSB mode), called by the I/O thread.
impl Pollable for NetDevice {
    fn begin_polling(&self) {
        let mut s = self.lock();
        if let DataPath::Offloaded(_) = s.path {
            return;
        }
        s.model.csb_enter_polling(&self.dma);
        s.backend.disarm();
    }

    fn poll(&self) -> Option<Round> {
        let mut s = self.lock();
        match s.path {
            DataPath::Csb(address) => {
                if self.try_offload(&mut s, address) {
                    return None;
                }
                Some(self.csb_round(&mut s))
            }
            DataPath::Offloaded(_) => None,
            DataPath::Registers => {
                // Back to register-driven mode: arm the port as that mode does.
                self.settle(&mut s);
                None
            }
        }
    }

    fn try_sleep(&self, rx_waiting: bool) -> bool {
        let mut s = self.lock();
        match s.path {
            DataPath::Registers => {
                self.settle(&mut s);
                return true;
            }
            DataPath::Offloaded(_) => return true,
            DataPath::Csb(_) => {}
        }
        if !s.model.csb_prepare_sleep(&self.dma, rx_waiting) {
            self.stats.worker.sleep_aborts.inc();
            return false;
        }
        if s.backend.arm() {
            // The port has frames or space already: keep polling.
            s.model.csb_enter_polling(&self.dma);
            s.backend.disarm();
            self.stats.worker.sleep_aborts.inc();
            return false;
        }
        self.stats.worker.sleeps.inc();
        true
    }
}

/// BAR1 offset of IODATA (IOADDR is at 0).
const IODATA: u64 = 4;

/// The BAR0 register IODATA reaches now (IOADDR's value; reading it has no
/// side effect).
fn io_address<T: Trigger, C: Clock>(model: &mut E1000<T, C>) -> u32 {
    let mut value = [0u8; 4];
    model.io_read(0, &mut value);
    u32::from_le_bytes(value)
}

/// The 32-bit registers a BAR0 access of `len` bytes at `offset` reaches
/// (an aligned 64-bit access reaches two).
fn registers(offset: u64, len: usize) -> impl Iterator<Item = u32> {
    let first = (offset & !3) as u32;
    let second = (len == 8 && offset.is_multiple_of(4)).then_some(first.wrapping_add(4));
    std::iter::once(first).chain(second)
}

/// The PCI identity of the e1000 function: 8086:100E, Ethernet controller,
/// BAR0 128 KiB MMIO, BAR1 64 I/O ports, INTA# on line 11, the subsystem ids
/// from the model's configuration; decoding and bus mastering enabled as
/// firmware would leave them.
fn pci_header(model: &E1000Config) -> PciHeader {
    let mut bars = [None; config::NUM_BARS];
    bars[0] = Some(BarSpec {
        kind: BarKind::Mmio32,
        size: e1000_spec::regs::MMIO_SIZE,
        address: E1000_BAR0_ADDRESS,
    });
    bars[1] = Some(BarSpec {
        kind: BarKind::Io,
        size: e1000_spec::regs::IO_SIZE,
        address: E1000_BAR1_ADDRESS,
    });
    PciHeader {
        vendor_id: e1000_spec::pci::VENDOR_ID,
        device_id: e1000_spec::pci::DEVICE_ID,
        revision: 3,
        class_code: 0x02_00_00,
        subsystem_vendor_id: model.subsystem_vendor_id,
        subsystem_id: model.subsystem_id,
        command: config::CMD_IO | config::CMD_MEMORY | config::CMD_BUS_MASTER,
        interrupt_pin: 1,
        interrupt_line: E1000_INTERRUPT_LINE,
        bars,
    }
}
