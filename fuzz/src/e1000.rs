//! The `e1000` target: the e1000 model ([`vmm::e1000::E1000`]) over guest RAM
//! with holes ([`GuestMemory`], the VMM's DMA path), driven as a hostile
//! guest and a hostile backend would: register reads and writes through
//! BAR0 and the I/O BAR (any offset and size), ring set-ups, descriptor bytes
//! and buffer addresses in guest memory, tail writes, frames arriving from
//! the backend, moderation timers firing (early or late), resets, bus-master
//! flips, link changes, and CSB mappings and scribbles.
//!
//! After every operation the harness checks:
//! - the device wrote guest memory only where the guest allowed it: the
//!   status byte of TX descriptors it owned, the write-back half of RX
//!   descriptors it owned, the buffers those RX descriptors point to (within
//!   the buffer size), and the host half of a mapped CSB;
//! - heads the device moved (TDH, RDH, host_tdh, host_rdh) are inside their
//!   rings;
//! - every frame handed to the backend fits its slot and is not empty, and
//!   the backend protocol is kept (commit after reserve, consume after peek);
//! - the error counters never run backwards, nor do the statistics registers
//!   across operations that neither read registers nor reset.

use std::cell::Cell;
use std::collections::VecDeque;
use std::rc::Rc;

use e1000_spec::csb::{field, CSBAH, CSBAL, HOST_HALF, SIZE as CSB_SIZE};
use e1000_spec::desc::{self, rx as rx_desc, tx as tx_desc};
use e1000_spec::regs::*;
use e1000_spec::stats;
use vmm::e1000::rx::buffer_size;
use vmm::e1000::{Clock, E1000Config, Effects, ErrorCounters, NetBackend, Trigger, E1000};

use crate::guest_memory::{GuestMemory, Write, RAM_SIZE};
use crate::input::Input;

/// The device's MAC address.
pub const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

/// Operation codes (the first byte of each operation, modulo [`op::COUNT`]).
pub mod op {
    /// BAR0 write of a register from [`super::REGISTERS`] (or any offset):
    /// selector u8, [offset u32 if the selector is past the table], value u32.
    pub const MMIO_WRITE: u8 = 0;
    /// BAR0 read: selector u8 [offset u32].
    pub const MMIO_READ: u8 = 1;
    /// BAR0 access of any size: offset u32, len u8, write bool, value u64.
    pub const MMIO_ODD: u8 = 2;
    /// I/O BAR write: offset u8, len u8, value u32.
    pub const IO_WRITE: u8 = 3;
    /// I/O BAR read: offset u8, len u8.
    pub const IO_READ: u8 = 4;
    /// Both rings set up and enabled: tx page u16, tx descriptors/8 u8,
    /// rx page u16, rx descriptors/8 u8, buffer page u16, rctl u32, tctl u32.
    pub const SETUP: u8 = 5;
    /// A TX descriptor: index u16, raw bool, then 16 raw bytes or address
    /// u32 and 8 raw bytes.
    pub const TX_DESC: u8 = 6;
    /// An RX descriptor's buffer address: index u16, address u32.
    pub const RX_DESC: u8 = 7;
    /// Guest memory bytes: address u32, run.
    pub const MEM: u8 = 8;
    /// TDT (tx true) or RDT write: tx bool, value u16 (modulo ring size + 1).
    pub const TAIL: u8 = 9;
    /// A frame from the backend: destination u8 (0 ours, 1 broadcast, else
    /// as given), run.
    pub const FRAME: u8 = 10;
    /// Run TX and RX as the I/O thread would.
    pub const PROCESS: u8 = 11;
    /// Time passes: ns u32; the timer fires if due (or early, odd values).
    pub const TIMER: u8 = 12;
    /// CTRL.RST.
    pub const RESET: u8 = 13;
    /// The PCI bus-master bit: on bool.
    pub const BUS_MASTER: u8 = 14;
    /// The link: up bool.
    pub const LINK: u8 = 15;
    /// CSBAH then CSBAL: address u32.
    pub const CSB_MAP: u8 = 16;
    /// The guest writes a CSB field: index u8, value u32.
    pub const CSB_FIELD: u8 = 17;
    /// The net worker's CSB steps: polling bool, rx_waiting bool.
    pub const CSB_WORKER: u8 = 18;
    /// The backend takes the frames sent so far (TX space frees up).
    pub const DRAIN: u8 = 19;
    /// Number of operation codes.
    pub const COUNT: u8 = 20;
}

