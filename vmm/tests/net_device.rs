//! The e1000 as the VMM runs it (model + DMA over guest RAM + port backend +
//! I/O thread + irqfd), driven by a test that plays the guest driver: it
//! writes descriptor rings into guest RAM and the registers through the same
//! entry points the vCPU thread uses.

use std::sync::Arc;
use std::time::{Duration, Instant};

use e1000_spec::regs as r;
use kvm_ioctls::{Kvm, VmFd};
use vm_memory::{Bytes, GuestAddress};
use vmm::io_thread::{IoSources, IoThread};
use vmm::irq::{IrqLine, IrqMode};
use vmm::memory::GuestRam;
use vmm::net::backend::{pong::PongPort, sink::SinkPort, BackendSpec, Port};
use vmm::net::{NetConfig, NetDevice};
use vmm::stats::Stats;

const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
const PEER: [u8; 6] = [0x52, 0x54, 0, 0xaa, 0xbb, 0xcc];
const TX_RING: u64 = 0x10000;
const RX_RING: u64 = 0x20000;
const TX_BUFS: u64 = 0x100000;
const RX_BUFS: u64 = 0x200000;
const RING_LEN: u32 = 64;

struct Rig {
    ram: Arc<GuestRam>,
    net: Arc<NetDevice>,
    stats: Arc<Stats>,
    _vm: Arc<kvm_ioctls::VmFd>,
}

fn rig(port: Box<dyn Port>, mitigation: bool) -> Option<Rig> {
    let Ok(kvm) = Kvm::new() else {
        testbed::skip_or_fail("no /dev/kvm");
        return None;
    };
    let vm = Arc::new(kvm.create_vm().unwrap());
    vm.create_irq_chip().unwrap();
    let ram = Arc::new(GuestRam::new(4 << 20).unwrap());
    let stats = Arc::new(Stats::new());
    let irq = Arc::new(IrqLine::new(&vm, 11, IrqMode::Edge, Arc::clone(&stats)).unwrap());
    let mut config = NetConfig::new(BackendSpec::Pong, "/nonexistent".into(), MAC);
    config.mitigation = mitigation;
    let net = NetDevice::with_port(
        &config,
        port,
        None,
        Arc::clone(&ram),
        irq,
        Arc::clone(&stats),
    )
    .unwrap();
    Some(Rig {
        ram,
        net: Arc::new(net),
        stats,
        _vm: vm,
    })
}

impl Rig {
    fn write_reg(&self, offset: u32, value: u32) {
        assert!(self
            .net
            .mmio_write(0, u64::from(offset), &value.to_le_bytes()));
    }

    fn read_reg(&self, offset: u32) -> u32 {
        let mut data = [0u8; 4];
        assert!(self.net.mmio_read(0, u64::from(offset), &mut data));
        u32::from_le_bytes(data)
    }

    /// Sets up both rings, RX buffers for every descriptor but one, and
    /// enables TX and RX with TXDW and RXT0 interrupts.
    fn init(&self) {
        let mem = self.ram.memory();
        for i in 0..u64::from(RING_LEN) {
            let mut desc = [0u8; 16];
            desc[..8].copy_from_slice(&(RX_BUFS + i * 2048).to_le_bytes());
            mem.write_slice(&desc, GuestAddress(RX_RING + i * 16))
                .unwrap();
        }
        self.write_reg(r::TDBAL, TX_RING as u32);
        self.write_reg(r::TDBAH, 0);
        self.write_reg(r::TDLEN, RING_LEN * 16);
        self.write_reg(r::TDH, 0);
        self.write_reg(r::TDT, 0);
        self.write_reg(r::RDBAL, RX_RING as u32);
        self.write_reg(r::RDBAH, 0);
        self.write_reg(r::RDLEN, RING_LEN * 16);
        self.write_reg(r::RDH, 0);
        self.write_reg(r::RDT, RING_LEN - 1);
        self.write_reg(r::IMS, 0x01 | 0x80); // TXDW | RXT0
        self.write_reg(r::TCTL, 0x2 | 0x8); // EN | PSP
        self.write_reg(r::RCTL, 0x2 | 0x8000); // EN | BAM, 2 KiB buffers
    }

