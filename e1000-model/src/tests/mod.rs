//! Register-level and datapath tests of the e1000 model over a `Vec` guest
//! memory, an in-memory backend and a fake clock, one module per mechanism:
//! `eeprom_phy` (EEPROM through EERD and EECD, PHY through MDIC, link),
//! `interrupts` (ICR/ICS/IMS/IMC), `registers` (reset, odd accesses,
//! statistics), `rx` (filters, ring, buffers, VLAN, threshold), `tx` (ring,
//! chains, padding, VLAN), `offload` (checksums and TSO), `moderation`
//! (ITR and the delay timers), `csb` (the paravirtual extension and bus
//! mastering), `hostile` (bad rings, indices and descriptors, counted) and
//! `fuzz` (random abuse). `reference` holds independent references
//! (Internet checksum, CRC-32, frame builders).
//!
//! This module is the shared harness: the device with its fake trigger and
//! clock, guest memory laid out for rings and buffers, and builders of
//! descriptors and frames. Every number of the guest/device contract comes
//! from `e1000_spec`, as it does for the model and the guest driver.

mod csb;
mod eeprom_phy;
mod fuzz;
mod handover;
mod hostile;
mod interrupts;
mod moderation;
mod offload;
mod reference;
mod registers;
mod rx;
mod tx;

use std::cell::Cell;
use std::rc::Rc;

use e1000_spec::csb::{field, CSBAH, CSBAL};
use e1000_spec::desc::{self, context, data, ext, rx as rx_layout, tx as tx_layout};
use e1000_spec::regs::{
    rctl, tctl, RCTL, RDBAH, RDBAL, RDH, RDLEN, RDT, TCTL, TDBAH, TDBAL, TDH, TDLEN, TDT,
};

use super::{
    Clock, Dma, E1000Config, Effects, QueueBackend, RxOutcome, Trigger, TxOutcome, VecMemory, E1000,
};

/// The device's MAC address.
const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
/// A unicast peer the tests send to.
const PEER: [u8; 6] = [0x02, 0, 0, 0, 0, 2];
/// Guest memory size.
const MEM_SIZE: usize = 4 << 20;
/// The TX descriptor ring.
const TX_RING: u64 = 0x1_0000;
/// The RX descriptor ring.
const RX_RING: u64 = 0x2_0000;
/// TX buffers (placed by each test).
const TX_BUF: u64 = 0x10_0000;
/// RX buffers: descriptor `i` of [`Harness::setup_rx`] gets
/// `RX_BUF + i * RX_STRIDE`.
const RX_BUF: u64 = 0x20_0000;
/// Bytes between two RX buffers of [`Harness::setup_rx`].
const RX_STRIDE: u64 = 0x4000;
/// Where [`Harness::map_csb`] maps the CSB.
const CSB: u64 = 0x3000;

/// A clock the tests set by hand (ns).
#[derive(Clone, Default)]
struct FakeClock(Rc<Cell<u64>>);

impl Clock for FakeClock {
    fn now_ns(&self) -> u64 {
        self.0.get()
    }
}

/// The interrupt line: its level and the rising edges seen.
#[derive(Clone, Default)]
struct Edges {
    rising: Rc<Cell<u32>>,
    level: Rc<Cell<bool>>,
}

impl Trigger for Edges {
    fn set_level(&self, asserted: bool) {
        if asserted && !self.level.get() {
            self.rising.set(self.rising.get() + 1);
        }
        self.level.set(asserted);
    }
}

/// What the device wrote back into a receive descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RxWriteback {
    len: u16,
    status: u8,
    errors: u8,
    special: u16,
}

/// The device, its guest memory, its backend and the test's clock and line.
struct Harness {
    dev: E1000<Edges, FakeClock>,
    mem: VecMemory,
    net: QueueBackend,
    clock: Rc<Cell<u64>>,
    edges: Edges,
}

impl Harness {
    /// A stock device (no CSB) with moderation on or off.
    fn new(mitigation: bool) -> Self {
        let mut config = E1000Config::new(MAC);
        config.mitigation = mitigation;
        Self::with_config(config)
    }

    /// A device offering the CSB extension, moderation off.
    fn csb() -> Self {
        let mut config = E1000Config::new(MAC).with_csb(true);
        config.mitigation = false;
        Self::with_config(config)
    }

    fn with_config(config: E1000Config) -> Self {
        let clock = FakeClock::default();
        let edges = Edges::default();
        Self {
            dev: E1000::new(config, edges.clone(), clock.clone()),
            mem: VecMemory::new(MEM_SIZE),
            net: QueueBackend::new(2048, 4096),
            clock: clock.0,
            edges,
        }
    }

    /// Reads a register.
    fn r(&mut self, offset: u32) -> u32 {
        let mut data = [0u8; 4];
        self.dev.mmio_read(u64::from(offset), &mut data);
        u32::from_le_bytes(data)
    }

    /// Writes a register and, like a VMM, runs the work it asks for.
    fn w(&mut self, offset: u32, value: u32) {
        let effects = self.write_only(offset, value);
        if effects.process_tx {
            self.tx();
        }
        if effects.process_rx {
            self.rx();
        }
    }

