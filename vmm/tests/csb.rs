//! The CSB paravirtual extension as the VMM runs it: the e1000 model, DMA
//! over guest RAM, the net worker (I/O thread) and a port, driven by a test
//! that plays the guest driver of docs/csb.md on guest RAM: it
//! publishes guest_tdt/guest_rdt, reads host_tdh/host_rdh, kicks only when
//! the device asked for it, and sleeps on interrupts only after setting its
//! own need-kick flag. The TDT kick is what KVM's ioeventfd does (signal the
//! kick eventfd) unless a test says otherwise; every other register access is
//! made through the vCPU thread's entry points and counted as an exit.
//!
//! Each test prints its exits and interrupts per packet.

use std::collections::VecDeque;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e1000_spec::csb::{field, CSBAH, CSBAL};
use e1000_spec::regs as r;
use kvm_ioctls::Kvm;
use vmm::e1000::Dma;
use vmm::io_thread::{IoSources, IoThread};
use vmm::irq::{IrqLine, IrqMode};
use vmm::memory::GuestRam;
use vmm::net::backend::{BackendSpec, Port};
use vmm::net::dma::GuestDma;
use vmm::net::{NetConfig, NetDevice};
use vmm::stats::Stats;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
const PEER: [u8; 6] = [0x52, 0x54, 0, 0xaa, 0xbb, 0xcc];
const CSB: u64 = 0x8000;
const TX_RING: u64 = 0x10000;
const RX_RING: u64 = 0x20000;
const TX_BUFS: u64 = 0x100000;
const RX_BUFS: u64 = 0x300000;
const RING: u32 = 256;
const FRAME: usize = 60;
const ICR_TXDW: u32 = 0x01;
const ICR_RXT0: u32 = 0x80;
/// Upper bound for every wait in these tests.
const PATIENCE: Duration = Duration::from_secs(20);

// ------------------------------------------------------------------ ports

/// Where transmitted frames end up: checks that test frames arrive in
/// sequence order, never blocks.
#[derive(Clone, Default)]
struct Received {
    next_seq: Arc<AtomicU64>,
    out_of_order: Arc<AtomicU64>,
}

struct OrderedSink {
    received: Received,
    slot: Vec<u8>,
    kick: EventFd,
}

impl OrderedSink {
    fn new(received: Received) -> OrderedSink {
        OrderedSink {
            received,
            slot: vec![0; 2048],
            kick: EventFd::new(EFD_NONBLOCK).unwrap(),
        }
    }
}

impl Port for OrderedSink {
    fn reserve(&mut self) -> Option<&mut [u8]> {
        Some(&mut self.slot)
    }
    fn commit(&mut self, len: usize) {
        let expected = self.received.next_seq.load(Ordering::Relaxed);
        match testframe::parse(&self.slot[..len]) {
            Ok(h) if h.seq == expected => {}
            _ => {
                self.received.out_of_order.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.received
            .next_seq
            .store(expected + 1, Ordering::Release);
    }
    fn publish(&mut self) -> usize {
        0
    }
    fn peek(&mut self) -> Option<&[u8]> {
        None
    }
    fn consume(&mut self) {}
    fn release_rx(&mut self) {}
    fn kick_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.kick)
    }
    fn arm(&mut self, _rx: bool, tx: bool) -> bool {
        tx
    }
    fn disarm(&mut self) {
        let _ = self.kick.read();
    }
    fn kicks_sent(&self) -> u64 {
        0
    }
    fn max_frame(&self) -> usize {
        2048
    }
}

/// A port fed by another thread, like a switch: frames appear at any time
/// and the feeder kicks only when the VMM asked for it (need-kick flag).
#[derive(Clone)]
struct Feed {
    queue: Arc<Mutex<VecDeque<Vec<u8>>>>,
    armed: Arc<AtomicBool>,
    kick: Arc<EventFd>,
}

impl Feed {
    fn new() -> Feed {
        Feed {
            queue: Arc::default(),
            armed: Arc::default(),
            kick: Arc::new(EventFd::new(EFD_NONBLOCK).unwrap()),
        }
    }

    fn push(&self, frame: Vec<u8>) {
        self.queue.lock().unwrap().push_back(frame);
        fence(Ordering::SeqCst);
        if self.armed.swap(false, Ordering::SeqCst) {
            self.kick.write(1).unwrap();
        }
    }
}

