//! The `csb` target: the e1000 as the VMM runs it ([`NetDevice`]: the model,
//! its port backend and the VMM's DMA over guest RAM behind the device lock)
//! in CSB mode, while the guest rewrites the Common Status Block (both
//! halves: a hostile guest writes the host's fields too) between every step
//! of the device and of the net worker, and during the worker's loop on
//! another thread. The steps are the vCPU thread's (register reads and
//! writes, the poll port) and the I/O thread's (port kicks, deferred work,
//! TDT kicks, the moderation timer, the worker's begin/poll/sleep).
//!
//! Checked: no crash or hang; frames handed to the port fit its slots and the
//! port protocol is kept; TDH and RDH as the device moves them stay inside
//! their rings. The interrupt line needs KVM's in-kernel irqchip: without
//! `/dev/kvm` the target does nothing (and says so once).

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use e1000_spec::csb::{field, CSBAH, CSBAL, SIZE as CSB_SIZE};
use e1000_spec::desc;
use e1000_spec::regs::*;
use kvm_ioctls::{Kvm, VmFd};
use switch_port::eventfd::EventFd;
use vmm::irq::{IrqLine, IrqMode};
use vmm::net::backend::{BackendSpec, Port};
use vmm::net::worker::{poll_until_idle, Pollable};
use vmm::net::{NetConfig, NetDevice};
use vmm::stats::Stats;

use crate::e1000::{address, tx_descriptor, Rings, MAC, REGISTERS};
use crate::guest_memory::{GuestMemory, RAM_SIZE};
use crate::input::Input;

/// Operation codes (modulo [`op::COUNT`]). After every operation come
/// 0-3 CSB rewrites (count u8, then index u8 and value u32 each).
pub mod op {
    /// BAR0 write: selector u8 [offset u32], value u32.
    pub const MMIO_WRITE: u8 = 0;
    /// BAR0 read: selector u8 [offset u32].
    pub const MMIO_READ: u8 = 1;
    /// Rings and the CSB: tx page u16, tx descriptors/8 u8, rx page u16,
    /// rx descriptors/8 u8, buffer page u16, rctl u32, CSB page u16.
    pub const SETUP: u8 = 2;
    /// A TX descriptor: index u16, then as the e1000 target's.
    pub const TX_DESC: u8 = 3;
    /// An RX descriptor's buffer: index u16, address u32.
    pub const RX_DESC: u8 = 4;
    /// Guest memory bytes: address u32, run.
    pub const MEM: u8 = 5;
    /// The worker begins polling.
    pub const BEGIN_POLLING: u8 = 6;
    /// One worker round.
    pub const POLL: u8 = 7;
    /// The worker tries to sleep: rx_waiting bool.
    pub const TRY_SLEEP: u8 = 8;
    /// The vCPU thread's poll port.
    pub const POLL_ONCE: u8 = 9;
    /// The port kicked.
    pub const ON_KICK: u8 = 10;
    /// Deferred work.
    pub const ON_DEFERRED: u8 = 11;
    /// The guest publishes guest_tdt (value u16) and kicks through TDT.
    pub const TDT_KICK: u8 = 12;
    /// The moderation timerfd.
    pub const TIMER: u8 = 13;
    /// The bus-master bit: on bool.
    pub const BUS_MASTER: u8 = 14;
    /// A frame arrives at the port: run.
    pub const FRAME: u8 = 15;
    /// The worker's loop on another thread while this one rewrites the CSB
    /// and writes TDT: count u8, then index u8 and value u32 each (indices
    /// 32 and up write TDT instead).
    pub const THREADED: u8 = 16;
    /// The port's TX ring fills up or drains: full bool.
    pub const PORT_FULL: u8 = 17;
    /// Number of operation codes.
    pub const COUNT: u8 = 18;
}

/// The VM whose irqchip the device's interrupt line is wired to.
struct Machine {
    _vm: Arc<VmFd>,
    irq: Arc<IrqLine>,
    stats: Arc<Stats>,
}

fn machine() -> Option<&'static Machine> {
    static MACHINE: OnceLock<Option<Machine>> = OnceLock::new();
    MACHINE
        .get_or_init(|| {
            let made = (|| {
                let vm = Arc::new(Kvm::new().ok()?.create_vm().ok()?);
                vm.create_irq_chip().ok()?;
                let stats = Arc::new(Stats::new());
                let irq = IrqLine::new(&vm, 11, IrqMode::Edge, Arc::clone(&stats)).ok()?;
                Some(Machine {
                    _vm: vm,
                    irq: Arc::new(irq),
                    stats,
                })
            })();
            if made.is_none() {
                eprintln!("csb target: no KVM irqchip here, nothing is fuzzed");
            }
            made
        })
        .as_ref()
}

/// Frames waiting in the port at most.
const RX_QUEUE: usize = 64;
/// Most rounds of guest writes racing the worker in one threaded step.
/// Each TDT write may walk the whole ring (a tail set behind the head),
/// about 1 ms with the sanitizer: rounds bounded only by the worker's end
/// made one input take 3.9 s on an idle machine and 13 s, past the
/// fuzzer's timeout, in a loaded CI run.
const THREADED_ROUNDS: u32 = 1_000;
/// The longest time a threaded step's guest writes take.
const THREADED_TIME: Duration = Duration::from_millis(20);
/// The port's slot size.
const SLOT: usize = 2048;