    /// Queues `frames` at TX descriptors `first..` and writes TDT once.
    fn transmit(&self, first: u32, frames: &[Vec<u8>]) {
        let mem = self.ram.memory();
        for (k, frame) in frames.iter().enumerate() {
            let i = u64::from((first + k as u32) % RING_LEN);
            let buf = TX_BUFS + i * 2048;
            mem.write_slice(frame, GuestAddress(buf)).unwrap();
            let mut desc = [0u8; 16];
            desc[..8].copy_from_slice(&buf.to_le_bytes());
            desc[8..10].copy_from_slice(&(frame.len() as u16).to_le_bytes());
            desc[11] = 0x01 | 0x02 | 0x08; // EOP | IFCS | RS
            mem.write_slice(&desc, GuestAddress(TX_RING + i * 16))
                .unwrap();
        }
        self.write_reg(r::TDT, (first + frames.len() as u32) % RING_LEN);
    }

    /// The RX descriptor `i`: (status, length).
    fn rx_desc(&self, i: u32) -> (u8, u16) {
        let mut desc = [0u8; 16];
        self.ram
            .memory()
            .read_slice(&mut desc, GuestAddress(RX_RING + u64::from(i) * 16))
            .unwrap();
        (desc[12], u16::from_le_bytes([desc[8], desc[9]]))
    }
}

fn pings(count: u64, len: usize) -> Vec<Vec<u8>> {
    let t = testframe::FrameTemplate::new(PEER, MAC, testframe::Kind::Ping, len).unwrap();
    (0..count)
        .map(|seq| {
            let mut f = vec![0u8; len];
            t.write(&mut f, seq, 1000 + seq);
            f
        })
        .collect()
}

