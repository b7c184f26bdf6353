//! The machine's devices and the two buses that route the vCPU's port I/O and
//! MMIO exits to them. Owned by the vCPU thread; only the e1000 model inside
//! [`NetDevice`] is shared (with the I/O thread).

use std::sync::Arc;

use crate::bus::Bus;
use crate::devices::exit_port::{ExitPort, EXIT_PORT};
use crate::devices::idle_port::{IdlePort, IDLE_PORT};
use crate::devices::pci::config::CMD_BUS_MASTER;
use crate::devices::pci::{
    BarKind, BarMapping, ConfigWrite, PciConfigIo, PciSlot, CONFIG_ADDRESS_PORT, CONFIG_PORTS_LEN,
};
use crate::devices::poll_port::{PollPort, POLL_PORT};
use crate::devices::serial::{SerialPort, SERIAL_PORT_BASE, SERIAL_PORT_LEN};
use crate::net::NetDevice;
use crate::stats::Stats;

/// PCI device number of the e1000 on bus 0 (as in QEMU's default layout).
pub const E1000_PCI_SLOT: PciSlot = 3;

/// Targets on the port I/O bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PioTarget {
    Serial,
    Exit,
    Idle,
    Poll,
    PciConfig,
    /// An I/O BAR of a PCI function: (slot, BAR index).
    Bar(PciSlot, usize),
}

/// Targets on the MMIO bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MmioTarget {
    /// A memory BAR of a PCI function: (slot, BAR index).
    Bar(PciSlot, usize),
}

/// What the vCPU loop must do after an access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoAction {
    /// Re-enter the guest.
    Continue,
    /// The guest asked to exit with this code.
    Exit(u8),
    /// The guest is idle: halt the vCPU until an interrupt.
    Idle,
    /// The guest waits for its NIC: run the device's work in this thread
    /// ([`Platform::poll_devices`]), then re-enter the guest.
    Poll,
}

/// The e1000 as a PCI function: its model and the BARs currently on the buses.
struct NetFunction {
    device: Arc<NetDevice>,
    mapped: [Option<BarMapping>; 2],
}

/// Devices and buses.
pub struct Platform {
    serial: SerialPort,
    exit: ExitPort,
    idle: IdlePort,
    poll: PollPort,
    pci: PciConfigIo,
    pio: Bus<PioTarget>,
    mmio: Bus<MmioTarget>,
    net: Option<NetFunction>,
    stats: Arc<Stats>,
}

impl Platform {
    /// The fixed devices on the port bus, and the e1000 (if any) on PCI.
    pub fn new(serial: SerialPort, net: Option<Arc<NetDevice>>, stats: Arc<Stats>) -> Platform {
        let mut pio = Bus::new();
        let fixed = [
            (SERIAL_PORT_BASE, SERIAL_PORT_LEN, PioTarget::Serial),
            (EXIT_PORT, 1, PioTarget::Exit),
            (IDLE_PORT, 1, PioTarget::Idle),
            (POLL_PORT, 1, PioTarget::Poll),
            (CONFIG_ADDRESS_PORT, CONFIG_PORTS_LEN, PioTarget::PciConfig),
        ];
        for (base, len, target) in fixed {
            pio.insert(u64::from(base), u64::from(len), target)
                .expect("fixed ports do not overlap");
        }
        let mut platform = Platform {
            serial,
            exit: ExitPort,
            idle: IdlePort,
            poll: PollPort,
            pci: PciConfigIo::new(),
            pio,
            mmio: Bus::new(),
            net: None,
            stats,
        };
        if let Some(device) = net {
            platform.pci.add(E1000_PCI_SLOT, device.pci_function());
            platform.net = Some(NetFunction {
                device,
                mapped: [None; 2],
            });
            platform.remap_bars(E1000_PCI_SLOT);
        }
        platform
    }

    /// The PCI configuration space (for inspection).
    pub fn pci(&self) -> &PciConfigIo {
        &self.pci
    }

    /// Flushes serial output (at exit).
    pub fn flush(&mut self) {
        self.serial.flush();
    }

    /// A guest `in` of `data.len()` bytes from `port`.
    pub fn pio_read(&mut self, port: u16, data: &mut [u8]) {
        self.stats.with_exits(|e| {
            e.total += 1;
            *e.pio.entry(port).or_default() += 1;
        });
        let handled = match self.pio.lookup(u64::from(port)) {
            Some((PioTarget::Serial, offset)) => {
                self.serial.read(offset, data);
                true
            }
            Some((PioTarget::Exit, _)) => {
                self.exit.read(data);
                true
            }
            Some((PioTarget::Idle, _)) => {
                self.idle.read(data);
                true
            }
            Some((PioTarget::Poll, _)) => {
                self.poll.read(data);
                true
            }
            Some((PioTarget::PciConfig, offset)) => self.pci.read(offset, data),
            Some((PioTarget::Bar(_, bar), offset)) => match &self.net {
                Some(net) => net.device.io_read(bar, offset, data),
                None => false,
            },
            None => false,
        };
        if !handled {
            data.fill(0xff);
            self.stats.guest_errors.ignored_pio.inc();
        }
    }