/// What the harness shares with the port inside the device.
#[derive(Default)]
struct PortState {
    receive: VecDeque<Vec<u8>>,
    tx_full: bool,
}

/// A port whose frames come from the input and that checks what it is given.
struct FuzzPort {
    state: Arc<Mutex<PortState>>,
    slot: Vec<u8>,
    reserved: bool,
    committed: usize,
    current: Option<Vec<u8>>,
    kick: EventFd,
}

impl Port for FuzzPort {
    fn reserve(&mut self) -> Option<&mut [u8]> {
        if self.state.lock().unwrap().tx_full {
            return None;
        }
        self.reserved = true;
        Some(&mut self.slot)
    }

    fn commit(&mut self, len: usize) {
        assert!(self.reserved, "commit without reserve");
        assert!(len > 0 && len <= SLOT, "frame of {len} bytes for {SLOT}");
        self.reserved = false;
        self.committed += 1;
    }

    fn publish(&mut self) -> usize {
        std::mem::take(&mut self.committed)
    }

    fn peek(&mut self) -> Option<&[u8]> {
        if self.current.is_none() {
            self.current = self.state.lock().unwrap().receive.pop_front();
        }
        self.current.as_deref()
    }

    fn consume(&mut self) {
        assert!(
            self.current.take().is_some(),
            "consume without a peeked frame"
        );
    }

    fn release_rx(&mut self) {}

    fn kick_fd(&self) -> RawFd {
        self.kick.raw()
    }

    fn arm(&mut self, rx: bool, tx: bool) -> bool {
        let state = self.state.lock().unwrap();
        (rx && (self.current.is_some() || !state.receive.is_empty())) || (tx && !state.tx_full)
    }

    fn disarm(&mut self) {
        self.kick.drain();
    }

    fn kicks_sent(&self) -> u64 {
        0
    }

    fn max_frame(&self) -> usize {
        SLOT
    }
}

struct Harness {
    net: NetDevice,
    mem: GuestMemory,
    port: Arc<Mutex<PortState>>,
    csb: u64,
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let Some(machine) = machine() else { return };
    let mut input = Input::new(data);
    let mitigation = input.bool();
    let mem = GuestMemory::new(&[]);
    let state = Arc::new(Mutex::new(PortState::default()));
    let port = FuzzPort {
        state: Arc::clone(&state),
        slot: vec![0; SLOT],
        reserved: false,
        committed: 0,
        current: None,
        kick: EventFd::new().expect("eventfd"),
    };
    let mut config = NetConfig::new(BackendSpec::Sink, "/nonexistent".into(), MAC);
    config.mitigation = mitigation;
    config.spin = Duration::ZERO;
    let net = NetDevice::with_port(
        &config,
        Box::new(port),
        None,
        Arc::clone(mem.ram()),
        Arc::clone(&machine.irq),
        Arc::clone(&machine.stats),
    )
    .expect("the device");
    let mut h = Harness {
        net,
        mem,
        port: state,
        csb: 0x1000,
    };
    while !input.done() {
        h.step(&mut input);
        for _ in 0..input.u8() % 4 {
            let (index, value) = (input.u8(), input.u32());
            h.rewrite(index, value);
        }
    }
}

impl Harness {
    fn write(&self, offset: u32, value: u32) {
        self.net
            .mmio_write(0, u64::from(offset), &value.to_le_bytes());
    }

    fn read(&self, offset: u32) -> u32 {
        let mut data = [0u8; 4];
        self.net.mmio_read(0, u64::from(offset), &mut data);
        u32::from_le_bytes(data)
    }

    /// The guest rewrites CSB field `index` (of 32; both halves).
    fn rewrite(&self, index: u8, value: u32) {
        self.mem
            .poke_u32(self.csb + u64::from(index % 32) * 4, value);
    }

    fn ring(&self, low: u32, high: u32, length: u32) -> (u64, u32) {
        let base = u64::from(self.read(high)) << 32 | u64::from(self.read(low) & !0xF);
        (base, self.read(length) / desc::SIZE as u32)
    }

    /// Runs a worker-side step and checks that the heads it moved stay in
    /// their rings.
    fn worker_step(&self, step: impl FnOnce(&NetDevice)) {
        let heads = [(TDH, TDLEN), (RDH, RDLEN)].map(|(h, l)| (h, l, self.read(h), self.read(l)));
        step(&self.net);
        for (head, length, head_before, length_before) in heads {
            let now = self.read(head);
            let size = self.read(length) / desc::SIZE as u32;
            if now != head_before && self.read(length) == length_before {
                assert!(
                    now < size,
                    "head {head:#x} at {now} outside a ring of {size}"
                );
            }
        }
    }