/// Registers the operations pick from (a selector past the end reads a raw
/// offset from the input).
pub const REGISTERS: &[u32] = &[
    CTRL,
    STATUS,
    EECD,
    EERD,
    CTRL_EXT,
    MDIC,
    ICR,
    ITR,
    ICS,
    IMS,
    IMC,
    RCTL,
    TCTL,
    RDBAL,
    RDBAH,
    RDLEN,
    RDH,
    RDT,
    RDTR,
    RADV,
    TDBAL,
    TDBAH,
    TDLEN,
    TDH,
    TDT,
    TIDV,
    TADV,
    CSBAL,
    CSBAH,
    VET,
    RXDCTL,
    TXDCTL,
    MTA,
    RA,
    0x5404,
    VFTA,
    stats::START,
    stats::GOTCL + 4,
    stats::TPR,
];

/// Words of [`ErrorCounters`] (all its fields are u64).
const COUNTER_WORDS: usize = std::mem::size_of::<ErrorCounters>() / 8;

/// Frames waiting in the backend at most.
const RX_QUEUE: usize = 64;
/// RX rounds per kick, as the VMM does.
const RX_ROUNDS: u32 = 16;
/// Descriptors whose buffer addresses are snapshotted before an RX run; a
/// larger ring skips the buffer check.
const SNAPSHOT_LIMIT: u32 = 4096;

/// Where a target puts both descriptor rings and the RX buffers, read from
/// the input; [`Rings::place`] also writes the RX descriptors.
pub(crate) struct Rings {
    /// TX ring base address.
    pub tx_base: u64,
    /// TX ring length in bytes (TDLEN).
    pub tx_len: u32,
    /// RX ring base address.
    pub rx_base: u64,
    /// RX ring length in bytes (RDLEN).
    pub rx_len: u32,
    /// RCTL, enabled.
    pub rctl: u32,
}

impl Rings {
    /// Reads the placement from `input` and gives every RX descriptor its
    /// own buffer, one RCTL buffer size apart.
    pub(crate) fn place(input: &mut Input, mem: &GuestMemory) -> Rings {
        let tx_base = u64::from(input.u16()) * 16 % RAM_SIZE;
        let tx_len = (u32::from(input.u8() % 64) + 1) * 128;
        let rx_base = u64::from(input.u16()) * 16 % RAM_SIZE;
        let rx_len = (u32::from(input.u8() % 64) + 1) * 128;
        let buffers = u64::from(input.u16()) * 64 % RAM_SIZE;
        let rctl = input.u32() | rctl::EN;
        let stride = buffer_size(rctl) as u64;
        for i in 0..u64::from(rx_len) / desc::SIZE as u64 {
            let mut d = [0u8; desc::SIZE];
            d[..8].copy_from_slice(&(buffers + i * stride).to_le_bytes());
            mem.poke(rx_base + i * desc::SIZE as u64, &d);
        }
        Rings {
            tx_base,
            tx_len,
            rx_base,
            rx_len,
            rctl,
        }
    }
}

/// The moderation clock, set by the input.
#[derive(Clone, Default)]
struct FakeClock(Rc<Cell<u64>>);

impl Clock for FakeClock {
    fn now_ns(&self) -> u64 {
        self.0.get()
    }
}

/// The interrupt line (its level only).
#[derive(Clone, Default)]
struct Line(Rc<Cell<bool>>);

impl Trigger for Line {
    fn set_level(&self, asserted: bool) {
        self.0.set(asserted);
    }
}

/// A backend that checks the protocol and the frames it is given.
struct Backend {
    slot: Vec<u8>,
    reserved: bool,
    queued: usize,
    capacity: usize,
    receive: VecDeque<Vec<u8>>,
    peeked: bool,
    sent: u64,
}

impl NetBackend for Backend {
    fn tx_reserve(&mut self) -> Option<&mut [u8]> {
        if self.queued >= self.capacity {
            return None;
        }
        self.reserved = true;
        Some(&mut self.slot)
    }