#[test]
fn transmitted_pings_come_back_as_pongs() {
    let Some(rig) = rig(Box::new(PongPort::new().unwrap()), true) else {
        return;
    };
    let io = IoThread::spawn(IoSources {
        net: Some(Arc::clone(&rig.net)),
        stats: Arc::clone(&rig.stats),
        stats_json: None,
    })
    .unwrap();
    rig.init();
    rig.transmit(0, &pings(8, 60));
    // TDH caught up with TDT: all eight were transmitted inline (vCPU side).
    assert_eq!(rig.read_reg(r::TDH), 8);
    assert_eq!(rig.stats.tx.packets.get(), 8);
    // The pongs reach the RX ring: inline when the settle after TX finds them
    // already published, else through the port's kick and the I/O thread.
    let deadline = Instant::now() + Duration::from_secs(10);
    while rig.rx_desc(7).0 & 1 == 0 {
        assert!(
            Instant::now() < deadline,
            "pongs never arrived; stats {}",
            rig.stats.summary(0)
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    for i in 0..8u32 {
        let (status, len) = rig.rx_desc(i);
        assert_eq!(status & 0x3, 0x3, "DD|EOP on descriptor {i}");
        let mut frame = vec![0u8; usize::from(len)];
        rig.ram
            .memory()
            .read_slice(&mut frame, GuestAddress(RX_BUFS + u64::from(i) * 2048))
            .unwrap();
        // The model may append the FCS if RCTL.SECRC is clear: parse the frame proper.
        let h = testframe::parse(&frame[..60]).unwrap();
        assert_eq!(h.kind, testframe::Kind::Pong);
        assert_eq!(h.seq, u64::from(i));
        assert_eq!(h.dst, MAC);
    }
    assert_eq!(rig.stats.rx.packets.get(), 8);
    assert!(
        rig.stats.irq.injected.get() >= 1,
        "an interrupt was injected"
    );
    // Reading ICR clears the causes and lowers the line.
    let icr = rig.read_reg(r::ICR);
    assert_ne!(icr & 0x81, 0, "TXDW or RXT0 pending: {icr:#x}");
    assert_eq!(rig.read_reg(r::ICR), 0);
    io.stop();
}

#[test]
fn garbage_descriptors_are_counted_not_fatal() {
    let Some(rig) = rig(Box::new(SinkPort::new().unwrap()), false) else {
        return;
    };
    rig.init();
    // Descriptors pointing outside guest RAM and absurd lengths.
    let mem = rig.ram.memory();
    for i in 0..4u64 {
        let mut desc = [0xffu8; 16];
        desc[..8].copy_from_slice(&(u64::MAX - i * 7).to_le_bytes());
        mem.write_slice(&desc, GuestAddress(TX_RING + i * 16))
            .unwrap();
    }
    rig.write_reg(r::TDT, 4);
    // A ring base outside RAM, indices out of range, odd access sizes.
    rig.write_reg(r::RDBAL, 0xFFFF_F000);
    rig.write_reg(r::RDT, 0xFFFF);
    assert!(rig.net.mmio_write(0, 0x3, &[1, 2]));
    assert!(rig.net.mmio_write(0, 0x1FFFE, &[1, 2, 3, 4]));
    let mut d = [0u8; 4];
    assert!(rig.net.mmio_read(0, 0x1FFFF, &mut d));
    assert!(!rig.net.mmio_write(1, 0, &[0; 4]), "BAR1 is not MMIO");
    let errors = rig.net.model_errors_json();
    let total: u64 = errors
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap_or(0))
        .sum();
    assert!(total > 0, "errors counted: {errors}");
}

#[test]
fn sink_takes_a_full_ring_of_frames() {
    let Some(rig) = rig(Box::new(SinkPort::new().unwrap()), false) else {
        return;
    };
    rig.init();
    let frames = pings(RING_LEN as u64 - 1, 1514);
    rig.transmit(0, &frames);
    assert_eq!(rig.read_reg(r::TDH), RING_LEN - 1);
    assert_eq!(rig.stats.tx.packets.get(), u64::from(RING_LEN - 1));
    assert_eq!(rig.stats.tx.bytes.get(), u64::from(RING_LEN - 1) * 1514);
}

/// The edges of the slave PIC's inputs it latched (IRR): GSI 8 + n is bit n.
/// KVM routes GSIs 0-15 to the PICs as well as to the IOAPIC; with no vCPU to
/// acknowledge them, a pulsed edge stays latched there.
fn slave_pic_irr(vm: &kvm_ioctls::VmFd) -> u8 {
    let mut chip = kvm_bindings::kvm_irqchip {
        chip_id: kvm_bindings::KVM_IRQCHIP_PIC_SLAVE,
        ..Default::default()
    };
    vm.get_irqchip(&mut chip).unwrap();
    // SAFETY: KVM filled the `pic` member for a PIC chip id.
    unsafe { chip.chip.pic.irr }
}

/// A VM with an irqchip and an interrupt line on GSI 11 in `mode`, with its
/// statistics; `None` (skipped, or failed under CI) without /dev/kvm.
fn irq_line(mode: IrqMode) -> Option<(Arc<VmFd>, Arc<Stats>, IrqLine)> {
    let Ok(kvm) = Kvm::new() else {
        testbed::skip_or_fail("no /dev/kvm");
        return None;
    };
    let vm = Arc::new(kvm.create_vm().unwrap());
    vm.create_irq_chip().unwrap();
    let stats = Arc::new(Stats::new());
    let line = IrqLine::new(&vm, 11, mode, Arc::clone(&stats)).unwrap();
    Some((vm, stats, line))
}

/// Edge mode injects the edge before `set_level` returns (an irqfd write
/// was injected later by a kernel worker, on this host sometimes hundreds
/// of milliseconds later), once per rising edge.
#[test]
fn edge_mode_injects_each_rising_edge_before_returning() {
    let Some((vm, stats, line)) = irq_line(IrqMode::Edge) else {
        return;
    };
    assert!(line.resample_fd().is_none(), "no irqfd in edge mode");
    let gsi11 = 1 << (11 - 8);
    assert_eq!(slave_pic_irr(&vm) & gsi11, 0);
    line.set_level(true);
    assert_ne!(slave_pic_irr(&vm) & gsi11, 0, "the edge is already in");
    line.set_level(true);
    assert_eq!(stats.irq.injected.get(), 1, "asserted once per rising edge");
    line.set_level(false);
    line.set_level(true);
    assert_eq!(stats.irq.injected.get(), 2);
    assert_eq!(stats.irq.failed.get(), 0, "KVM_IRQ_LINE accepted");
}

#[test]
fn level_mode_registers_a_resample_irqfd() {
    let Some((_vm, stats, line)) = irq_line(IrqMode::Level) else {
        return;
    };
    assert!(line.resample_fd().is_some());
    line.set_level(true);
    line.set_level(true);
    assert_eq!(stats.irq.injected.get(), 1, "asserted once per rising edge");
    // A resample while the level is still high asserts again; after it drops, not.
    line.on_resample();
    assert_eq!(stats.irq.injected.get(), 2);
    line.set_level(false);
    line.on_resample();
    assert_eq!(stats.irq.injected.get(), 2);
    // INTx disable holds the line; re-enabling with the level high asserts.
    line.set_disabled(true);
    line.set_level(true);
    assert_eq!(stats.irq.injected.get(), 2);
    line.set_disabled(false);
    assert_eq!(stats.irq.injected.get(), 3);
}

/// A port fed by another thread, like a switch: frames appear at any time
/// and the feeder kicks only when the VMM asked for it (need-kick flag).
#[derive(Clone, Default)]
struct Feed {
    queue: Arc<std::sync::Mutex<std::collections::VecDeque<Vec<u8>>>>,
    armed: Arc<std::sync::atomic::AtomicBool>,
    kicks: Arc<std::sync::atomic::AtomicU64>,
}

struct FedPort {
    feed: Feed,
    kick: vmm_sys_util::eventfd::EventFd,
    current: Option<Vec<u8>>,
    slot: Vec<u8>,
}

impl Feed {
    fn push(&self, kick: &vmm_sys_util::eventfd::EventFd, frame: Vec<u8>) {
        use std::sync::atomic::Ordering;
        self.queue.lock().unwrap().push_back(frame);
        if self.armed.swap(false, Ordering::SeqCst) {
            self.kicks.fetch_add(1, Ordering::SeqCst);
            kick.write(1).unwrap();
        }
    }
}

impl Port for FedPort {
    fn reserve(&mut self) -> Option<&mut [u8]> {
        Some(&mut self.slot)
    }
    fn commit(&mut self, _len: usize) {}
    fn publish(&mut self) -> usize {
        0
    }
    fn peek(&mut self) -> Option<&[u8]> {
        if self.current.is_none() {
            self.current = self.feed.queue.lock().unwrap().pop_front();
        }
        self.current.as_deref()
    }
    fn consume(&mut self) {
        self.current = None;
    }
    fn release_rx(&mut self) {}
    fn kick_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.kick)
    }
    fn arm(&mut self, rx: bool, tx: bool) -> bool {
        use std::sync::atomic::Ordering;
        if rx {
            self.feed.armed.store(true, Ordering::SeqCst);
        }
        tx || (rx && (self.current.is_some() || !self.feed.queue.lock().unwrap().is_empty()))
    }
    fn disarm(&mut self) {
        self.feed
            .armed
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let _ = self.kick.read();
    }
    fn kicks_sent(&self) -> u64 {
        0
    }
    fn max_frame(&self) -> usize {
        2048
    }
}

