//! The platform's PCI and bus dispatch as the vCPU thread drives them: bus 0
//! scan, the e1000's identity, BAR sizing and relocation moving the MMIO and
//! I/O dispatch, the command register, and garbage accesses being ignored.

use std::sync::Arc;

use vm_memory::Bytes;

use e1000_spec::csb::{CSBAH, CSBAL};
use e1000_spec::regs as r;
use kvm_ioctls::Kvm;
use vmm::devices::serial::SerialPort;
use vmm::irq::{IrqLine, IrqMode};
use vmm::memory::GuestRam;
use vmm::net::backend::{sink::SinkPort, BackendSpec};
use vmm::net::{NetConfig, NetDevice};
use vmm::platform::{IoAction, Platform, E1000_PCI_SLOT};
use vmm::stats::Stats;

struct Rig {
    platform: Platform,
    stats: Arc<Stats>,
    net: Arc<NetDevice>,
    ram: Arc<GuestRam>,
    _vm: Arc<kvm_ioctls::VmFd>,
}

fn rig() -> Option<Rig> {
    rig_with(false)
}

fn rig_with(csb: bool) -> Option<Rig> {
    let Ok(kvm) = Kvm::new() else {
        testbed::skip_or_fail("no /dev/kvm");
        return None;
    };
    let vm = Arc::new(kvm.create_vm().unwrap());
    vm.create_irq_chip().unwrap();
    let ram = Arc::new(GuestRam::new(4 << 20).unwrap());
    let stats = Arc::new(Stats::new());
    let irq = Arc::new(IrqLine::new(&vm, 11, IrqMode::Edge, Arc::clone(&stats)).unwrap());
    let mut config = NetConfig::new(
        BackendSpec::Sink,
        "/nonexistent".into(),
        [0x52, 0x54, 0, 1, 2, 3],
    );
    config.csb = csb;
    let port = Box::new(SinkPort::new().unwrap());
    let net = NetDevice::with_port(
        &config,
        port,
        Some(Arc::clone(&vm)),
        Arc::clone(&ram),
        irq,
        Arc::clone(&stats),
    )
    .unwrap();
    let net = Arc::new(net);
    let serial = SerialPort::new(&vm, Box::new(std::io::sink()), Arc::clone(&stats)).unwrap();
    let platform = Platform::new(serial, Some(Arc::clone(&net)), Arc::clone(&stats));
    Some(Rig {
        platform,
        stats,
        net,
        ram,
        _vm: vm,
    })
}

impl Rig {
    fn cfg_read(&mut self, dev: u8, reg: u8) -> u32 {
        let addr = 0x8000_0000u32 | (u32::from(dev) << 11) | u32::from(reg);
        self.platform.pio_write(0xCF8, &addr.to_le_bytes());
        let mut d = [0u8; 4];
        self.platform.pio_read(0xCFC, &mut d);
        u32::from_le_bytes(d)
    }

    fn cfg_write(&mut self, dev: u8, reg: u8, value: u32) {
        let addr = 0x8000_0000u32 | (u32::from(dev) << 11) | u32::from(reg);
        self.platform.pio_write(0xCF8, &addr.to_le_bytes());
        self.platform.pio_write(0xCFC, &value.to_le_bytes());
    }

    fn mmio32(&mut self, addr: u64) -> u32 {
        let mut d = [0u8; 4];
        self.platform.mmio_read(addr, &mut d);
        u32::from_le_bytes(d)
    }

    fn mmio_write32(&mut self, addr: u64, value: u32) {
        self.platform.mmio_write(addr, &value.to_le_bytes());
    }

    fn io32(&mut self, port: u16) -> u32 {
        let mut d = [0u8; 4];
        self.platform.pio_read(port, &mut d);
        u32::from_le_bytes(d)
    }
}

#[test]
fn bus0_scan_finds_host_bridge_and_e1000() {
    let Some(mut rig) = rig() else {
        return;
    };
    let found: Vec<(u8, u32)> = (0..32)
        .map(|dev| (dev, rig.cfg_read(dev, 0)))
        .filter(|(_, id)| *id != u32::MAX)
        .collect();
    assert_eq!(found, vec![(0, 0x1237_8086), (E1000_PCI_SLOT, 0x100E_8086)]);
    let dev = E1000_PCI_SLOT;
    assert_eq!(
        rig.cfg_read(dev, 0x08) >> 8,
        0x02_00_00,
        "Ethernet controller"
    );
    assert_eq!(
        rig.cfg_read(dev, 0x2C),
        0x001E_8086,
        "subsystem ids from the model"
    );
    assert_eq!(rig.cfg_read(dev, 0x3C) & 0xffff, 0x010B, "pin A, line 11");
    assert_eq!(rig.cfg_read(dev, 0x10), 0xFEB0_0000);
    assert_eq!(rig.cfg_read(dev, 0x14), 0xC001);
    assert_eq!(
        rig.cfg_read(dev, 0x04) & 0x7,
        0x7,
        "I/O, memory, bus master on"
    );
}