    fn tx_commit(&mut self, len: usize) {
        assert!(self.reserved, "tx_commit without tx_reserve");
        assert!(
            len > 0 && len <= self.slot.len(),
            "frame of {len} bytes for a {}-byte slot",
            self.slot.len()
        );
        self.reserved = false;
        self.queued += 1;
        self.sent += 1;
    }

    fn tx_flush(&mut self) {}

    fn rx_peek(&mut self) -> Option<&[u8]> {
        self.peeked = !self.receive.is_empty();
        self.receive.front().map(Vec::as_slice)
    }

    fn rx_consume(&mut self) {
        assert!(self.peeked, "rx_consume without a frame from rx_peek");
        self.peeked = false;
        self.receive.pop_front();
    }

    fn rx_flush(&mut self) {}
}

/// A descriptor ring as the device will see it.
#[derive(Clone, Copy, Debug)]
struct RingSnapshot {
    base: u64,
    size: u32,
    head: u32,
    /// TDT/RDT, and the CSB's guest index when mapped.
    tails: [Option<u32>; 2],
}

impl RingSnapshot {
    fn distance(&self, from: u32, to: u32) -> u32 {
        if to >= from {
            to - from
        } else {
            self.size - from + to
        }
    }

    /// Whether descriptor `index` is the device's (between head and a tail).
    fn owned(&self, index: u32) -> bool {
        self.head < self.size
            && index < self.size
            && self.tails.iter().flatten().any(|&t| {
                t < self.size && self.distance(self.head, index) < self.distance(self.head, t)
            })
    }

    /// The descriptor index of `gpa` and its offset inside the descriptor.
    fn locate(&self, gpa: u64) -> Option<(u32, usize)> {
        let offset = gpa.checked_sub(self.base)?;
        let index = offset / desc::SIZE as u64;
        (index < u64::from(self.size))
            .then(|| (index as u32, (offset % desc::SIZE as u64) as usize))
    }
}

/// What a model call may write.
enum Allowed {
    /// Only the CSB's host half.
    Csb,
    /// TX status bytes of owned descriptors (and the CSB).
    Tx(Option<RingSnapshot>),
    /// RX write-backs and buffers of owned descriptors (and the CSB).
    Rx {
        ring: Option<RingSnapshot>,
        buffers: Option<Vec<u64>>,
        buffer_size: u64,
    },
}

struct Harness {
    dev: E1000<Line, FakeClock>,
    mem: GuestMemory,
    net: Backend,
    clock: Rc<Cell<u64>>,
    errors: Vec<u64>,
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.u8();
    let holes: Vec<u16> = (0..input.u8() % 5).map(|_| input.u16()).collect();
    let mut config = E1000Config::new(MAC).with_csb(flags & 1 != 0);
    config.mitigation = flags & 2 != 0;
    let slot = match (flags >> 2) & 3 {
        0 => 2048,
        1 => 16384,
        2 => 128,
        _ => 9216,
    };
    let clock = FakeClock::default();
    let mut h = Harness {
        dev: E1000::new(config, Line::default(), clock.clone()),
        mem: GuestMemory::new(&holes),
        net: Backend {
            slot: vec![0; slot],
            reserved: false,
            queued: 0,
            capacity: 1 + usize::from(flags >> 4) * 16,
            receive: VecDeque::new(),
            peeked: false,
            sent: 0,
        },
        clock: clock.0,
        errors: Vec::new(),
    };
    h.check_counter_layout();
    h.errors = h.error_counters();
    while !input.done() {
        h.step(&mut input);
    }
}

/// A guest-physical address from 32 input bits: mostly inside RAM (and just
/// past it), sometimes at its end, sometimes far away.
pub(crate) fn address(raw: u32) -> u64 {
    match raw >> 30 {
        0 | 1 => u64::from(raw) % (RAM_SIZE + 0x2000),
        2 => RAM_SIZE - u64::from(raw & 0xFFF),
        _ => u64::MAX - u64::from(raw & 0xFFFF) * 0x1_0000,
    }
}

impl Harness {
    fn reg(&mut self, offset: u32) -> u32 {
        self.dev.read_register(offset)
    }