    /// A guest `out` of `data` to `port`.
    pub fn pio_write(&mut self, port: u16, data: &[u8]) -> IoAction {
        self.stats.with_exits(|e| {
            e.total += 1;
            *e.pio.entry(port).or_default() += 1;
        });
        let (handled, action) = match self.pio.lookup(u64::from(port)) {
            Some((PioTarget::Serial, offset)) => {
                self.serial.write(offset, data);
                (true, IoAction::Continue)
            }
            Some((PioTarget::Exit, _)) => match self.exit.write(data) {
                Some(code) => (true, IoAction::Exit(code)),
                None => (false, IoAction::Continue),
            },
            Some((PioTarget::Idle, _)) => {
                self.idle.write(data);
                (true, IoAction::Idle)
            }
            Some((PioTarget::Poll, _)) => (true, IoAction::Poll),
            Some((PioTarget::PciConfig, offset)) => match self.pci.write(offset, data) {
                ConfigWrite::Changed(slot) => {
                    self.remap_bars(slot);
                    (true, IoAction::Continue)
                }
                ConfigWrite::Done => (true, IoAction::Continue),
                ConfigWrite::Ignored => (false, IoAction::Continue),
            },
            Some((PioTarget::Bar(_, bar), offset)) => match &self.net {
                Some(net) => (net.device.io_write(bar, offset, data), IoAction::Continue),
                None => (false, IoAction::Continue),
            },
            None => (false, IoAction::Continue),
        };
        if !handled {
            self.stats.guest_errors.ignored_pio.inc();
        }
        action
    }

    /// Runs one round of the devices' work in the calling (vCPU) thread:
    /// the e1000's TX and RX ([`NetDevice::poll_once`]). True if frames or
    /// descriptors moved.
    pub fn poll_devices(&self) -> bool {
        self.net.as_ref().is_some_and(|net| net.device.poll_once())
    }

    /// A guest MMIO read at `addr`.
    pub fn mmio_read(&mut self, addr: u64, data: &mut [u8]) {
        match (self.mmio.lookup(addr), &self.net) {
            (Some((MmioTarget::Bar(_, bar), offset)), Some(net)) => {
                let name = net.device.mmio_name(offset);
                self.stats.with_exits(|e| {
                    e.total += 1;
                    *e.mmio.entry(name).or_default() += 1;
                });
                if !net.device.mmio_read(bar, offset, data) {
                    self.stats.guest_errors.ignored_mmio.inc();
                }
            }
            _ => {
                log::debug!("MMIO read of {} bytes at unassigned {addr:#x}", data.len());
                self.stats.with_exits(|e| {
                    e.total += 1;
                    *e.mmio.entry("unassigned").or_default() += 1;
                });
                self.stats.guest_errors.ignored_mmio.inc();
                data.fill(0xff);
            }
        }
    }

    /// A guest MMIO write at `addr`.
    pub fn mmio_write(&mut self, addr: u64, data: &[u8]) {
        match (self.mmio.lookup(addr), &self.net) {
            (Some((MmioTarget::Bar(_, bar), offset)), Some(net)) => {
                let name = net.device.mmio_name(offset);
                self.stats.with_exits(|e| {
                    e.total += 1;
                    *e.mmio.entry(name).or_default() += 1;
                });
                if !net.device.mmio_write(bar, offset, data) {
                    self.stats.guest_errors.ignored_mmio.inc();
                }
            }
            _ => {
                log::debug!("MMIO write of {data:x?} at unassigned {addr:#x}");
                self.stats.with_exits(|e| {
                    e.total += 1;
                    *e.mmio.entry("unassigned").or_default() += 1;
                });
                self.stats.guest_errors.ignored_mmio.inc();
            }
        }
    }

    /// Re-reads the BARs and command register of the function at `slot`,
    /// moves its ranges on the buses to match, and tells the device its
    /// INTx-disable and bus-master bits and where BAR0 now is.
    fn remap_bars(&mut self, slot: PciSlot) {
        let Some(net) = self.net.as_mut().filter(|_| slot == E1000_PCI_SLOT) else {
            return;
        };
        let Some(function) = self.pci.function(slot) else {
            return;
        };
        net.device.set_intx_disabled(function.intx_disabled());
        net.device
            .set_bus_master(function.command() & CMD_BUS_MASTER != 0);
        for (bar, mapped) in net.mapped.iter_mut().enumerate() {
            let wanted = function.bar_mapping(bar);
            if wanted == *mapped {
                continue;
            }
            if let Some(old) = mapped.take() {
                match old.kind {
                    BarKind::Mmio32 => {
                        self.mmio.remove(old.base);
                    }
                    BarKind::Io => {
                        self.pio.remove(old.base);
                    }
                }
            }
            if let Some(new) = wanted {
                let inserted = match new.kind {
                    BarKind::Mmio32 => {
                        self.mmio
                            .insert(new.base, new.size, MmioTarget::Bar(slot, bar))
                    }
                    BarKind::Io => self
                        .pio
                        .insert(new.base, new.size, PioTarget::Bar(slot, bar)),
                };
                match inserted {
                    Ok(()) => *mapped = Some(new),
                    // Placed over a fixed device: it stays unmapped until moved.
                    Err(_) => self.stats.guest_errors.bar_conflicts.inc(),
                }
            }
        }
        net.device.set_bar0(net.mapped[0].map(|m| m.base));
    }
}