struct FedPort {
    feed: Feed,
    current: Option<Vec<u8>>,
    slot: Vec<u8>,
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
        std::os::fd::AsRawFd::as_raw_fd(&*self.feed.kick)
    }
    fn arm(&mut self, rx: bool, tx: bool) -> bool {
        if rx {
            self.feed.armed.store(true, Ordering::SeqCst);
        }
        fence(Ordering::SeqCst);
        tx || (rx && (self.current.is_some() || !self.feed.queue.lock().unwrap().is_empty()))
    }
    fn disarm(&mut self) {
        self.feed.armed.store(false, Ordering::SeqCst);
        let _ = self.feed.kick.read();
    }
    fn kicks_sent(&self) -> u64 {
        0
    }
    fn max_frame(&self) -> usize {
        2048
    }
}

// ------------------------------------------------------------------ the rig

struct Rig {
    dma: GuestDma,
    net: Arc<NetDevice>,
    stats: Arc<Stats>,
    io: Option<IoThread>,
    /// Register accesses that would be VM exits (the TDT kick through the
    /// ioeventfd is not one).
    exits: u64,
    /// Writes to the TDT register among them (a kick through the exit
    /// path; KVM's ioeventfd would have caught it without an exit).
    tdt_writes: u64,
    _vm: Arc<kvm_ioctls::VmFd>,
}

fn rig(port: Box<dyn Port>, spin: Duration) -> Option<Rig> {
    let Ok(kvm) = Kvm::new() else {
        testbed::skip_or_fail("no /dev/kvm");
        return None;
    };
    let vm = Arc::new(kvm.create_vm().unwrap());
    vm.create_irq_chip().unwrap();
    let ram = Arc::new(GuestRam::new(8 << 20).unwrap());
    let stats = Arc::new(Stats::new());
    let irq = Arc::new(IrqLine::new(&vm, 11, IrqMode::Edge, Arc::clone(&stats)).unwrap());
    let mut config = NetConfig::new(BackendSpec::Sink, "/nonexistent".into(), MAC);
    config.mitigation = false;
    config.spin = spin;
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
    let io = IoThread::spawn(IoSources {
        net: Some(Arc::clone(&net)),
        stats: Arc::clone(&stats),
        stats_json: None,
    })
    .unwrap();
    Some(Rig {
        dma: GuestDma::new(ram),
        net,
        stats,
        io: Some(io),
        exits: 0,
        tdt_writes: 0,
        _vm: vm,
    })
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Some(io) = self.io.take() {
            io.stop();
        }
    }
}

impl Rig {
    fn write_reg(&mut self, offset: u32, value: u32) {
        self.exits += 1;
        if offset == r::TDT {
            self.tdt_writes += 1;
        }
        assert!(self
            .net
            .mmio_write(0, u64::from(offset), &value.to_le_bytes()));
    }

    fn read_reg(&mut self, offset: u32) -> u32 {
        self.exits += 1;
        let mut data = [0u8; 4];
        assert!(self.net.mmio_read(0, u64::from(offset), &mut data));
        u32::from_le_bytes(data)
    }

    fn csb(&self, f: usize) -> u32 {
        self.dma.read_u32(CSB + f as u64).unwrap()
    }

    fn set_csb(&self, f: usize, value: u32) {
        self.dma.write_u32(CSB + f as u64, value).unwrap();
    }