    fn offset(input: &mut Input) -> u32 {
        let selector = usize::from(input.u8());
        match REGISTERS.get(selector) {
            Some(&offset) => offset,
            None => input.u32() % (MMIO_SIZE + 8),
        }
    }

    fn step(&mut self, input: &mut Input) {
        let code = input.u8() % op::COUNT;
        let stats_before = self.statistics();
        let mut stats_may_drop = false;
        match code {
            op::MMIO_WRITE => {
                let offset = Self::offset(input);
                let value = input.u32();
                let effects = self.checked(Allowed::Csb, |h| {
                    h.dev
                        .mmio_write(u64::from(offset), &value.to_le_bytes(), &h.mem)
                });
                self.run_effects(effects);
                stats_may_drop = true;
            }
            op::MMIO_READ => {
                let offset = Self::offset(input);
                let mut data = [0u8; 4];
                self.dev.mmio_read(u64::from(offset), &mut data);
                stats_may_drop = true;
            }
            op::MMIO_ODD => {
                let offset = u64::from(input.u32() % (MMIO_SIZE + 16));
                let len = usize::from(input.u8() % 9);
                let write = input.bool();
                let value = input.u64().to_le_bytes();
                if write {
                    let effects = self.checked(Allowed::Csb, |h| {
                        h.dev.mmio_write(offset, &value[..len], &h.mem)
                    });
                    self.run_effects(effects);
                } else {
                    let mut data = vec![0u8; len];
                    self.dev.mmio_read(offset, &mut data);
                }
                stats_may_drop = true;
            }
            op::IO_WRITE => {
                let offset = u64::from(input.u8() % 12);
                let len = usize::from(input.u8() % 9).min(4);
                let value = input.u32().to_le_bytes();
                let effects = self.checked(Allowed::Csb, |h| {
                    h.dev.io_write(offset, &value[..len], &h.mem)
                });
                self.run_effects(effects);
                stats_may_drop = true;
            }
            op::IO_READ => {
                let offset = u64::from(input.u8() % 12);
                let mut data = vec![0u8; usize::from(input.u8() % 9)];
                self.dev.io_read(offset, &mut data);
                stats_may_drop = true;
            }
            op::SETUP => {
                self.setup(input);
                stats_may_drop = true;
            }
            op::TX_DESC => {
                let (base, size) = self.ring_registers(TDBAL, TDBAH, TDLEN);
                let index = u64::from(input.u16()) % u64::from(size.max(1));
                let d = tx_descriptor(input);
                self.mem
                    .poke(base.wrapping_add(index * desc::SIZE as u64), &d);
            }
            op::RX_DESC => {
                let (base, size) = self.ring_registers(RDBAL, RDBAH, RDLEN);
                let index = u64::from(input.u16()) % u64::from(size.max(1));
                let addr = address(input.u32());
                self.mem.poke(
                    base.wrapping_add(index * desc::SIZE as u64),
                    &addr.to_le_bytes(),
                );
            }
            op::MEM => {
                let addr = address(input.u32());
                let bytes = input.run(4096);
                self.mem.poke(addr, bytes);
            }
            op::TAIL => {
                let tx = input.bool();
                let raw = input.u16();
                let (length, tail) = if tx { (TDLEN, TDT) } else { (RDLEN, RDT) };
                let size = self.reg(length) / desc::SIZE as u32;
                let value = u32::from(raw) % (size + 1);
                let effects = self.checked(Allowed::Csb, |h| {
                    h.dev
                        .mmio_write(u64::from(tail), &value.to_le_bytes(), &h.mem)
                });
                self.run_effects(effects);
            }
            op::FRAME => {
                let destination = input.u8();
                let mut frame = input.run(20_000).to_vec();
                let mac = match destination {
                    0 => Some(MAC),
                    1 => Some([0xFF; 6]),
                    _ => None,
                };
                if let (Some(mac), true) = (mac, frame.len() >= 6) {
                    frame[..6].copy_from_slice(&mac);
                }
                if self.net.receive.len() < RX_QUEUE {
                    self.net.receive.push_back(frame);
                }
                self.run_effects(Effects {
                    process_rx: true,
                    ..Effects::default()
                });
            }
            op::PROCESS => self.run_effects(Effects {
                process_tx: true,
                process_rx: true,
                csb_kick: false,
            }),
            op::TIMER => {
                let advance = input.u32();
                let now = self.clock.get().saturating_add(u64::from(advance));
                self.clock.set(now);
                let due = self.dev.next_deadline().is_some_and(|d| d <= now);
                if due || advance & 1 != 0 {
                    self.dev.on_timer(now);
                }
            }
            op::RESET => {
                self.checked(Allowed::Csb, |h| {
                    h.dev
                        .mmio_write(u64::from(CTRL), &ctrl::RST.to_le_bytes(), &h.mem)
                });
                stats_may_drop = true;
            }
            op::BUS_MASTER => {
                let on = input.bool();
                let was = self.dev.bus_master();
                self.checked(Allowed::Csb, |h| h.dev.set_bus_master(on, &h.mem));
                if on && !was {
                    self.run_effects(Effects {
                        process_tx: true,
                        process_rx: true,
                        csb_kick: false,
                    });
                }
            }
            op::LINK => {
                let up = input.bool();
                self.dev.set_link(up);
            }
            op::CSB_MAP => {
                let raw = input.u32();
                let addr = if raw & 3 == 0 {
                    address(raw) & !(CSB_SIZE as u64 - 1)
                } else {
                    address(raw)
                };
                for (offset, value) in [(CSBAH, (addr >> 32) as u32), (CSBAL, addr as u32)] {
                    self.checked(Allowed::Csb, |h| {
                        h.dev
                            .mmio_write(u64::from(offset), &value.to_le_bytes(), &h.mem)
                    });
                }
            }
            op::CSB_FIELD => {
                let index = u64::from(input.u8() % 32);
                let value = input.u32();
                if let Some(base) = self.dev.csb_address() {
                    self.mem.poke(base + index * 4, &value.to_le_bytes());
                }
            }
            op::CSB_WORKER => {
                let polling = input.bool();
                let rx_waiting = input.bool();
                self.checked(Allowed::Csb, |h| {
                    if polling {
                        h.dev.csb_enter_polling(&h.mem);
                    } else {
                        h.dev.csb_prepare_sleep(&h.mem, rx_waiting);
                    }
                });
            }
            _ => {
                self.net.queued = 0;
                self.run_effects(Effects {
                    process_tx: true,
                    ..Effects::default()
                });
            }
        }
        self.check_counters(stats_before, stats_may_drop);
    }