    /// Writes a register without running the work it asks for.
    fn write_only(&mut self, offset: u32, value: u32) -> Effects {
        self.dev
            .mmio_write(u64::from(offset), &value.to_le_bytes(), &self.mem)
    }

    /// Runs the transmit path.
    fn tx(&mut self) -> TxOutcome {
        self.dev.process_tx(&self.mem, &mut self.net)
    }

    /// Runs the receive path.
    fn rx(&mut self) -> RxOutcome {
        self.dev.process_rx(&self.mem, &mut self.net)
    }

    /// The backend receives `frame`; then the receive path runs.
    fn deliver(&mut self, frame: &[u8]) -> RxOutcome {
        self.net.push_rx(frame);
        self.rx()
    }

    fn rising(&self) -> u32 {
        self.edges.rising.get()
    }

    /// Sets the clock and fires the moderation timer if it is due.
    fn set_time_us(&mut self, us: u64) {
        self.clock.set(us * 1000);
        if let Some(deadline) = self.dev.next_deadline() {
            if deadline <= us * 1000 {
                self.dev.on_timer(us * 1000);
            }
        }
    }

    /// Writes `bytes` to guest memory at `addr`.
    fn put(&self, addr: u64, bytes: &[u8]) {
        self.mem.write(addr, bytes).unwrap();
    }

    /// TX ring of `descriptors` at [`TX_RING`], head = tail = 0, enabled.
    fn setup_tx(&mut self, descriptors: u32) {
        self.w(TDBAL, TX_RING as u32);
        self.w(TDBAH, 0);
        self.w(TDLEN, descriptors * desc::SIZE as u32);
        self.w(TDH, 0);
        self.w(TDT, 0);
        self.w(TCTL, tctl::EN);
    }

    /// Writes TX descriptor `index`.
    fn put_tx(&self, index: u32, descriptor: [u8; desc::SIZE]) {
        self.put(TX_RING + u64::from(index) * desc::SIZE as u64, &descriptor);
    }

    /// Writes `frame` at `addr` and a legacy descriptor for it at `index`.
    fn put_tx_frame(&self, index: u32, addr: u64, frame: &[u8], command: u8) {
        self.put(addr, frame);
        self.put_tx(index, legacy(addr, frame.len() as u16, command));
    }

    /// The status byte of TX descriptor `index`.
    fn tx_status(&self, index: u32) -> u8 {
        let mut byte = [0u8];
        let at = TX_RING + u64::from(index) * desc::SIZE as u64 + tx_layout::STATUS as u64;
        self.mem.read(at, &mut byte).unwrap();
        byte[0]
    }

    /// RX ring of `descriptors` buffers of [`RX_STRIDE`] bytes; RDT left at
    /// 0; the receiver on with BAM, SECRC and `rctl_extra`.
    fn setup_rx(&mut self, descriptors: u32, rctl_extra: u32) {
        for i in 0..descriptors {
            self.put_rx_buffer(i, RX_BUF + u64::from(i) * RX_STRIDE);
        }
        self.w(RDBAL, RX_RING as u32);
        self.w(RDBAH, 0);
        self.w(RDLEN, descriptors * desc::SIZE as u32);
        self.w(RDH, 0);
        self.w(RDT, 0);
        self.w(RCTL, rctl::EN | rctl::BAM | rctl::SECRC | rctl_extra);
    }

    /// Points RX descriptor `index` at the buffer `addr` (the rest zeroed,
    /// as a driver gives it to the device).
    fn put_rx_buffer(&self, index: u32, addr: u64) {
        let mut d = [0u8; desc::SIZE];
        d[rx_layout::ADDR..rx_layout::ADDR + 8].copy_from_slice(&addr.to_le_bytes());
        self.put(RX_RING + u64::from(index) * desc::SIZE as u64, &d);
    }

    /// RX descriptor `index` as the device left it.
    fn rx_desc(&self, index: u32) -> [u8; desc::SIZE] {
        let mut d = [0u8; desc::SIZE];
        self.mem
            .read(RX_RING + u64::from(index) * desc::SIZE as u64, &mut d)
            .unwrap();
        d
    }

    /// What the device wrote back into RX descriptor `index`.
    fn rx_done(&self, index: u32) -> RxWriteback {
        let d = self.rx_desc(index);
        let le16 = |at: usize| u16::from_le_bytes([d[at], d[at + 1]]);
        RxWriteback {
            len: le16(rx_layout::LENGTH),
            status: d[rx_layout::STATUS],
            errors: d[rx_layout::ERRORS],
            special: le16(rx_layout::SPECIAL),
        }
    }

    /// The first `len` bytes of the buffer of RX descriptor `index` (as
    /// placed by [`Harness::setup_rx`]).
    fn rx_data(&self, index: u32, len: usize) -> Vec<u8> {
        let mut data = vec![0u8; len];
        self.mem
            .read(RX_BUF + u64::from(index) * RX_STRIDE, &mut data)
            .unwrap();
        data
    }