    /// Rings, RX buffers, interrupts enabled; then the CSB: guest_csb_on,
    /// guest_rdt (all RX buffers but one), CSBAH, CSBAL.
    fn init(&mut self) {
        for i in 0..u64::from(RING) {
            let mut desc = [0u8; 16];
            desc[..8].copy_from_slice(&(RX_BUFS + i * 2048).to_le_bytes());
            self.dma.write(RX_RING + i * 16, &desc).unwrap();
        }
        self.write_reg(r::TDBAL, TX_RING as u32);
        self.write_reg(r::TDBAH, 0);
        self.write_reg(r::TDLEN, RING * 16);
        self.write_reg(r::TDH, 0);
        self.write_reg(r::TDT, 0);
        self.write_reg(r::RDBAL, RX_RING as u32);
        self.write_reg(r::RDBAH, 0);
        self.write_reg(r::RDLEN, RING * 16);
        self.write_reg(r::RDH, 0);
        self.write_reg(r::RDT, 0);
        self.write_reg(r::IMS, ICR_TXDW | ICR_RXT0);
        self.write_reg(r::TCTL, 0x2 | 0x8);
        self.write_reg(r::RCTL, 0x2 | 0x8000 | (1 << 26)); // EN | BAM | SECRC
        self.set_csb(field::GUEST_TDT, 0);
        self.set_csb(field::GUEST_RDT, RING - 1);
        self.set_csb(field::GUEST_TXKICK_AT, u32::MAX);
        self.set_csb(field::GUEST_CSB_ON, 1);
        self.write_reg(CSBAH, 0);
        self.write_reg(CSBAL, CSB as u32);
        assert!(self.net.csb_mapped());
        assert_eq!(self.net.tdt_kick_address(), Some(0xFEB0_3818));
    }

    /// Waits (sleeping, bounded) for an interrupt after `seen` of them,
    /// then reads ICR as the guest's handler would. Returns the causes.
    fn wait_interrupt(&mut self, seen: &mut u64, what: &str) -> u32 {
        let deadline = Instant::now() + PATIENCE;
        while self.stats.irq.injected.get() == *seen {
            assert!(
                Instant::now() < deadline,
                "no interrupt while waiting for {what}: {} / {}",
                self.stats.summary(0),
                self.net.model_errors_json()
            );
            std::thread::sleep(Duration::from_micros(20));
        }
        *seen = self.stats.irq.injected.get();
        self.read_reg(r::ICR)
    }
}

/// The guest's transmit side: a ring of RING descriptors, buffers at fixed
/// places, guest_tdt published in batches, completions from host_tdh.
struct TxDriver {
    template: testframe::FrameTemplate,
    tail: u32,
    clean: u32,
    unpublished: u32,
    kicks: u64,
    kicks_by_exit: bool,
    sleeps: u64,
    interrupts_seen: u64,
}

impl TxDriver {
    fn new() -> TxDriver {
        TxDriver {
            template: testframe::FrameTemplate::new(PEER, MAC, testframe::Kind::Data, FRAME)
                .unwrap(),
            tail: 0,
            clean: 0,
            unpublished: 0,
            kicks: 0,
            kicks_by_exit: false,
            sleeps: 0,
            interrupts_seen: 0,
        }
    }

    fn free(&self) -> u32 {
        (self.clean + RING - self.tail - 1) % RING
    }

    /// Publishes guest_tdt; kicks only if the device's worker sleeps.
    fn publish(&mut self, rig: &mut Rig) {
        rig.set_csb(field::GUEST_TDT, self.tail);
        self.unpublished = 0;
        fence(Ordering::SeqCst);
        if rig.csb(field::HOST_NEED_TXKICK) != 0 {
            self.kicks += 1;
            if self.kicks_by_exit {
                rig.write_reg(r::TDT, self.tail);
            } else {
                rig.net.signal_tdt_kick();
            }
        }
    }

    /// Queues frame `seq`, waiting for a free descriptor (by host_tdh; when
    /// the ring is full: need_txkick, barrier, re-check, then sleep until
    /// the TX interrupt).
    fn send(&mut self, rig: &mut Rig, seq: u64, batch: u32) {
        while self.free() == 0 {
            if self.unpublished > 0 {
                self.publish(rig);
            }
            self.clean = rig.csb(field::HOST_TDH);
            if self.free() > 0 {
                break;
            }
            rig.set_csb(field::GUEST_NEED_TXKICK, 1);
            fence(Ordering::SeqCst);
            self.clean = rig.csb(field::HOST_TDH);
            if self.free() == 0 {
                self.sleeps += 1;
                let icr = rig.wait_interrupt(&mut self.interrupts_seen, "TX completions");
                assert_ne!(icr & ICR_TXDW, 0, "TXDW: {icr:#x}");
            }
            rig.set_csb(field::GUEST_NEED_TXKICK, 0);
        }
        let i = u64::from(self.tail);
        let buf = TX_BUFS + i * 2048;
        let mut frame = [0u8; FRAME];
        self.template.write(&mut frame, seq, 0);
        rig.dma.write(buf, &frame).unwrap();
        let mut desc = [0u8; 16];
        desc[..8].copy_from_slice(&buf.to_le_bytes());
        desc[8..10].copy_from_slice(&(FRAME as u16).to_le_bytes());
        desc[11] = 0x01 | 0x02 | 0x08; // EOP | IFCS | RS
        rig.dma.write(TX_RING + i * 16, &desc).unwrap();
        self.tail = (self.tail + 1) % RING;
        self.unpublished += 1;
        if self.unpublished >= batch {
            self.publish(rig);
        }
    }