#[test]
fn frames_from_another_thread_arrive_through_kicks_and_the_io_thread() {
    let feed = Feed::default();
    let kick = vmm_sys_util::eventfd::EventFd::new(vmm_sys_util::eventfd::EFD_NONBLOCK).unwrap();
    let port = FedPort {
        feed: feed.clone(),
        kick: kick.try_clone().unwrap(),
        current: None,
        slot: vec![0; 2048],
    };
    let Some(rig) = rig(Box::new(port), true) else {
        return;
    };
    let io = IoThread::spawn(IoSources {
        net: Some(Arc::clone(&rig.net)),
        stats: Arc::clone(&rig.stats),
        stats_json: None,
    })
    .unwrap();
    rig.init();
    // Enabling RX found the port empty and asked for a kick.
    assert!(feed.armed.load(std::sync::atomic::Ordering::SeqCst));
    let t = testframe::FrameTemplate::new(MAC, PEER, testframe::Kind::Data, 60).unwrap();
    for seq in 0..20u64 {
        let mut f = vec![0u8; 60];
        t.write(&mut f, seq, 0);
        feed.push(&kick, f);
        if seq % 5 == 4 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while rig.stats.rx.packets.get() < 20 {
        assert!(
            Instant::now() < deadline,
            "frames stuck: {}",
            rig.stats.summary(0)
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    for i in 0..20u32 {
        assert_eq!(rig.rx_desc(i).0 & 1, 1, "descriptor {i} done");
    }
    let kicks = feed.kicks.load(std::sync::atomic::Ordering::SeqCst);
    assert!(kicks >= 1, "the feeder kicked");
    // Only the I/O thread moved these frames (no register access since init),
    // and it wakes only on kicks (some may coalesce).
    let woken = rig.stats.kicks.from_switch.get();
    assert!(
        (1..=kicks).contains(&woken),
        "{woken} wake-ups for {kicks} kicks"
    );
    io.stop();
}