    /// Sets up and enables both rings, with an RX buffer per descriptor.
    fn setup(&mut self, input: &mut Input) {
        let Rings {
            tx_base,
            tx_len,
            rx_base,
            rx_len,
            rctl: rctl_value,
        } = Rings::place(input, &self.mem);
        let tctl_value = input.u32() | tctl::EN;
        let writes = [
            (TDBAL, tx_base as u32),
            (TDBAH, 0),
            (TDLEN, tx_len),
            (TDH, 0),
            (TDT, 0),
            (TCTL, tctl_value),
            (RDBAL, rx_base as u32),
            (RDBAH, 0),
            (RDLEN, rx_len),
            (RDH, 0),
            (RDT, 0),
            (RCTL, rctl_value),
            (IMS, 0xFFFF),
        ];
        for (offset, value) in writes {
            let effects = self.checked(Allowed::Csb, |h| {
                h.dev
                    .mmio_write(u64::from(offset), &value.to_le_bytes(), &h.mem)
            });
            self.run_effects(effects);
        }
    }

    fn ring_registers(&mut self, low: u32, high: u32, length: u32) -> (u64, u32) {
        let base = u64::from(self.reg(high)) << 32 | u64::from(self.reg(low) & !0xF);
        (base, self.reg(length) / desc::SIZE as u32)
    }

    fn snapshot(&mut self, tx: bool) -> Option<RingSnapshot> {
        let (low, high, length, head, tail, guest) = if tx {
            (TDBAL, TDBAH, TDLEN, TDH, TDT, field::GUEST_TDT)
        } else {
            (RDBAL, RDBAH, RDLEN, RDH, RDT, field::GUEST_RDT)
        };
        let (base, size) = self.ring_registers(low, high, length);
        if size == 0 {
            return None;
        }
        let guest_tail = self
            .dev
            .csb_address()
            .and_then(|csb| self.mem.peek_u32(csb + guest as u64));
        Some(RingSnapshot {
            base,
            size,
            head: self.reg(head),
            tails: [Some(self.reg(tail)), guest_tail],
        })
    }