    fn flush(&mut self, rig: &mut Rig) {
        if self.unpublished > 0 {
            self.publish(rig);
        }
    }
}

fn wait_for(what: &str, rig: &Rig, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {} / {}",
            rig.stats.summary(0),
            rig.net.model_errors_json()
        );
        std::thread::sleep(Duration::from_micros(50));
    }
}

/// Busy-waits for `time` (finer than a sleep).
fn spin_for(time: Duration) {
    let until = Instant::now() + time;
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// A small xorshift generator (deterministic test schedules).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

// ------------------------------------------------------------------ tests

#[test]
fn csb_tx_of_100000_frames_kicks_only_on_request_and_keeps_order() {
    let received = Received::default();
    let port = OrderedSink::new(received.clone());
    let Some(mut rig) = rig(Box::new(port), vmm::net::worker::DEFAULT_SPIN) else {
        return;
    };
    rig.init();
    let setup_exits = rig.exits;
    let setup_tdt_writes = rig.tdt_writes;
    const COUNT: u64 = 100_000;
    let mut tx = TxDriver::new();
    let start = Instant::now();
    for seq in 0..COUNT {
        tx.send(&mut rig, seq, 32);
    }
    tx.flush(&mut rig);
    wait_for("all frames", &rig, || {
        received.next_seq.load(Ordering::Acquire) == COUNT
    });
    let elapsed = start.elapsed();
    assert_eq!(received.out_of_order.load(Ordering::Relaxed), 0);
    assert_eq!(rig.stats.tx.packets.get(), COUNT);
    wait_for("host_tdh", &rig, || rig.csb(field::HOST_TDH) == tx.tail);
    let exits = rig.exits - setup_exits;
    assert_eq!(
        rig.tdt_writes - setup_tdt_writes,
        0,
        "no TDT exits: kicks go through the ioeventfd"
    );
    // Every kick the guest made was asked for, and the worker saw them.
    wait_for("kicks counted", &rig, || {
        rig.stats.worker.tx_kicks.get() == tx.kicks
    });
    let irqs = rig.stats.irq.injected.get();
    assert!(
        irqs <= tx.sleeps + 1,
        "{irqs} interrupts, {} sleeps",
        tx.sleeps
    );
    let errors = rig.net.model_errors_json();
    assert_eq!(errors["csb_index_invalid"], 0, "{errors}");
    eprintln!(
        "CSB TX {COUNT} frames in {:.0} ms ({:.0} kpps): {} kicks ({:.5}/pkt, ioeventfd), \
         {exits} exits ({:.5}/pkt), {irqs} interrupts ({:.5}/pkt), {} guest sleeps, \
         worker: {} polls ({} busy), {} sleeps, {} aborted",
        elapsed.as_secs_f64() * 1e3,
        COUNT as f64 / elapsed.as_secs_f64() / 1e3,
        tx.kicks,
        tx.kicks as f64 / COUNT as f64,
        exits as f64 / COUNT as f64,
        irqs as f64 / COUNT as f64,
        tx.sleeps,
        rig.stats.worker.polls.get(),
        rig.stats.worker.busy_polls.get(),
        rig.stats.worker.sleeps.get(),
        rig.stats.worker.sleep_aborts.get(),
    );
}

/// The guest's receive side: takes frames up to host_rdh, checks their
/// order, returns buffers through guest_rdt in batches, writes RDT only
/// when the device asks, and sleeps on RXT0 only after setting
/// guest_need_rxkick and re-checking host_rdh.
struct RxDriver {
    next: u32,
    returned_upto: u32,
    expected_seq: u64,
    rdt_writes: u64,
    sleeps: u64,
    interrupts_seen: u64,
}

impl RxDriver {
    fn new() -> RxDriver {
        RxDriver {
            next: 0,
            returned_upto: RING - 1,
            expected_seq: 0,
            rdt_writes: 0,
            sleeps: 0,
            interrupts_seen: 0,
        }
    }

    /// Processes what host_rdh says is filled; returns how many frames.
    fn harvest(&mut self, rig: &mut Rig) -> u32 {
        let head = rig.csb(field::HOST_RDH);
        let mut n = 0;
        while self.next != head {
            let i = u64::from(self.next);
            let mut desc = [0u8; 16];
            rig.dma.read(RX_RING + i * 16, &mut desc).unwrap();
            assert_eq!(desc[12] & 0x3, 0x3, "DD|EOP at {i} below host_rdh");
            let len = usize::from(u16::from_le_bytes([desc[8], desc[9]]));
            let mut frame = vec![0u8; len];
            rig.dma.read(RX_BUFS + i * 2048, &mut frame).unwrap();
            let h = testframe::parse(&frame[..FRAME]).unwrap();
            assert_eq!(h.seq, self.expected_seq, "RX order");
            self.expected_seq += 1;
            desc[12] = 0;
            rig.dma.write(RX_RING + i * 16, &desc).unwrap();
            self.next = (self.next + 1) % RING;
            n += 1;
        }
        n
    }

    /// Returns the processed buffers through guest_rdt; writes RDT only if
    /// the device waits for buffers.
    fn give_back(&mut self, rig: &mut Rig) {
        let rdt = (self.next + RING - 1) % RING;
        if rdt == self.returned_upto {
            return;
        }
        self.returned_upto = rdt;
        rig.set_csb(field::GUEST_RDT, rdt);
        fence(Ordering::SeqCst);
        if rig.csb(field::HOST_NEED_RXKICK) != 0 {
            self.rdt_writes += 1;
            rig.write_reg(r::RDT, rdt);
        }
    }

    /// Receives until `count` frames arrived; sleeps on RXT0 when idle.
    fn run(&mut self, rig: &mut Rig, count: u64) {
        let deadline = Instant::now() + PATIENCE;
        while self.expected_seq < count {
            assert!(
                Instant::now() < deadline,
                "RX stuck: {}",
                rig.stats.summary(0)
            );
            let n = self.harvest(rig);
            if n > 0 {
                self.give_back(rig);
                continue;
            }
            rig.set_csb(field::GUEST_NEED_RXKICK, 1);
            fence(Ordering::SeqCst);
            if rig.csb(field::HOST_RDH) == self.next {
                self.sleeps += 1;
                let icr = rig.wait_interrupt(&mut self.interrupts_seen, "RX frames");
                assert_ne!(icr & ICR_RXT0, 0, "RXT0: {icr:#x}");
            }
            rig.set_csb(field::GUEST_NEED_RXKICK, 0);
        }
    }
}

#[test]
fn csb_rx_uses_guest_rdt_and_host_rdh_and_interrupts_only_on_request() {
    let feed = Feed::new();
    let port = FedPort {
        feed: feed.clone(),
        current: None,
        slot: vec![0; 2048],
    };
    let Some(mut rig) = rig(Box::new(port), vmm::net::worker::DEFAULT_SPIN) else {
        return;
    };
    rig.init();
    let setup_exits = rig.exits;
    const COUNT: u64 = 20_000;
    // The feeder: bursts with pauses, so the guest and the worker both go
    // idle now and then; and bursts bigger than the ring, so the device runs
    // out of buffers and asks for an RDT kick.
    let feeder = {
        let feed = feed.clone();
        std::thread::spawn(move || {
            let t = testframe::FrameTemplate::new(MAC, PEER, testframe::Kind::Data, FRAME).unwrap();
            let mut rng = Rng(0x1234_5678_9abc_def1);
            let mut seq = 0;
            while seq < COUNT {
                let burst = 1 + rng.below(600);
                for _ in 0..burst.min(COUNT - seq) {
                    let mut f = vec![0u8; FRAME];
                    t.write(&mut f, seq, 0);
                    feed.push(f);
                    seq += 1;
                }
                std::thread::sleep(Duration::from_micros(rng.below(400)));
            }
        })
    };
    let mut rx = RxDriver::new();
    let start = Instant::now();
    rx.run(&mut rig, COUNT);
    let elapsed = start.elapsed();
    feeder.join().unwrap();
    assert_eq!(rig.stats.rx.packets.get(), COUNT);
    let irqs = rig.stats.irq.injected.get();
    // Interrupts only while the guest slept with guest_need_rxkick set.
    assert!(
        irqs <= rx.sleeps,
        "{irqs} interrupts for {} sleeps",
        rx.sleeps
    );
    let exits = rig.exits - setup_exits;
    let errors = rig.net.model_errors_json();
    assert_eq!(errors["csb_index_invalid"], 0, "{errors}");
    eprintln!(
        "CSB RX {COUNT} frames in {:.0} ms: {exits} exits ({:.5}/pkt: {} RDT kicks, ICR reads), \
         {irqs} interrupts ({:.5}/pkt), {} guest sleeps, {} switch kicks, worker sleeps {}",
        elapsed.as_secs_f64() * 1e3,
        exits as f64 / COUNT as f64,
        rx.rdt_writes,
        irqs as f64 / COUNT as f64,
        rx.sleeps,
        rig.stats.kicks.from_switch.get(),
        rig.stats.worker.sleeps.get(),
    );
}

#[test]
fn no_lost_wakeups_when_the_guest_sleeps_between_bursts() {
    // Spin 0: the worker goes to sleep as soon as it finds nothing, so
    // nearly every burst meets it in a different phase (polling, setting its
    // flag, re-checking, asleep).
    let received = Received::default();
    let feed = Feed::new();
    struct Both(OrderedSink, FedPort);
    impl Port for Both {
        fn reserve(&mut self) -> Option<&mut [u8]> {
            self.0.reserve()
        }
        fn commit(&mut self, len: usize) {
            self.0.commit(len)
        }
        fn publish(&mut self) -> usize {
            0
        }
        fn peek(&mut self) -> Option<&[u8]> {
            self.1.peek()
        }
        fn consume(&mut self) {
            self.1.consume()
        }
        fn release_rx(&mut self) {}
        fn kick_fd(&self) -> std::os::fd::RawFd {
            self.1.kick_fd()
        }
        fn arm(&mut self, rx: bool, tx: bool) -> bool {
            self.1.arm(rx, tx)
        }
        fn disarm(&mut self) {
            self.1.disarm()
        }
        fn kicks_sent(&self) -> u64 {
            0
        }
        fn max_frame(&self) -> usize {
            2048
        }
    }
    let port = Both(
        OrderedSink::new(received.clone()),
        FedPort {
            feed: feed.clone(),
            current: None,
            slot: vec![0; 2048],
        },
    );
    let Some(mut rig) = rig(Box::new(port), Duration::ZERO) else {
        return;
    };
    rig.init();
    let mut rng = Rng(0x0bad_cafe_f00d_1234);
    let mut tx = TxDriver::new();
    let mut rx = RxDriver::new();
    let template = testframe::FrameTemplate::new(MAC, PEER, testframe::Kind::Data, FRAME).unwrap();
    let mut sent = 0u64;
    let mut fed = 0u64;
    let rounds = 2000;
    for round in 0..rounds {
        // Half the rounds kick through the exit path (TDT register write).
        tx.kicks_by_exit = round % 2 == 1;
        let burst = 1 + rng.below(8);
        for _ in 0..burst {
            tx.send(&mut rig, sent, u32::MAX);
            sent += 1;
        }
        tx.flush(&mut rig);
        // No further kick: the worker must take the burst on its own.
        let deadline = Instant::now() + PATIENCE;
        while received.next_seq.load(Ordering::Acquire) != sent {
            assert!(
                Instant::now() < deadline,
                "lost TX wake-up in round {round}: sent {sent}, received {}, guest_tdt {}, \
                 host_tdh {}, host_need_txkick {}, {}",
                received.next_seq.load(Ordering::Acquire),
                rig.csb(field::GUEST_TDT),
                rig.csb(field::HOST_TDH),
                rig.csb(field::HOST_NEED_TXKICK),
                rig.stats.summary(0)
            );
            std::thread::yield_now();
        }
        // RX: a few frames from the "switch" while the guest sleeps on RXT0.
        if round % 4 == 0 {
            for _ in 0..1 + rng.below(4) {
                let mut f = vec![0u8; FRAME];
                template.write(&mut f, fed, 0);
                feed.push(f);
                fed += 1;
            }
            rx.run(&mut rig, fed);
        }
        // The next burst comes at once, after a few microseconds (while the
        // worker decides to sleep), or after it surely sleeps.
        // The next burst comes within a few microseconds (while the worker
        // decides to sleep: the window the need-kick rule closes), or after
        // it surely sleeps.
        if rng.below(4) == 0 {
            std::thread::sleep(Duration::from_micros(rng.below(200)));
        } else {
            spin_for(Duration::from_nanos(rng.below(30_000)));
        }
    }
    assert_eq!(received.out_of_order.load(Ordering::Relaxed), 0);
    assert_eq!(rig.stats.rx.packets.get(), fed);
    let worker = &rig.stats.worker;
    eprintln!(
        "stress: {rounds} rounds, {sent} TX frames ({} kicks), {fed} RX frames ({} guest sleeps, \
         {} interrupts), worker slept {} times, {} re-checks found work",
        tx.kicks,
        rx.sleeps,
        rig.stats.irq.injected.get(),
        worker.sleeps.get(),
        worker.sleep_aborts.get()
    );
    assert!(worker.sleeps.get() > rounds / 8, "the worker did sleep");
}

#[test]
fn hostile_csb_is_counted_and_the_device_keeps_working() {
    let received = Received::default();
    let Some(mut rig) = rig(
        Box::new(OrderedSink::new(received.clone())),
        vmm::net::worker::DEFAULT_SPIN,
    ) else {
        return;
    };
    rig.init();
    // Addresses: outside RAM, unaligned, straddling the end of RAM.
    for (high, low) in [
        (0, 0xFFFF_F000),
        (0, CSB as u32 + 8),
        (1, 0),
        (0, (8 << 20) - 64),
    ] {
        rig.write_reg(CSBAH, high);
        rig.write_reg(CSBAL, low);
        assert!(!rig.net.csb_mapped());
        assert_eq!(rig.net.tdt_kick_address(), None);
    }
    let errors = rig.net.model_errors_json();
    assert_eq!(errors["csb_address_invalid"], 4, "{errors}");
    // Map it again; then indices out of range and flags flipping.
    rig.write_reg(CSBAH, 0);
    rig.write_reg(CSBAL, CSB as u32);
    let mut tx = TxDriver::new();
    for seq in 0..10 {
        tx.send(&mut rig, seq, 1);
    }
    wait_for("10 frames", &rig, || {
        received.next_seq.load(Ordering::Acquire) == 10
    });
    rig.set_csb(field::GUEST_TDT, RING + 5);
    rig.set_csb(field::GUEST_RDT, 0xFFFF_FFFF);
    rig.net.signal_tdt_kick();
    wait_for("bad indices counted", &rig, || {
        rig.net.model_errors_json()["csb_index_invalid"] == 2
    });
    // Flags flipping: after each kick the worker polls, sees the new
    // guest_csb_on, counts the change and switches between the CSB and the
    // registers (TDT holds the last valid guest_tdt: nothing is replayed).
    let changes = || {
        rig.net.model_errors_json()["csb_guest_on_changes"]
            .as_u64()
            .unwrap()
    };
    let base = changes();
    for flip in 0..20u32 {
        rig.set_csb(field::GUEST_CSB_ON, flip & 1);
        rig.set_csb(field::GUEST_NEED_TXKICK, flip.wrapping_mul(0x9E37_79B9));
        rig.net.signal_tdt_kick();
        wait_for("the flip seen", &rig, || {
            changes() == base + u64::from(flip) + 1
        });
    }
    rig.set_csb(field::GUEST_CSB_ON, 1);
    rig.set_csb(field::GUEST_NEED_TXKICK, 0);
    rig.set_csb(field::GUEST_RDT, RING - 1);
    // Nothing was replayed, and the device still transmits.
    assert_eq!(received.next_seq.load(Ordering::Acquire), 10);
    rig.set_csb(field::GUEST_TDT, tx.tail);
    for seq in 10..20 {
        tx.send(&mut rig, seq, 1);
    }
    wait_for("20 frames", &rig, || {
        received.next_seq.load(Ordering::Acquire) == 20
    });
    assert_eq!(received.out_of_order.load(Ordering::Relaxed), 0);
}

#[test]
fn csb_off_by_writing_zero_and_by_reset() {
    let received = Received::default();
    let Some(mut rig) = rig(
        Box::new(OrderedSink::new(received.clone())),
        vmm::net::worker::DEFAULT_SPIN,
    ) else {
        return;
    };
    rig.init();
    let mut tx = TxDriver::new();
    for seq in 0..5 {
        tx.send(&mut rig, seq, 1);
    }
    wait_for("CSB frames", &rig, || {
        received.next_seq.load(Ordering::Acquire) == 5
    });
    // Off by writing 0: TDT is a register again and transmits inline.
    rig.write_reg(CSBAH, 0);
    rig.write_reg(CSBAL, 0);
    assert!(!rig.net.csb_mapped());
    assert_eq!(rig.net.tdt_kick_address(), None);
    let mut tail = tx.tail;
    for seq in 5..8u64 {
        tx.send(&mut rig, seq, u32::MAX);
        tail = (tail + 1) % RING;
    }
    rig.write_reg(r::TDT, tail);
    assert_eq!(
        received.next_seq.load(Ordering::Acquire),
        8,
        "processed in the vCPU thread"
    );
    assert_eq!(rig.read_reg(r::TDH), tail);
    // On again, then a reset turns it off and clears the registers.
    rig.write_reg(CSBAL, CSB as u32);
    assert!(rig.net.csb_mapped());
    rig.write_reg(r::CTRL, 1 << 26);
    assert!(!rig.net.csb_mapped());
    assert_eq!(rig.net.tdt_kick_address(), None);
    assert_eq!(rig.read_reg(CSBAL), 0);
}

#[test]
fn a_poll_port_exit_serves_the_rings_without_kicks_or_interrupts() {
    // The guest waits at the poll port (devices/poll_port.rs): the vCPU
    // thread runs the device's work itself, whether or not the worker
    // sleeps, and raises no interrupt while the guest's need-kick flags are
    // clear.
    let feed = Feed::new();
    let port = FedPort {
        feed: feed.clone(),
        current: None,
        slot: vec![0; 2048],
    };
    let Some(mut rig) = rig(Box::new(port), Duration::ZERO) else {
        return;
    };
    rig.init();
    wait_for("the worker to sleep", &rig, || {
        rig.stats.worker.sleeps.get() > 0
    });
    let injected = rig.stats.irq.injected.get();
    // Frames wait in the port; the switch has not kicked (yet).
    let t = testframe::FrameTemplate::new(MAC, PEER, testframe::Kind::Data, FRAME).unwrap();
    for seq in 0..100 {
        let mut f = vec![0u8; FRAME];
        t.write(&mut f, seq, 0);
        feed.queue.lock().unwrap().push_back(f);
    }
    // Ten frames queued for TX, guest_tdt published, no TDT kick.
    for i in 0..10u64 {
        let mut desc = [0u8; 16];
        desc[..8].copy_from_slice(&(TX_BUFS + i * 2048).to_le_bytes());
        desc[8..10].copy_from_slice(&(FRAME as u16).to_le_bytes());
        desc[11] = 0x01 | 0x02 | 0x08; // EOP | IFCS | RS
        rig.dma.write(TX_RING + i * 16, &desc).unwrap();
    }
    rig.set_csb(field::GUEST_TDT, 10);
    assert!(rig.net.poll_once(), "the round moved frames");
    assert_eq!(rig.csb(field::HOST_TDH), 10);
    assert_eq!(rig.csb(field::HOST_RDH), 100);
    assert_eq!(rig.stats.rx.packets.get(), 100);
    assert_eq!(rig.stats.irq.injected.get(), injected, "no interrupt");
    assert_eq!(rig.stats.worker.vcpu_polls.get(), 1);
    // Nothing left: the next exit finds nothing and says so.
    assert!(!rig.net.poll_once());
}