    /// The frames the device transmitted since the last call.
    fn sent(&mut self) -> Vec<Vec<u8>> {
        self.net.transmitted.drain(..).collect()
    }

    /// The CSB field at `field`.
    fn csb_get(&self, field: usize) -> u32 {
        self.mem.read_u32(CSB + field as u64).unwrap()
    }

    /// The guest writes the CSB field at `field`.
    fn csb_set(&self, field: usize, value: u32) {
        self.mem.write_u32(CSB + field as u64, value).unwrap();
    }

    /// The guest enables the CSB: guest_csb_on, then CSBAH and CSBAL.
    fn map_csb(&mut self) {
        self.csb_set(field::GUEST_CSB_ON, 1);
        self.w(CSBAH, 0);
        self.w(CSBAL, CSB as u32);
    }

    /// Queues `count` 60-byte frames at TX descriptors `first..` (RS set).
    fn queue_tx(&self, first: u32, count: u32, ring: u32) {
        for k in 0..count {
            let i = (first + k) % ring;
            let frame = eth_frame([0x02, 0, 0, 0, 0, 1], 60, (first + k) as u8);
            let buf = TX_BUF + u64::from(i) * 2048;
            self.put_tx_frame(i, buf, &frame, tx_layout::cmd::EOP | tx_layout::cmd::RS);
        }
    }
}

/// A legacy TX descriptor.
fn legacy(addr: u64, len: u16, command: u8) -> [u8; desc::SIZE] {
    let mut d = [0u8; desc::SIZE];
    d[tx_layout::ADDR..tx_layout::ADDR + 8].copy_from_slice(&addr.to_le_bytes());
    d[tx_layout::LENGTH..tx_layout::LENGTH + 2].copy_from_slice(&len.to_le_bytes());
    d[tx_layout::CMD] = command;
    d
}

/// The length / type / command dword of an extended descriptor.
fn ext_dword(len: u32, dtyp: u32, command: u8) -> [u8; 4] {
    let dword = (len & ext::LEN_MASK)
        | (dtyp << ext::DTYP_SHIFT)
        | (u32::from(command | tx_layout::cmd::DEXT) << ext::CMD_SHIFT);
    dword.to_le_bytes()
}

/// A TCP/IP data descriptor.
fn data_desc(addr: u64, len: u32, command: u8, options: u8) -> [u8; desc::SIZE] {
    let mut d = [0u8; desc::SIZE];
    d[data::ADDR..data::ADDR + 8].copy_from_slice(&addr.to_le_bytes());
    d[ext::DWORD..ext::DWORD + 4].copy_from_slice(&ext_dword(len, ext::DTYP_DATA, command));
    d[data::POPTS] = options;
    d
}

/// A TCP/IP context descriptor with every field given.
#[allow(clippy::too_many_arguments)]
fn context_desc(
    ipcss: u8,
    ipcso: u8,
    ipcse: u16,
    tucss: u8,
    tucso: u8,
    tucse: u16,
    paylen: u32,
    command: u8,
    hdrlen: u8,
    mss: u16,
) -> [u8; desc::SIZE] {
    let mut d = [0u8; desc::SIZE];
    d[context::IPCSS] = ipcss;
    d[context::IPCSO] = ipcso;
    d[context::IPCSE..context::IPCSE + 2].copy_from_slice(&ipcse.to_le_bytes());
    d[context::TUCSS] = tucss;
    d[context::TUCSO] = tucso;
    d[context::TUCSE..context::TUCSE + 2].copy_from_slice(&tucse.to_le_bytes());
    d[ext::DWORD..ext::DWORD + 4].copy_from_slice(&ext_dword(paylen, ext::DTYP_CONTEXT, command));
    d[context::HDRLEN] = hdrlen;
    d[context::MSS..context::MSS + 2].copy_from_slice(&mss.to_le_bytes());
    d
}

/// A context for an Ethernet + IPv4 (20-byte header) frame: IP checksum
/// over bytes 14..=33 into 24, the L4 checksum from 34 into `tucso`.
fn ipv4_context(tucso: u8, paylen: u32, command: u8, hdrlen: u8, mss: u16) -> [u8; desc::SIZE] {
    context_desc(14, 24, 33, 34, tucso, 0, paylen, command, hdrlen, mss)
}

/// A TSO context for Ethernet + IPv4 + TCP (TCP checksum at 50).
fn tso_context(paylen: u32, hdrlen: u8, mss: u16) -> [u8; desc::SIZE] {
    use context::tucmd;
    ipv4_context(50, paylen, tucmd::TCP | tucmd::IP | tucmd::TSE, hdrlen, mss)
}

/// An Ethernet frame of `len` bytes to `destination` with a test EtherType
/// and a payload derived from `seed`.
fn eth_frame(destination: [u8; 6], len: usize, seed: u8) -> Vec<u8> {
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&destination);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 9]);
    f.extend_from_slice(&0x88B5u16.to_be_bytes());
    while f.len() < len {
        f.push(seed.wrapping_add(f.len() as u8));
    }
    f
}