    /// The buffer addresses of the RX descriptors the device owns (none
    /// while no frame waits: the receive path writes nothing then).
    fn rx_buffers(&self, ring: &RingSnapshot) -> Option<Vec<u64>> {
        if self.net.receive.is_empty() {
            return Some(Vec::new());
        }
        if ring.size > SNAPSHOT_LIMIT {
            return None;
        }
        let mut bytes = vec![0u8; ring.size as usize * desc::SIZE];
        if !self.mem.peek(ring.base, &mut bytes) {
            // Not all readable: the device cannot use the ring either.
            return Some(Vec::new());
        }
        let addresses = bytes
            .chunks_exact(desc::SIZE)
            .enumerate()
            .filter(|&(index, _)| ring.owned(index as u32))
            .map(|(_, d)| u64::from_le_bytes(pad::<8>(&d[..8])))
            .collect();
        Some(addresses)
    }

    /// Runs the work `effects` asks for, as the VMM's register path does.
    fn run_effects(&mut self, effects: Effects) {
        if effects.process_tx || effects.csb_kick {
            let ring = self.snapshot(true);
            let before = self.reg(TDH);
            self.checked(Allowed::Tx(ring), |h| h.dev.process_tx(&h.mem, &mut h.net));
            let head = self.reg(TDH);
            if let (Some(ring), true) = (ring, head != before) {
                assert!(
                    head < ring.size,
                    "TDH {head} outside a ring of {}",
                    ring.size
                );
            }
        }
        if effects.process_rx || effects.csb_kick {
            for _ in 0..RX_ROUNDS {
                let ring = self.snapshot(false);
                let buffers = ring.as_ref().and_then(|r| self.rx_buffers(r));
                let buffer_size = buffer_size(self.reg(RCTL)) as u64;
                let before = self.reg(RDH);
                let allowed = Allowed::Rx {
                    ring,
                    buffers,
                    buffer_size,
                };
                let outcome = self.checked(allowed, |h| h.dev.process_rx(&h.mem, &mut h.net));
                let head = self.reg(RDH);
                if let (Some(ring), true) = (ring, head != before) {
                    assert!(
                        head < ring.size,
                        "RDH {head} outside a ring of {}",
                        ring.size
                    );
                }
                if !outcome.more {
                    break;
                }
            }
        }
    }

    /// Runs `call` and checks every guest memory write it made against
    /// `allowed`.
    fn checked<R>(&mut self, allowed: Allowed, call: impl FnOnce(&mut Self) -> R) -> R {
        let csb_before = self.dev.csb_address();
        self.mem.take_log();
        let result = call(self);
        let csb_after = self.dev.csb_address();
        for write in self.mem.take_log() {
            let csb_ok = [csb_before, csb_after]
                .into_iter()
                .flatten()
                .any(|base| csb_host_write(base, &write, &allowed));
            if csb_ok || self.ring_write_allowed(&write, &allowed) {
                continue;
            }
            panic!(
                "device wrote {} bytes at {:#x} outside what the guest gave it",
                write.len, write.gpa
            );
        }
        result
    }

    fn ring_write_allowed(&self, write: &Write, allowed: &Allowed) -> bool {
        match allowed {
            Allowed::Csb => false,
            Allowed::Tx(ring) => ring.is_some_and(|ring| {
                write.len == 1
                    && ring
                        .locate(write.gpa)
                        .is_some_and(|(i, at)| at == tx_desc::STATUS && ring.owned(i))
            }),
            Allowed::Rx {
                ring,
                buffers,
                buffer_size,
            } => {
                let Some(ring) = ring else { return false };
                let writeback = write.len == desc::SIZE - rx_desc::LENGTH
                    && ring
                        .locate(write.gpa)
                        .is_some_and(|(i, at)| at == rx_desc::LENGTH && ring.owned(i));
                if writeback {
                    return true;
                }
                let Some(buffers) = buffers else { return true };
                let end = write.gpa.saturating_add(write.len as u64);
                let inside =
                    |addr: u64| write.gpa >= addr && end <= addr.saturating_add(*buffer_size);
                // The buffer addresses as the device read them: before the
                // run, or after (a buffer may overlap the ring itself).
                buffers.iter().any(|&a| inside(a))
                    || self
                        .rx_buffers(ring)
                        .is_some_and(|b| b.iter().any(|&a| inside(a)))
            }
        }
    }

