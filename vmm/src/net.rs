//! The e1000 NIC as the VMM runs it: the device model, its backend and its
//! DMA, shared by the vCPU thread (register accesses, and the TX/RX work they
//! start) and the I/O thread (switch kicks, moderation timer) behind one
//! mutex, held for one batch at a time.
//!
//! After every piece of work [`NetDevice`] settles the device: it re-arms the
//! moderation timerfd when the model's next deadline changed, and asks the
//! port for the kicks it now needs (RX when the port ran dry, TX space when
//! it was full) so that the I/O thread sleeps only when nothing is pending.

use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use thiserror::Error;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::backend::{self, BackendError, BackendSpec, PortBackend};
use crate::devices::pci::{config, BarKind, BarSpec, PciFunction, PciHeader};
use crate::dma::GuestDma;
use crate::e1000::{self, Clock, E1000Config, Effects, Trigger, E1000};
use crate::irq::IrqLine;
use crate::memory::GuestRam;
use crate::register_names::e1000_register_name;
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
}

/// Why the NIC could not be created.
#[derive(Debug, Error)]
pub enum NetError {
    /// The backend port.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// timerfd or eventfd creation.
    #[error("cannot create the e1000's timer or eventfd: {0}")]
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

/// What the mutex protects.
struct Shared {
    model: E1000<IntxTrigger, HostClock>,
    backend: PortBackend,
    /// The deadline the timerfd is armed for.
    armed_deadline: Option<u64>,
}

/// The e1000 shared by the vCPU and I/O threads.
pub struct NetDevice {
    shared: Mutex<Shared>,
    dma: GuestDma,
    irq: Arc<IrqLine>,
    timer: DeadlineTimer,
    /// Written when work is left for the I/O thread.
    deferred: EventFd,
    kick_fd: RawFd,
    header: PciHeader,
    stats: Arc<Stats>,
}

impl NetDevice {
    /// Opens the backend and builds the device.
    pub fn new(
        config: &NetConfig,
        ram: Arc<GuestRam>,
        irq: Arc<IrqLine>,
        stats: Arc<Stats>,
    ) -> Result<NetDevice, NetError> {
        let port = backend::open(&config.backend, &config.socket)?;
        Self::with_port(config, port, ram, irq, stats)
    }

    /// Builds the device over an already open port.
    pub fn with_port(
        config: &NetConfig,
        port: Box<dyn backend::PortIo>,
        ram: Arc<GuestRam>,
        irq: Arc<IrqLine>,
        stats: Arc<Stats>,
    ) -> Result<NetDevice, NetError> {
        let mut model_config = E1000Config::new(config.mac);
        model_config.mitigation = config.mitigation;
        let header = pci_header(&model_config);
        let model = E1000::new(model_config, IntxTrigger(Arc::clone(&irq)), HostClock);
        let backend = PortBackend::new(port, Arc::clone(&stats));
        let kick_fd = backend.kick_fd();
        let device = NetDevice {
            shared: Mutex::new(Shared {
                model,
                backend,
                armed_deadline: None,
            }),
            dma: GuestDma::new(ram),
            irq,
            timer: DeadlineTimer::new().map_err(NetError::Fd)?,
            deferred: EventFd::new(EFD_NONBLOCK).map_err(NetError::Fd)?,
            kick_fd,
            header,
            stats,
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

    /// The port's kick eventfd (I/O thread).
    pub fn kick_fd(&self) -> RawFd {
        self.kick_fd
    }

    /// The eventfd written when the vCPU thread leaves work to the I/O thread.
    pub fn deferred_fd(&self) -> RawFd {
        self.deferred.as_raw_fd()
    }

    /// The moderation timerfd (I/O thread).
    pub fn moderation_timer_fd(&self) -> RawFd {
        self.timer.fd()
    }

    /// The interrupt resample eventfd in level mode (I/O thread).
    pub fn resample_fd(&self) -> Option<RawFd> {
        self.irq.resample_fd().map(|fd| fd.as_raw_fd())
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

    /// A guest read of BAR `bar` at `offset`; false if the BAR is not ours.
    pub fn mmio_read(&self, bar: usize, offset: u64, data: &mut [u8]) -> bool {
        if bar != 0 {
            return false;
        }
        let mut s = self.lock();
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
        let effects = s.model.mmio_write(offset, data);
        self.run(&mut s, effects);
        true
    }

    /// A guest read of the I/O BAR (IOADDR/IODATA).
    pub fn io_read(&self, bar: usize, offset: u64, data: &mut [u8]) -> bool {
        if bar != 1 {
            return false;
        }
        let mut s = self.lock();
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
        let effects = s.model.io_write(offset, data);
        self.run(&mut s, effects);
        true
    }

    /// I/O thread: the port kicked (RX frames or TX space).
    pub fn on_kick(&self) {
        let mut s = self.lock();
        let tx_was_full = s.backend.tx_full();
        s.backend.on_kick();
        let effects = Effects {
            process_tx: tx_was_full,
            process_rx: true,
        };
        self.run(&mut s, effects);
    }

    /// I/O thread: the vCPU thread left work (more than it wanted to do inline).
    pub fn on_deferred(&self) {
        let _ = self.deferred.read();
        let mut s = self.lock();
        let effects = Effects {
            process_tx: true,
            process_rx: true,
        };
        self.run(&mut s, effects);
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

    /// I/O thread: the resample fd fired (level mode).
    pub fn on_resample(&self) {
        self.irq.on_resample();
    }

    /// Runs the TX and RX work `effects` asks for, then settles.
    fn run(&self, s: &mut Shared, effects: Effects) {
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

    /// Re-arms the moderation timer if its deadline changed, and asks the
    /// port for the kicks the device now needs; if the port is already ready,
    /// processes again (a bounded number of rounds, then defers).
    fn settle(&self, s: &mut Shared) {
        for _ in 0..MAX_SETTLE_ROUNDS {
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
        }
        let _ = self.deferred.write(1);
    }
}

/// The PCI identity of the e1000 function: 8086:100E, Ethernet controller,
/// BAR0 128 KiB MMIO, BAR1 64 I/O ports, INTA# on line 11, the subsystem ids
/// from the model's configuration; decoding and bus mastering enabled as
/// firmware would leave them.
fn pci_header(model: &E1000Config) -> PciHeader {
    let mut bars = [None; config::NUM_BARS];
    bars[0] = Some(BarSpec {
        kind: BarKind::Mmio32,
        size: e1000::registers::MMIO_SIZE,
        address: E1000_BAR0_ADDRESS,
    });
    bars[1] = Some(BarSpec {
        kind: BarKind::Io,
        size: 64,
        address: E1000_BAR1_ADDRESS,
    });
    PciHeader {
        vendor_id: e1000::VENDOR_ID,
        device_id: e1000::DEVICE_ID,
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