#[test]
fn bars_size_and_relocate_with_the_dispatch() {
    let Some(mut rig) = rig() else {
        return;
    };
    let dev = E1000_PCI_SLOT;
    // STATUS (link up) through BAR0 at its reset address.
    let status = rig.mmio32(0xFEB0_0000 + u64::from(r::STATUS));
    assert_ne!(status & 0x2, 0, "link up: {status:#x}");
    // Sizing.
    rig.cfg_write(dev, 0x10, u32::MAX);
    assert_eq!(rig.cfg_read(dev, 0x10), 0xFFFE_0000, "128 KiB memory BAR");
    rig.cfg_write(dev, 0x14, u32::MAX);
    assert_eq!(rig.cfg_read(dev, 0x14), 0xFFFF_FFC1, "64-port I/O BAR");
    assert_eq!(
        rig.mmio32(0xFEB0_0000 + u64::from(r::STATUS)),
        u32::MAX,
        "unmapped while sizing"
    );
    // Relocate both.
    rig.cfg_write(dev, 0x10, 0xE000_0000);
    rig.cfg_write(dev, 0x14, 0xD000);
    assert_eq!(rig.mmio32(0xE000_0000 + u64::from(r::STATUS)), status);
    assert_eq!(rig.mmio32(0xFEB0_0000 + u64::from(r::STATUS)), u32::MAX);
    rig.platform.pio_write(0xD000, &r::STATUS.to_le_bytes());
    assert_eq!(rig.io32(0xD004), status, "IOADDR/IODATA at the new I/O BAR");
    assert_eq!(rig.io32(0xC004), u32::MAX, "old I/O BAR gone");
    // Memory decoding off: BAR0 stops answering, BAR1 still does.
    rig.cfg_write(dev, 0x04, 0x1);
    assert_eq!(rig.mmio32(0xE000_0000 + u64::from(r::STATUS)), u32::MAX);
    assert_eq!(rig.io32(0xD004), status);
    rig.cfg_write(dev, 0x04, 0x7);
    assert_eq!(rig.mmio32(0xE000_0000 + u64::from(r::STATUS)), status);
    // A BAR moved over the serial port does not steal it.
    rig.cfg_write(dev, 0x14, 0x3C0);
    assert_eq!(rig.stats.guest_errors.bar_conflicts.get(), 1);
    let exits = rig.stats.exits_snapshot();
    assert!(
        exits.mmio.get("e1000.STATUS").copied().unwrap_or(0) >= 3,
        "{:?}",
        exits.mmio
    );
}

#[test]
fn garbage_port_accesses_are_ignored_and_counted() {
    let Some(mut rig) = rig() else {
        return;
    };
    let before = rig.stats.guest_errors.ignored_pio.get();
    let mut d = [0u8; 4];
    rig.platform.pio_read(0x1234, &mut d);
    assert_eq!(d, [0xff; 4]);
    assert_eq!(rig.platform.pio_write(0x80, &[1]), IoAction::Continue);
    assert_eq!(
        rig.platform.pio_write(0xCF9, &[6]),
        IoAction::Continue,
        "reset control ignored"
    );
    let mut w = [0u8; 2];
    rig.platform.pio_read(0xCFF, &mut w);
    assert_eq!(rig.stats.guest_errors.ignored_pio.get(), before + 4);
    assert_eq!(rig.platform.pio_write(0x502, &[0]), IoAction::Idle);
    assert_eq!(rig.platform.pio_write(0x503, &[0]), IoAction::Poll);
    let mut b = [0xAAu8];
    rig.platform.pio_read(0x503, &mut b);
    assert_eq!(b, [0], "the poll port reads 0");
    assert_eq!(rig.stats.guest_errors.ignored_pio.get(), before + 4);
    assert_eq!(rig.platform.pio_write(0x501, &[9, 9]), IoAction::Exit(9));
    rig.platform.mmio_write(0xDEAD_0000, &[1, 2, 3, 4]);
    assert_eq!(rig.stats.guest_errors.ignored_mmio.get(), 1);
}