    /// The error counters as words: ErrorCounters holds only u64 fields
    /// (checked once per run by [`Harness::check_counter_layout`]), so its
    /// memory is a `[u64; N]` in some field order, the same in every
    /// snapshot. Serializing them after every operation cost most of the
    /// harness's time.
    fn error_counters(&self) -> Vec<u64> {
        let errors: &ErrorCounters = self.dev.errors();
        // SAFETY: the struct is only u64 fields, so it has no padding and
        // its size is COUNTER_WORDS * 8 bytes of initialized, 8-byte aligned
        // u64s; the slice borrows it for the copy only.
        let words = unsafe {
            std::slice::from_raw_parts(
                (errors as *const ErrorCounters).cast::<u64>(),
                COUNTER_WORDS,
            )
        };
        words.to_vec()
    }

    /// Checks that every field of ErrorCounters is a number (its JSON form
    /// holds COUNTER_WORDS numbers and nothing else), which
    /// [`Harness::error_counters`] relies on.
    fn check_counter_layout(&self) {
        let json = serde_json::to_value(self.dev.errors()).expect("counters serialize");
        let fields = json.as_object().expect("a struct");
        assert!(
            fields.len() == COUNTER_WORDS && fields.values().all(|v| v.as_u64().is_some()),
            "ErrorCounters is no longer only u64 fields: update the harness"
        );
    }

    fn statistics(&self) -> Vec<u32> {
        (stats::START..stats::END)
            .step_by(4)
            .map(|offset| self.dev.statistics().peek(offset))
            .collect()
    }

    fn check_counters(&mut self, stats_before: Vec<u32>, stats_may_drop: bool) {
        let errors = self.error_counters();
        for (i, (now, before)) in errors.iter().zip(&self.errors).enumerate() {
            assert!(
                now >= before,
                "error counter #{i} went back from {before} to {now}: {:?}",
                self.dev.errors()
            );
        }
        self.errors = errors;
        if !stats_may_drop {
            for (i, (now, before)) in self.statistics().iter().zip(&stats_before).enumerate() {
                assert!(
                    now >= before,
                    "statistics register {:#x} went back from {before} to {now}",
                    stats::START + 4 * i as u32
                );
            }
        }
    }
}

/// Whether `write` is a 4-byte store into the host half of the CSB at
/// `base`; during a ring walk, a head it publishes must be inside the ring.
fn csb_host_write(base: u64, write: &Write, allowed: &Allowed) -> bool {
    let Some(offset) = write.gpa.checked_sub(base) else {
        return false;
    };
    let inside = write.len == 4
        && offset.is_multiple_of(4)
        && (HOST_HALF as u64..CSB_SIZE as u64).contains(&offset);
    if inside {
        let ring = match (allowed, offset as usize) {
            (Allowed::Tx(ring), field::HOST_TDH) => *ring,
            (Allowed::Rx { ring, .. }, field::HOST_RDH) => *ring,
            _ => None,
        };
        if let (Some(ring), Some(value)) = (ring, write.value) {
            assert!(
                value < ring.size,
                "published head {value} outside a ring of {}",
                ring.size
            );
        }
    }
    inside
}

/// A TX descriptor: 16 raw bytes, or an address and 8 raw bytes.
pub(crate) fn tx_descriptor(input: &mut Input) -> [u8; desc::SIZE] {
    let mut d = [0u8; desc::SIZE];
    if input.bool() {
        d.copy_from_slice(&pad::<16>(input.bytes(16)));
    } else {
        d[..8].copy_from_slice(&address(input.u32()).to_le_bytes());
        d[8..].copy_from_slice(&pad::<8>(input.bytes(8)));
    }
    d
}

/// `bytes` zero-padded to `N`.
pub(crate) fn pad<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out[..bytes.len()].copy_from_slice(bytes);
    out
}