    fn step(&mut self, input: &mut Input) {
        match input.u8() % op::COUNT {
            op::MMIO_WRITE => {
                let offset = offset(input);
                let value = input.u32();
                self.write(offset, value);
            }
            op::MMIO_READ => {
                let offset = offset(input);
                self.read(offset);
            }
            op::SETUP => self.setup(input),
            op::TX_DESC => {
                let (base, size) = self.ring(TDBAL, TDBAH, TDLEN);
                let index = u64::from(input.u16()) % u64::from(size.max(1));
                let d = tx_descriptor(input);
                self.mem.poke(base.wrapping_add(index * 16), &d);
            }
            op::RX_DESC => {
                let (base, size) = self.ring(RDBAL, RDBAH, RDLEN);
                let index = u64::from(input.u16()) % u64::from(size.max(1));
                let addr = address(input.u32());
                self.mem
                    .poke(base.wrapping_add(index * 16), &addr.to_le_bytes());
            }
            op::MEM => {
                let addr = address(input.u32());
                let bytes = input.run(4096);
                self.mem.poke(addr, bytes);
            }
            op::BEGIN_POLLING => self.worker_step(|n| n.begin_polling()),
            op::POLL => self.worker_step(|n| {
                n.poll();
            }),
            op::TRY_SLEEP => {
                let rx_waiting = input.bool();
                self.worker_step(|n| {
                    n.try_sleep(rx_waiting);
                });
            }
            op::POLL_ONCE => self.worker_step(|n| {
                n.poll_once();
            }),
            op::ON_KICK => self.worker_step(|n| {
                n.on_kick();
            }),
            op::ON_DEFERRED => self.worker_step(|n| {
                n.on_deferred();
            }),
            op::TDT_KICK => {
                let tail = u32::from(input.u16());
                self.mem.poke_u32(self.csb + field::GUEST_TDT as u64, tail);
                self.net.signal_tdt_kick();
                self.worker_step(|n| {
                    n.on_tdt_kick();
                });
            }
            op::TIMER => self.worker_step(|n| n.on_moderation_timer()),
            op::BUS_MASTER => {
                let on = input.bool();
                self.net.set_bus_master(on);
            }
            op::FRAME => {
                let mut frame = input.run(4000).to_vec();
                if frame.len() >= 6 && frame[0] & 1 == 0 {
                    frame[..6].copy_from_slice(&MAC);
                }
                let mut port = self.port.lock().unwrap();
                if port.receive.len() < RX_QUEUE {
                    port.receive.push_back(frame);
                }
            }
            op::THREADED => {
                let writes: Vec<(u8, u32)> = (0..input.u8() % 16)
                    .map(|_| (input.u8(), input.u32()))
                    .collect();
                self.threaded(&writes);
            }
            _ => {
                self.port.lock().unwrap().tx_full = input.bool();
            }
        }
    }

    /// Sets up both rings with buffers, then maps the CSB with guest_csb_on.
    fn setup(&mut self, input: &mut Input) {
        let Rings {
            tx_base,
            tx_len,
            rx_base,
            rx_len,
            rctl: rctl_value,
        } = Rings::place(input, &self.mem);
        self.csb = u64::from(input.u16()) * CSB_SIZE as u64 % RAM_SIZE;
        self.mem.poke(self.csb, &[0; 128]);
        self.mem.poke_u32(self.csb + field::GUEST_CSB_ON as u64, 1);
        self.mem
            .poke_u32(self.csb + field::GUEST_RDT as u64, rx_len / 16 - 1);
        for (offset, value) in [
            (TDBAL, tx_base as u32),
            (TDBAH, 0),
            (TDLEN, tx_len),
            (TDH, 0),
            (TDT, 0),
            (RDBAL, rx_base as u32),
            (RDBAH, 0),
            (RDLEN, rx_len),
            (RDH, 0),
            (RDT, 0),
            (IMS, 0xFFFF),
            (TCTL, tctl::EN | tctl::PSP),
            (RCTL, rctl_value),
            (CSBAH, 0),
            (CSBAL, self.csb as u32),
        ] {
            self.write(offset, value);
        }
    }

    /// The worker's loop on another thread while this thread plays the
    /// guest: CSB rewrites and TDT writes, cycling through `writes`.
    fn threaded(&self, writes: &[(u8, u32)]) {
        let net = &self.net;
        std::thread::scope(|scope| {
            let worker = scope.spawn(move || {
                let mut services = 0;
                poll_until_idle(net, Duration::ZERO, || {
                    services += 1;
                    if services > 3 {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                })
            });
            let mut rounds = 0;
            let start = Instant::now();
            while !worker.is_finished()
                && !writes.is_empty()
                && rounds < THREADED_ROUNDS
                && start.elapsed() < THREADED_TIME
            {
                for &(index, value) in writes {
                    if index >= 32 {
                        self.write(TDT, value & 0xFFFF);
                    } else {
                        self.rewrite(index, value);
                    }
                }
                rounds += 1;
            }
            let _ = worker.join().expect("the worker thread");
        });
    }
}

fn offset(input: &mut Input) -> u32 {
    let selector = usize::from(input.u8());
    match REGISTERS.get(selector) {
        Some(&offset) => offset,
        None => input.u32() % (MMIO_SIZE + 8),
    }
}