const BAR0: u64 = 0xFEB0_0000;

#[test]
fn csb_is_advertised_and_its_tdt_kick_follows_bar0() {
    let Some(mut rig) = rig_with(true) else {
        return;
    };
    let dev = E1000_PCI_SLOT;
    assert_eq!(rig.cfg_read(dev, 0x2C), 0x1101_8086, "CSB subsystem id");
    // The guest sets guest_csb_on in its CSB page, then writes CSBAH, CSBAL.
    let csb = 0x3000u64;
    rig.ram
        .memory()
        .write_obj(1u32, vm_memory::GuestAddress(csb + 12))
        .unwrap();
    rig.mmio_write32(BAR0 + u64::from(CSBAH), 0);
    rig.mmio_write32(BAR0 + u64::from(CSBAL), csb as u32);
    assert_eq!(rig.mmio32(BAR0 + u64::from(CSBAL)), csb as u32);
    assert!(rig.net.csb_mapped());
    assert_eq!(
        rig.net.tdt_kick_address(),
        Some(BAR0 + 0x3818),
        "ioeventfd on TDT"
    );
    // BAR0 moves: the kick moves with it; decoding off: no kick.
    rig.cfg_write(dev, 0x10, 0xE000_0000);
    assert_eq!(rig.net.tdt_kick_address(), Some(0xE000_3818));
    rig.cfg_write(dev, 0x04, 0x5);
    assert_eq!(rig.net.tdt_kick_address(), None);
    rig.cfg_write(dev, 0x04, 0x7);
    assert_eq!(rig.net.tdt_kick_address(), Some(0xE000_3818));
    // CSB off again by writing 0.
    rig.mmio_write32(0xE000_0000 + u64::from(CSBAL), 0);
    assert!(!rig.net.csb_mapped());
    assert_eq!(rig.net.tdt_kick_address(), None);
    // Without the extension the registers do not exist.
    let Some(mut plain) = rig_with(false) else {
        return;
    };
    plain.mmio_write32(BAR0 + u64::from(CSBAL), csb as u32);
    assert_eq!(plain.mmio32(BAR0 + u64::from(CSBAL)), 0);
    assert!(!plain.net.csb_mapped());
}

#[test]
fn no_dma_without_bus_mastering() {
    let Some(mut rig) = rig() else {
        return;
    };
    let dev = E1000_PCI_SLOT;
    let ram = Arc::clone(&rig.ram);
    let mem = ram.memory();
    let (ring, buf) = (0x10000u64, 0x20000u64);
    mem.write_slice(&[0xAB; 60], vm_memory::GuestAddress(buf))
        .unwrap();
    let mut desc = [0u8; 16];
    desc[..8].copy_from_slice(&buf.to_le_bytes());
    desc[8] = 60;
    desc[11] = 0x01 | 0x08; // EOP | RS
    mem.write_slice(&desc, vm_memory::GuestAddress(ring))
        .unwrap();
    for (reg, value) in [
        (r::TDBAL, ring as u32),
        (r::TDBAH, 0),
        (r::TDLEN, 128),
        (r::TDH, 0),
        (r::TCTL, 0x2),
    ] {
        rig.mmio_write32(BAR0 + u64::from(reg), value);
    }
    // Bus mastering off: the TDT write moves nothing.
    rig.cfg_write(dev, 0x04, 0x3);
    rig.mmio_write32(BAR0 + u64::from(r::TDT), 1);
    assert_eq!(rig.stats.tx.packets.get(), 0);
    assert_eq!(rig.mmio32(BAR0 + u64::from(r::TDH)), 0);
    let mut status = [0u8; 1];
    mem.read_slice(&mut status, vm_memory::GuestAddress(ring + 12))
        .unwrap();
    assert_eq!(status[0], 0, "no descriptor write-back");
    let errors = rig.net.model_errors_json();
    assert_eq!(errors["dma_refused_bus_master_off"], 1, "{errors}");
    // Back on: the waiting frame goes.
    rig.cfg_write(dev, 0x04, 0x7);
    assert_eq!(rig.stats.tx.packets.get(), 1);
    assert_eq!(rig.mmio32(BAR0 + u64::from(r::TDH)), 1);
}
