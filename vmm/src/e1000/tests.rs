//! Register-level and datapath tests of the e1000 model over a `Vec` guest
//! memory, an in-memory backend and a fake clock.

use std::cell::Cell;
use std::rc::Rc;

use e1000_spec::csb::{self, CSBAH, CSBAL};
use e1000_spec::desc::context::tucmd;
use e1000_spec::desc::data::popts;
use e1000_spec::desc::rx::status as rxs;
use e1000_spec::desc::tx::cmd;
use e1000_spec::eeprom::{CHECKSUM_SUM as EEPROM_SUM, WORDS as EEPROM_WORDS};
use e1000_spec::pci::{DEVICE_ID, SUBSYSTEM_ID as DEFAULT_SUBSYSTEM_ID, VENDOR_ID};
use e1000_spec::phy::{reg as phyreg, ID1};
use e1000_spec::regs::*;
use e1000_spec::stats as st;

use super::rx::multicast_hash;
use super::*;

const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const MEM_SIZE: usize = 4 << 20;
const TX_RING: u64 = 0x1_0000;
const RX_RING: u64 = 0x2_0000;
const TX_BUF: u64 = 0x10_0000;
const RX_BUF: u64 = 0x20_0000;
const RX_STRIDE: u64 = 0x4000;

#[derive(Clone, Default)]
struct FakeClock(Rc<Cell<u64>>);

impl Clock for FakeClock {
    fn now_ns(&self) -> u64 {
        self.0.get()
    }
}

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

struct Harness {
    dev: E1000<Edges, FakeClock>,
    mem: VecMemory,
    net: QueueBackend,
    clock: Rc<Cell<u64>>,
    edges: Edges,
}

impl Harness {
    fn new(mitigation: bool) -> Self {
        let mut config = E1000Config::new(MAC);
        config.mitigation = mitigation;
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

    fn r(&mut self, offset: u32) -> u32 {
        let mut data = [0u8; 4];
        self.dev.mmio_read(u64::from(offset), &mut data);
        u32::from_le_bytes(data)
    }

    /// Writes a register and, like a VMM, runs the work it asks for.
    fn w(&mut self, offset: u32, value: u32) {
        let effects = self
            .dev
            .mmio_write(u64::from(offset), &value.to_le_bytes(), &self.mem);
        if effects.process_tx {
            self.dev.process_tx(&self.mem, &mut self.net);
        }
        if effects.process_rx {
            self.dev.process_rx(&self.mem, &mut self.net);
        }
    }

    fn rising(&self) -> u32 {
        self.edges.rising.get()
    }

    fn set_time_us(&mut self, us: u64) {
        self.clock.set(us * 1000);
        if let Some(deadline) = self.dev.next_deadline() {
            if deadline <= us * 1000 {
                self.dev.on_timer(us * 1000);
            }
        }
    }

    fn setup_tx(&mut self, descriptors: u32) {
        self.w(TDBAL, TX_RING as u32);
        self.w(TDBAH, 0);
        self.w(TDLEN, descriptors * 16);
        self.w(TDH, 0);
        self.w(TDT, 0);
        self.w(TCTL, tctl::EN);
    }

    fn put_tx(&self, index: u32, descriptor: [u8; 16]) {
        self.mem
            .write(TX_RING + u64::from(index) * 16, &descriptor)
            .unwrap();
    }

    fn tx_status(&self, index: u32) -> u8 {
        let mut byte = [0u8];
        self.mem
            .read(TX_RING + u64::from(index) * 16 + 12, &mut byte)
            .unwrap();
        byte[0]
    }

    /// RX ring of `descriptors` buffers of RX_STRIDE bytes; RDT left at 0.
    fn setup_rx(&mut self, descriptors: u32, rctl_extra: u32) {
        for i in 0..descriptors {
            let mut d = [0u8; 16];
            d[..8].copy_from_slice(&(RX_BUF + u64::from(i) * RX_STRIDE).to_le_bytes());
            self.mem.write(RX_RING + u64::from(i) * 16, &d).unwrap();
        }
        self.w(RDBAL, RX_RING as u32);
        self.w(RDBAH, 0);
        self.w(RDLEN, descriptors * 16);
        self.w(RDH, 0);
        self.w(RDT, 0);
        self.w(RCTL, rctl::EN | rctl::BAM | rctl::SECRC | rctl_extra);
    }

    fn rx_desc(&self, index: u32) -> [u8; 16] {
        let mut d = [0u8; 16];
        self.mem
            .read(RX_RING + u64::from(index) * 16, &mut d)
            .unwrap();
        d
    }

    fn rx_data(&self, index: u32, len: usize) -> Vec<u8> {
        let mut data = vec![0u8; len];
        self.mem
            .read(RX_BUF + u64::from(index) * RX_STRIDE, &mut data)
            .unwrap();
        data
    }

    fn sent(&mut self) -> Vec<Vec<u8>> {
        self.net.transmitted.drain(..).collect()
    }
}

fn legacy(addr: u64, len: u16, command: u8) -> [u8; 16] {
    let mut d = [0u8; 16];
    d[..8].copy_from_slice(&addr.to_le_bytes());
    d[8..10].copy_from_slice(&len.to_le_bytes());
    d[11] = command;
    d
}

fn data_desc(addr: u64, len: u32, command: u8, options: u8) -> [u8; 16] {
    let mut d = [0u8; 16];
    d[..8].copy_from_slice(&addr.to_le_bytes());
    let dword = (len & 0xF_FFFF) | (1 << 20) | (u32::from(command | cmd::DEXT) << 24);
    d[8..12].copy_from_slice(&dword.to_le_bytes());
    d[13] = options;
    d
}

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
) -> [u8; 16] {
    let mut d = [0u8; 16];
    d[0] = ipcss;
    d[1] = ipcso;
    d[2..4].copy_from_slice(&ipcse.to_le_bytes());
    d[4] = tucss;
    d[5] = tucso;
    d[6..8].copy_from_slice(&tucse.to_le_bytes());
    let dword = (paylen & 0xF_FFFF) | (u32::from(command | cmd::DEXT) << 24);
    d[8..12].copy_from_slice(&dword.to_le_bytes());
    d[13] = hdrlen;
    d[14..16].copy_from_slice(&mss.to_le_bytes());
    d
}

/// Reference Internet checksum, written independently of the model's:
/// 16-bit words, 32-bit accumulator, end-around carry folded at the end.
fn reference_sum(chunks: &[&[u8]]) -> u16 {
    let mut bytes = Vec::new();
    for chunk in chunks {
        bytes.extend_from_slice(chunk);
    }
    if bytes.len() % 2 == 1 {
        bytes.push(0);
    }
    let mut sum: u32 = 0;
    for pair in bytes.chunks(2) {
        sum += (u32::from(pair[0]) << 8) | u32::from(pair[1]);
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum as u16
}

fn ipv4_header_ok(frame: &[u8]) -> bool {
    reference_sum(&[&frame[14..34]]) == 0xFFFF
}

/// Verifies the TCP or UDP checksum of an IPv4 frame (20-byte IP header).
fn l4_checksum_ok(frame: &[u8]) -> bool {
    let ip = &frame[14..34];
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let l4 = &frame[34..14 + total];
    let pseudo = [
        &ip[12..20],
        &[0, ip[9]][..],
        &(l4.len() as u16).to_be_bytes()[..],
    ]
    .concat();
    reference_sum(&[&pseudo, l4]) == 0xFFFF
}

/// Pseudo-header sum as Linux seeds the checksum field (not complemented).
fn pseudo_seed(ip: &[u8], protocol: u8, l4_len: Option<u16>) -> u16 {
    let mut pseudo = ip[12..20].to_vec();
    pseudo.extend_from_slice(&[0, protocol]);
    pseudo.extend_from_slice(&l4_len.unwrap_or(0).to_be_bytes());
    reference_sum(&[&pseudo])
}

/// An Ethernet + IPv4 + TCP (or UDP) frame with `payload` bytes, checksums 0.
fn ipv4_frame(payload: usize, tcp: bool) -> Vec<u8> {
    let l4_header = if tcp { 20 } else { 8 };
    let total = 20 + l4_header + payload;
    let mut f = Vec::new();
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    f.extend_from_slice(&MAC);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&(total as u16).to_be_bytes());
    f.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, 64, if tcp { 6 } else { 17 }, 0, 0]);
    f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
    if tcp {
        f.extend_from_slice(&[0x30, 0x39, 0x00, 0x50]);
        f.extend_from_slice(&0x1000_0000u32.to_be_bytes());
        f.extend_from_slice(&0u32.to_be_bytes());
        f.extend_from_slice(&[0x50, 0x19, 0xFF, 0xFF, 0, 0, 0, 0]); // ACK|PSH|FIN
    } else {
        f.extend_from_slice(&[0x30, 0x39, 0x00, 0x35]);
        f.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
    }
    f.extend((0..payload).map(|i| (i * 7 + 3) as u8));
    f
}

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

// ---------------------------------------------------------------- EEPROM

#[test]
fn eeprom_through_eerd_has_mac_ids_and_checksum() {
    let mut h = Harness::new(false);
    let mut sum = 0u16;
    let mut words = Vec::new();
    for address in 0..EEPROM_WORDS as u32 {
        h.w(EERD, eerd::START | (address << eerd::ADDR_SHIFT));
        let value = h.r(EERD);
        assert_ne!(value & eerd::DONE, 0, "word {address} done");
        assert_eq!((value >> eerd::ADDR_SHIFT) & 0xFF, address);
        let word = (value >> eerd::DATA_SHIFT) as u16;
        sum = sum.wrapping_add(word);
        words.push(word);
    }
    assert_eq!(sum, EEPROM_SUM);
    assert_eq!(words[0], u16::from_le_bytes([MAC[0], MAC[1]]));
    assert_eq!(words[1], u16::from_le_bytes([MAC[2], MAC[3]]));
    assert_eq!(words[2], u16::from_le_bytes([MAC[4], MAC[5]]));
    assert_eq!(words[0x0D], DEVICE_ID);
    assert_eq!(words[0x0E], VENDOR_ID);
    assert_eq!(words[0x0B], DEFAULT_SUBSYSTEM_ID);
    // Past the EEPROM: DONE, no data, counted.
    h.w(EERD, eerd::START | (200 << eerd::ADDR_SHIFT));
    assert_eq!(h.r(EERD) >> eerd::DATA_SHIFT, 0);
    assert_ne!(h.r(EERD) & eerd::DONE, 0);
    assert_eq!(h.dev.errors().eeprom_address_invalid, 1);
}

/// Drives the EECD pins like the Linux e1000 / FreeBSD em Microwire code:
/// acquire (REQ, wait for GNT, CS up), then for every word the READ opcode
/// and address shifted out MSB first, 16 bits shifted in (sampling DO after
/// each rising clock edge), and a "standby" cycle between words.
struct MicrowireDriver {
    pins: u32,
}

impl MicrowireDriver {
    fn write(&mut self, h: &mut Harness) {
        h.w(EECD, self.pins);
    }

    fn acquire(h: &mut Harness) -> Self {
        let mut driver = Self {
            pins: h.r(EECD) | eecd::REQ,
        };
        driver.write(h);
        assert_ne!(h.r(EECD) & eecd::GNT, 0, "access granted");
        driver.pins &= !(eecd::DI | eecd::SK);
        driver.write(h);
        driver.pins |= eecd::CS;
        driver.write(h);
        driver
    }

    fn clock(&mut self, h: &mut Harness) -> bool {
        self.pins |= eecd::SK;
        self.write(h);
        let out = h.r(EECD) & eecd::DO != 0;
        self.pins &= !eecd::SK;
        self.write(h);
        out
    }

    fn shift_out(&mut self, h: &mut Harness, value: u16, bits: u32) {
        for i in (0..bits).rev() {
            if value >> i & 1 != 0 {
                self.pins |= eecd::DI;
            } else {
                self.pins &= !eecd::DI;
            }
            self.write(h);
            self.clock(h);
        }
        self.pins &= !eecd::DI;
        self.write(h);
    }

    fn shift_in(&mut self, h: &mut Harness) -> u16 {
        (0..16).fold(0u16, |word, _| (word << 1) | u16::from(self.clock(h)))
    }

    fn standby(&mut self, h: &mut Harness) {
        self.pins &= !(eecd::CS | eecd::SK);
        self.write(h);
        self.pins |= eecd::SK;
        self.write(h);
        self.pins |= eecd::CS;
        self.write(h);
        self.pins &= !eecd::SK;
        self.write(h);
    }

    fn read(&mut self, h: &mut Harness, address: u16) -> u16 {
        self.shift_out(h, 0b110, 3);
        self.shift_out(h, address, 6);
        let word = self.shift_in(h);
        self.standby(h);
        word
    }

    fn release(mut self, h: &mut Harness) {
        self.pins &= !(eecd::CS | eecd::DI | eecd::SK | eecd::REQ);
        self.write(h);
    }
}

#[test]
fn eeprom_bit_banged_microwire_reads_match_eerd() {
    let mut h = Harness::new(false);
    assert_eq!(
        h.r(EECD) & (1 << 9),
        0,
        "EE_SIZE 0: 64 words, 6 address bits"
    );
    assert_ne!(h.r(EECD) & eecd::PRES, 0);
    let mut driver = MicrowireDriver::acquire(&mut h);
    let mut sum = 0u16;
    for address in 0..EEPROM_WORDS as u16 {
        let word = driver.read(&mut h, address);
        assert_eq!(
            Some(word),
            h.dev.eeprom().word(address.into()),
            "word {address}"
        );
        sum = sum.wrapping_add(word);
    }
    assert_eq!(sum, EEPROM_SUM);
    driver.release(&mut h);
    assert_eq!(h.r(EECD) & eecd::GNT, 0);
    // A second acquisition reads the MAC again (state reset by CS).
    let mut driver = MicrowireDriver::acquire(&mut h);
    assert_eq!(driver.read(&mut h, 1), u16::from_le_bytes([MAC[2], MAC[3]]));
    driver.release(&mut h);
}

// ---------------------------------------------------------------- PHY

fn mdic_read(h: &mut Harness, phy: u32, register: u32) -> u32 {
    h.w(
        MDIC,
        mdic::OP_READ | (register << mdic::REG_SHIFT) | (phy << mdic::PHY_SHIFT),
    );
    h.r(MDIC)
}

#[test]
fn mdic_reads_phy_identity_and_link() {
    let mut h = Harness::new(false);
    let id1 = mdic_read(&mut h, 1, phyreg::ID1 as u32);
    assert_ne!(id1 & mdic::READY, 0);
    assert_eq!(id1 & mdic::ERROR, 0);
    assert_eq!(id1 & 0xFFFF, u32::from(ID1));
    assert_eq!(mdic_read(&mut h, 1, phyreg::ID2 as u32) & 0xFFFF, 0x0C20);
    let status = mdic_read(&mut h, 1, phyreg::STATUS as u32) & 0xFFFF;
    assert_ne!(status & 0x0004, 0, "link up");
    assert_ne!(status & 0x0020, 0, "autonegotiation complete");
    // Write then read back the advertisement register.
    h.w(
        MDIC,
        mdic::OP_WRITE
            | ((phyreg::AUTONEG_ADV as u32) << mdic::REG_SHIFT)
            | (1 << mdic::PHY_SHIFT)
            | 0x01E1,
    );
    assert_eq!(
        mdic_read(&mut h, 1, phyreg::AUTONEG_ADV as u32) & 0xFFFF,
        0x01E1
    );
    // Status is read only.
    h.w(
        MDIC,
        mdic::OP_WRITE | ((phyreg::STATUS as u32) << mdic::REG_SHIFT) | (1 << mdic::PHY_SHIFT),
    );
    assert_eq!(mdic_read(&mut h, 1, phyreg::STATUS as u32) & 0xFFFF, status);
    // Another PHY address answers with ERROR.
    assert_ne!(mdic_read(&mut h, 2, 1) & mdic::ERROR, 0);
    assert_eq!(h.dev.errors().mdic_invalid, 1);
    // Interrupt on completion.
    h.w(IMS, icr::MDAC);
    h.w(
        MDIC,
        mdic::OP_READ | mdic::INTERRUPT | (1 << mdic::PHY_SHIFT),
    );
    assert!(h.dev.interrupt_level());
    assert_eq!(h.r(ICR), icr::MDAC);
}

#[test]
fn status_reports_gigabit_full_duplex_link_and_lsc() {
    let mut h = Harness::new(false);
    let s = h.r(STATUS);
    assert_ne!(s & status::LU, 0);
    assert_ne!(s & status::FD, 0);
    assert_eq!(s & (3 << 6), status::SPEED_1000);
    h.w(IMS, icr::LSC);
    h.dev.set_link(false);
    assert_eq!(h.r(STATUS) & status::LU, 0);
    assert_eq!(mdic_read(&mut h, 1, 1) & 0x4, 0);
    assert_eq!(h.rising(), 1);
    assert_eq!(h.r(ICR), icr::LSC);
    h.dev.set_link(true);
    assert_ne!(h.r(STATUS) & status::LU, 0);
}

// ---------------------------------------------------------------- interrupts

#[test]
fn icr_clears_on_read_and_masks_gate_the_level() {
    let mut h = Harness::new(false);
    h.w(ICS, icr::TXDW | icr::RXT0);
    assert!(!h.dev.interrupt_level(), "masked");
    h.w(IMS, icr::RXT0);
    assert_eq!(h.r(IMS), icr::RXT0);
    assert!(h.dev.interrupt_level());
    assert_eq!(h.rising(), 1);
    h.w(IMC, icr::RXT0);
    assert!(!h.dev.interrupt_level());
    assert_eq!(h.r(IMS), 0);
    h.w(IMS, icr::RXT0 | icr::TXDW);
    assert!(h.dev.interrupt_level());
    assert_eq!(h.rising(), 2);
    assert_eq!(h.r(ICR), icr::TXDW | icr::RXT0);
    assert!(!h.dev.interrupt_level());
    assert_eq!(h.r(ICR), 0, "cleared by the read");
    // Write-only registers read 0; reserved cause bits are ignored.
    h.w(ICS, 0x8000_0020);
    assert_eq!(h.r(ICR), 0);
    assert_eq!(h.r(ICS), 0);
}

// ---------------------------------------------------------------- reset, odd accesses

#[test]
fn software_reset_restores_defaults() {
    let mut h = Harness::new(false);
    h.setup_tx(8);
    h.setup_rx(8, 0);
    h.w(IMS, 0xFF);
    h.w(ICS, icr::TXDW);
    h.w(RA, 0x11223344);
    h.w(ITR, 500);
    h.put_tx(0, legacy(TX_BUF, 60, cmd::EOP));
    h.w(TDT, 1);
    assert_eq!(h.dev.statistics().peek(st::GPTC), 1);
    assert!(h.dev.interrupt_level());
    h.w(CTRL, ctrl::RST);
    assert!(!h.dev.interrupt_level());
    assert_eq!(h.r(CTRL) & ctrl::RST, 0, "self clearing");
    for offset in [RCTL, TCTL, TDLEN, RDLEN, TDH, TDT, IMS, ITR, GPTC_OFFSET] {
        assert_eq!(h.r(offset), 0, "register {offset:#x}");
    }
    assert_eq!(
        h.r(RA),
        u32::from_le_bytes([MAC[0], MAC[1], MAC[2], MAC[3]])
    );
    assert_eq!(
        h.r(RA + 4),
        u32::from(u16::from_le_bytes([MAC[4], MAC[5]])) | rah::AV
    );
    assert_eq!(h.r(VET), 0x8100);
}

const GPTC_OFFSET: u32 = st::GPTC;

#[test]
fn unknown_offsets_and_odd_accesses_are_counted() {
    let mut h = Harness::new(false);
    assert_eq!(h.r(0x1234 & !3), 0);
    h.w(0x1234 & !3, 5);
    assert_eq!(h.r(0x4024), 0, "hole in the statistics block");
    assert_eq!(h.dev.errors().unknown_register_reads, 2);
    assert_eq!(h.dev.errors().unknown_register_writes, 1);
    // A byte write is ignored; a byte read returns the register's byte.
    h.dev.mmio_write(u64::from(IMS), &[0xFF], &h.mem);
    assert_eq!(h.r(IMS), 0);
    let mut byte = [0u8; 1];
    h.dev.mmio_read(u64::from(VET) + 1, &mut byte);
    assert_eq!(byte[0], 0x81);
    // Past BAR0.
    h.dev.mmio_write(0x2_0000, &[0; 4], &h.mem);
    h.dev.mmio_read(u64::MAX - 1, &mut [0; 4]);
    assert_eq!(h.dev.errors().bad_access_size, 3);
    // BAR1: IOADDR selects, IODATA accesses.
    h.dev.io_write(0, &VET.to_le_bytes(), &h.mem);
    let mut data = [0u8; 4];
    h.dev.io_read(4, &mut data);
    assert_eq!(u32::from_le_bytes(data), 0x8100);
    h.dev.io_write(0, &IMS.to_le_bytes(), &h.mem);
    h.dev.io_write(4, &icr::RXT0.to_le_bytes(), &h.mem);
    assert_eq!(h.r(IMS), icr::RXT0);
    h.dev.io_read(0, &mut data);
    assert_eq!(u32::from_le_bytes(data), IMS);
}

#[test]
fn statistics_clear_on_read_and_wide_counters_on_high_read() {
    let mut h = Harness::new(false);
    h.setup_tx(8);
    for i in 0..3 {
        h.put_tx(i, legacy(TX_BUF, 100, cmd::EOP));
    }
    h.w(TDT, 3);
    assert_eq!(h.r(st::GPTC), 3);
    assert_eq!(h.r(st::GPTC), 0);
    assert_eq!(h.r(st::TPT), 3);
    assert_eq!(h.r(st::PTC127), 3, "104 bytes with CRC");
    assert_eq!(h.r(st::GOTCL), 3 * 104);
    assert_eq!(h.r(st::GOTCL), 3 * 104, "low half does not clear");
    assert_eq!(h.r(st::GOTCH), 0);
    assert_eq!(h.r(st::GOTCL), 0, "high read cleared both");
}

// ---------------------------------------------------------------- receive

#[test]
fn receive_filters_unicast_broadcast_multicast_promiscuous() {
    let mut h = Harness::new(false);
    h.setup_rx(64, 0);
    h.w(RDT, 63);
    let other = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
    let multicast = [0x01, 0x00, 0x5E, 0x00, 0x00, 0xFB];
    let deliver = |h: &mut Harness, frame: Vec<u8>| -> bool {
        let before = h.dev.statistics().peek(st::GPRC);
        h.net.push_rx(&frame);
        h.dev.process_rx(&h.mem, &mut h.net);
        assert!(h.net.receive_queue.is_empty());
        h.dev.statistics().peek(st::GPRC) > before
    };
    assert!(deliver(&mut h, eth_frame(MAC, 64, 1)), "own unicast");
    assert!(!deliver(&mut h, eth_frame(other, 64, 1)), "other unicast");
    assert!(
        deliver(&mut h, eth_frame([0xFF; 6], 64, 1)),
        "broadcast with BAM"
    );
    assert!(
        !deliver(&mut h, eth_frame(multicast, 64, 1)),
        "multicast not in MTA"
    );
    let hash = multicast_hash(&multicast, 0);
    h.w(MTA + 4 * (hash >> 5), 1 << (hash & 31));
    assert!(
        deliver(&mut h, eth_frame(multicast, 64, 1)),
        "multicast in MTA"
    );
    h.w(RCTL, rctl::EN | rctl::SECRC);
    assert!(
        !deliver(&mut h, eth_frame([0xFF; 6], 64, 1)),
        "broadcast without BAM"
    );
    h.w(RCTL, rctl::EN | rctl::SECRC | rctl::UPE);
    assert!(
        deliver(&mut h, eth_frame(other, 64, 1)),
        "unicast promiscuous"
    );
    assert!(
        !deliver(&mut h, eth_frame([0x03, 0, 0, 0, 0, 1], 64, 1)),
        "UPE is unicast only"
    );
    h.w(RCTL, rctl::EN | rctl::SECRC | rctl::MPE);
    assert!(
        deliver(&mut h, eth_frame([0x03, 0, 0, 0, 0, 1], 64, 1)),
        "multicast promiscuous"
    );
    // A second exact address; an entry without AV does not match.
    h.w(RCTL, rctl::EN | rctl::SECRC);
    h.w(
        RA + 8,
        u32::from_le_bytes([other[0], other[1], other[2], other[3]]),
    );
    h.w(RA + 12, u32::from(u16::from_le_bytes([other[4], other[5]])));
    assert!(!deliver(&mut h, eth_frame(other, 64, 1)));
    h.w(
        RA + 12,
        u32::from(u16::from_le_bytes([other[4], other[5]])) | rah::AV,
    );
    assert!(deliver(&mut h, eth_frame(other, 64, 1)));
    assert_eq!(h.dev.errors().rx_filtered, 5);
    assert_eq!(h.dev.statistics().peek(st::BPRC), 1);
    assert_eq!(h.dev.statistics().peek(st::MPRC), 2);
}

#[test]
fn receive_ring_wraps_and_writes_back() {
    let mut h = Harness::new(false);
    h.setup_rx(8, 0);
    h.w(IMS, icr::RXT0);
    h.w(RDT, 7);
    let mut expected_head = 0u32;
    for round in 0..5u8 {
        for k in 0..5u8 {
            h.net
                .push_rx(&eth_frame(MAC, 100 + usize::from(k), round * 10 + k));
        }
        let outcome = h.dev.process_rx(&h.mem, &mut h.net);
        assert_eq!(outcome.frames, 5);
        for k in 0..5u32 {
            let index = (expected_head + k) % 8;
            let d = h.rx_desc(index);
            let len = u16::from_le_bytes([d[8], d[9]]) as usize;
            assert_eq!(len, 100 + k as usize);
            assert_eq!(d[12], rxs::DD | rxs::EOP | rxs::IXSM);
            assert_eq!(d[13], 0);
            let frame = eth_frame(MAC, len, round * 10 + k as u8);
            assert_eq!(h.rx_data(index, len), frame);
            // The guest returns the buffer: clear status, move RDT.
            let mut cleared = d;
            cleared[8..].fill(0);
            h.mem
                .write(RX_RING + u64::from(index) * 16, &cleared)
                .unwrap();
        }
        expected_head = (expected_head + 5) % 8;
        assert_eq!(h.r(RDH), expected_head);
        h.w(RDT, (expected_head + 7) % 8);
        assert!(h.dev.interrupt_level());
        h.r(ICR);
    }
    assert_eq!(h.dev.statistics().peek(st::GPRC), 25);
}

#[test]
fn receive_waits_in_backend_without_buffers() {
    let mut h = Harness::new(false);
    h.setup_rx(8, 0);
    for i in 0..3 {
        h.net.push_rx(&eth_frame(MAC, 80, i));
    }
    let outcome = h.dev.process_rx(&h.mem, &mut h.net);
    assert!(outcome.waiting_for_buffers);
    assert_eq!(outcome.frames, 0);
    h.dev.process_rx(&h.mem, &mut h.net);
    assert_eq!(h.net.receive_queue.len(), 3, "nothing dropped");
    assert_eq!(
        h.dev.statistics().peek(st::RNBC),
        1,
        "counted once per frame"
    );
    h.w(RDT, 2);
    assert_eq!(h.net.receive_queue.len(), 1);
    assert_eq!(h.r(RDH), 2);
    h.w(RDT, 7);
    assert!(h.net.receive_queue.is_empty());
    assert_eq!(h.dev.statistics().peek(st::GPRC), 3);
}

/// Bitwise CRC-32 (IEEE 802.3), independent of the model's table.
fn reference_crc(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

#[test]
fn receive_spans_buffers_appends_crc_and_pads() {
    let mut h = Harness::new(false);
    // 256-byte buffers (BSIZE 11b), CRC kept (SECRC clear).
    h.setup_rx(16, 3 << rctl::BSIZE_SHIFT);
    h.w(RCTL, rctl::EN | rctl::BAM | (3 << rctl::BSIZE_SHIFT));
    h.w(RDT, 15);
    let frame = eth_frame(MAC, 600, 7);
    h.net.push_rx(&frame);
    h.dev.process_rx(&h.mem, &mut h.net);
    let mut wire = frame.clone();
    wire.extend_from_slice(&reference_crc(&frame).to_le_bytes());
    let mut got = Vec::new();
    for index in 0..3 {
        let d = h.rx_desc(index);
        let len = u16::from_le_bytes([d[8], d[9]]) as usize;
        let last = index == 2;
        assert_eq!(d[12] & rxs::EOP != 0, last);
        assert_ne!(d[12] & rxs::DD, 0);
        got.extend(h.rx_data(index, len));
    }
    assert_eq!(got, wire);
    assert_eq!(h.r(RDH), 3);
    // A runt from the backend is padded to 60 bytes (plus CRC).
    let short = eth_frame(MAC, 20, 1);
    h.net.push_rx(&short);
    h.dev.process_rx(&h.mem, &mut h.net);
    let d = h.rx_desc(3);
    assert_eq!(u16::from_le_bytes([d[8], d[9]]), 64);
    let mut padded = short.clone();
    padded.resize(60, 0);
    let data = h.rx_data(3, 64);
    assert_eq!(&data[..60], &padded[..]);
    assert_eq!(&data[60..], &reference_crc(&padded).to_le_bytes());
}

#[test]
fn receive_strips_vlan_tag_with_vme() {
    let mut h = Harness::new(false);
    h.setup_rx(8, 0);
    let value = h.r(CTRL) | ctrl::VME;
    h.w(CTRL, value);
    h.w(RDT, 7);
    let inner = eth_frame(MAC, 100, 3);
    let mut tagged = inner[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x20, 0x05]);
    tagged.extend_from_slice(&inner[12..]);
    h.net.push_rx(&tagged);
    h.dev.process_rx(&h.mem, &mut h.net);
    let d = h.rx_desc(0);
    assert_eq!(u16::from_le_bytes([d[8], d[9]]), 100);
    assert_ne!(d[12] & rxs::VP, 0);
    assert_eq!(u16::from_le_bytes([d[14], d[15]]), 0x2005);
    assert_eq!(h.rx_data(0, 100), inner);
    // With the VLAN filter on, VID 5 must be in the VFTA.
    let value = h.r(RCTL) | rctl::VFE;
    h.w(RCTL, value);
    h.net.push_rx(&tagged);
    h.dev.process_rx(&h.mem, &mut h.net);
    assert_eq!(h.r(RDH), 1);
    h.w(VFTA, 1 << 5);
    h.net.push_rx(&tagged);
    h.dev.process_rx(&h.mem, &mut h.net);
    assert_eq!(h.r(RDH), 2);
}

#[test]
fn receive_threshold_and_oversize() {
    let mut h = Harness::new(false);
    h.setup_rx(8, 0);
    h.w(IMS, icr::RXDMT0);
    h.w(RDT, 7);
    // RDMTS 1/2 of 8 = 4: crossing from 5 free to 4 free raises RXDMT0.
    for i in 0..2 {
        h.net.push_rx(&eth_frame(MAC, 64, i));
    }
    h.dev.process_rx(&h.mem, &mut h.net);
    assert_eq!(h.dev.pending_causes() & icr::RXDMT0, 0);
    h.net.push_rx(&eth_frame(MAC, 64, 3));
    h.dev.process_rx(&h.mem, &mut h.net);
    assert_ne!(h.r(ICR) & icr::RXDMT0, 0);
    // 1519 bytes + CRC is too long without LPE.
    h.net.push_rx(&eth_frame(MAC, 1519, 0));
    h.dev.process_rx(&h.mem, &mut h.net);
    assert_eq!(h.dev.errors().rx_oversize_drops, 1);
    assert_eq!(h.dev.statistics().peek(st::ROC), 1);
    let value = h.r(RCTL) | rctl::LPE;
    h.w(RCTL, value);
    h.net.push_rx(&eth_frame(MAC, 1519, 0));
    h.dev.process_rx(&h.mem, &mut h.net);
    assert_eq!(h.dev.statistics().peek(st::GPRC), 4);
}

// ---------------------------------------------------------------- transmit

#[test]
fn transmit_ring_wraps_writes_back_and_interrupts() {
    let mut h = Harness::new(false);
    h.setup_tx(8);
    h.w(IMS, icr::TXDW | icr::TXQE);
    let mut tail = 0u32;
    let mut expected = Vec::new();
    for round in 0..4u8 {
        for k in 0..5u8 {
            let frame = eth_frame([0x02, 0, 0, 0, 0, 2], 64 + usize::from(k), round * 16 + k);
            let addr = TX_BUF + u64::from(tail) * 0x800;
            h.mem.write(addr, &frame).unwrap();
            h.put_tx(
                tail,
                legacy(addr, frame.len() as u16, cmd::EOP | cmd::IFCS | cmd::RS),
            );
            expected.push(frame);
            tail = (tail + 1) % 8;
        }
        h.w(TDT, tail);
        assert_eq!(h.r(TDH), tail);
        assert!(h.dev.interrupt_level());
        assert_eq!(h.r(ICR), icr::TXDW | icr::TXQE);
        for k in 0..5 {
            let index = (tail + 8 - 5 + k) % 8;
            assert_eq!(h.tx_status(index), 1, "DD written back at {index}");
            h.put_tx(index, [0; 16]);
        }
    }
    assert_eq!(h.sent(), expected);
    assert_eq!(h.net.tx_kicks, 4, "one flush per TDT write");
}

#[test]
fn transmit_gathers_chains_and_waits_for_eop() {
    let mut h = Harness::new(false);
    h.setup_tx(8);
    let frame = eth_frame([0x02, 0, 0, 0, 0, 2], 300, 9);
    h.mem.write(TX_BUF, &frame[..100]).unwrap();
    h.mem.write(TX_BUF + 0x1000, &frame[100..250]).unwrap();
    h.mem.write(TX_BUF + 0x2000, &frame[250..]).unwrap();
    h.put_tx(0, legacy(TX_BUF, 100, 0));
    h.put_tx(1, legacy(TX_BUF + 0x1000, 150, 0));
    h.put_tx(2, legacy(0, 0, 0)); // null descriptor in the middle
    h.put_tx(3, legacy(TX_BUF + 0x2000, 50, cmd::EOP | cmd::RS));
    h.w(TDT, 2);
    assert_eq!(h.r(TDH), 0, "chain without EOP stays in the ring");
    assert!(h.sent().is_empty());
    h.w(TDT, 4);
    assert_eq!(h.r(TDH), 4);
    assert_eq!(h.sent(), vec![frame]);
    assert_eq!(h.tx_status(3), 1);
}

#[test]
fn transmit_pads_short_frames_and_inserts_vlan_tags() {
    let mut h = Harness::new(false);
    h.setup_tx(8);
    h.w(TCTL, tctl::EN | tctl::PSP);
    let value = h.r(CTRL) | ctrl::VME;
    h.w(CTRL, value);
    let frame = eth_frame([0x02, 0, 0, 0, 0, 2], 40, 1);
    h.mem.write(TX_BUF, &frame).unwrap();
    h.put_tx(0, legacy(TX_BUF, 40, cmd::EOP));
    let mut tagged = legacy(TX_BUF, 40, cmd::EOP | cmd::VLE);
    tagged[14..16].copy_from_slice(&0x3007u16.to_le_bytes());
    h.put_tx(1, tagged);
    h.w(TDT, 2);
    let sent = h.sent();
    let mut padded = frame.clone();
    padded.resize(60, 0);
    assert_eq!(sent[0], padded);
    let mut expected = frame[..12].to_vec();
    expected.extend_from_slice(&[0x81, 0x00, 0x30, 0x07]);
    expected.extend_from_slice(&frame[12..]);
    expected.resize(60, 0);
    assert_eq!(sent[1], expected);
}

#[test]
fn transmit_checksum_offload_matches_reference() {
    for tcp in [true, false] {
        let mut h = Harness::new(false);
        h.setup_tx(8);
        let mut frame = ipv4_frame(333, tcp);
        let l4_len = (frame.len() - 34) as u16;
        let tucso = if tcp { 34 + 16 } else { 34 + 6 };
        // The driver seeds the L4 field with the pseudo-header sum and zeroes
        // the IP checksum.
        let seed = pseudo_seed(&frame[14..34], if tcp { 6 } else { 17 }, Some(l4_len));
        frame[tucso..tucso + 2].copy_from_slice(&seed.to_be_bytes());
        h.mem.write(TX_BUF, &frame[..80]).unwrap();
        h.mem.write(TX_BUF + 0x1000, &frame[80..]).unwrap();
        let command = if tcp {
            tucmd::TCP | tucmd::IP
        } else {
            tucmd::IP
        };
        h.put_tx(
            0,
            context_desc(14, 24, 33, 34, tucso as u8, 0, 0, command, 0, 0),
        );
        h.put_tx(1, data_desc(TX_BUF, 80, 0, popts::IXSM | popts::TXSM));
        h.put_tx(
            2,
            data_desc(
                TX_BUF + 0x1000,
                (frame.len() - 80) as u32,
                cmd::EOP | cmd::RS,
                0,
            ),
        );
        h.w(TDT, 3);
        let sent = h.sent();
        assert_eq!(sent.len(), 1);
        let out = &sent[0];
        assert!(ipv4_header_ok(out), "IP checksum (tcp={tcp})");
        assert!(l4_checksum_ok(out), "L4 checksum (tcp={tcp})");
        assert_eq!(
            out[34 + 20.min(out.len())..],
            frame[34 + 20..],
            "payload unchanged"
        );
        assert_eq!(h.tx_status(2), 1);
        assert_eq!(h.tx_status(0), 0, "context descriptor without RS");
    }
}

#[test]
fn transmit_legacy_checksum_insertion() {
    let mut h = Harness::new(false);
    h.setup_tx(8);
    let mut frame = ipv4_frame(100, false);
    let l4_len = (frame.len() - 34) as u16;
    let seed = pseudo_seed(&frame[14..34], 17, Some(l4_len));
    frame[40..42].copy_from_slice(&seed.to_be_bytes());
    let ip_sum = !reference_sum(&[&frame[14..34]]);
    frame[24..26].copy_from_slice(&ip_sum.to_be_bytes());
    h.mem.write(TX_BUF, &frame).unwrap();
    let mut d = legacy(TX_BUF, frame.len() as u16, cmd::EOP | cmd::IC);
    d[10] = 40; // CSO
    d[13] = 34; // CSS
    h.put_tx(0, d);
    h.w(TDT, 1);
    let sent = h.sent();
    assert!(ipv4_header_ok(&sent[0]));
    assert!(l4_checksum_ok(&sent[0]));
}

#[test]
fn transmit_tso_segments_large_tcp_frame() {
    let mut h = Harness::new(false);
    h.setup_tx(16);
    let payload = 4000;
    let mss = 1448u16;
    let hdrlen = 54u8;
    let mut frame = ipv4_frame(payload, true);
    // As Linux prepares TSO: IP total length and checksum 0, TCP checksum
    // seeded with the pseudo-header sum without length.
    frame[16..18].fill(0);
    frame[24..26].fill(0);
    let seed = pseudo_seed(&frame[14..34], 6, None);
    frame[50..52].copy_from_slice(&seed.to_be_bytes());
    let original = frame.clone();
    // Header in its own buffer, payload split over two descriptors.
    h.mem.write(TX_BUF, &frame[..54]).unwrap();
    h.mem.write(TX_BUF + 0x1000, &frame[54..2054]).unwrap();
    h.mem.write(TX_BUF + 0x2000, &frame[2054..]).unwrap();
    h.put_tx(
        0,
        context_desc(
            14,
            24,
            33,
            34,
            50,
            0,
            payload as u32,
            tucmd::TCP | tucmd::IP | tucmd::TSE,
            hdrlen,
            mss,
        ),
    );
    let opts = popts::IXSM | popts::TXSM;
    h.put_tx(1, data_desc(TX_BUF, 54, cmd::TSE, opts));
    h.put_tx(2, data_desc(TX_BUF + 0x1000, 2000, cmd::TSE, 0));
    h.put_tx(
        3,
        data_desc(TX_BUF + 0x2000, 2000, cmd::TSE | cmd::EOP | cmd::RS, 0),
    );
    h.w(TDT, 4);
    let segments = h.sent();
    assert_eq!(segments.len(), 3);
    let mut offset = 0usize;
    for (i, segment) in segments.iter().enumerate() {
        let chunk = (payload - offset).min(usize::from(mss));
        let last = i == segments.len() - 1;
        assert_eq!(segment.len(), 54 + chunk, "segment {i} length");
        assert_eq!(
            usize::from(u16::from_be_bytes([segment[16], segment[17]])),
            40 + chunk,
            "IP total length"
        );
        assert_eq!(
            u16::from_be_bytes([segment[18], segment[19]]),
            0x1234 + i as u16,
            "IP id"
        );
        let seq = u32::from_be_bytes([segment[38], segment[39], segment[40], segment[41]]);
        assert_eq!(seq, 0x1000_0000 + offset as u32, "TCP sequence");
        let flags = segment[47];
        assert_eq!(flags & 0x10, 0x10, "ACK kept");
        assert_eq!(flags & 0x09 != 0, last, "PSH/FIN only on the last segment");
        assert!(ipv4_header_ok(segment), "IP checksum of segment {i}");
        assert!(l4_checksum_ok(segment), "TCP checksum of segment {i}");
        assert_eq!(&segment[54..], &original[54 + offset..54 + offset + chunk]);
        assert_eq!(&segment[..14], &original[..14]);
        offset += chunk;
    }
    assert_eq!(h.tx_status(3), 1);
    assert_eq!(h.dev.statistics().peek(st::TSCTC), 1);
    assert_eq!(h.dev.statistics().peek(st::GPTC), 3);
}

#[test]
fn transmit_stalls_on_full_backend_and_resumes_tso() {
    let mut h = Harness::new(false);
    h.net = QueueBackend::new(2048, 2);
    h.setup_tx(16);
    let mut frame = ipv4_frame(3000, true);
    frame[16..18].fill(0);
    let seed = pseudo_seed(&frame[14..34], 6, None);
    frame[50..52].copy_from_slice(&seed.to_be_bytes());
    h.mem.write(TX_BUF, &frame).unwrap();
    h.put_tx(
        0,
        context_desc(
            14,
            24,
            33,
            34,
            50,
            0,
            3000,
            tucmd::TCP | tucmd::IP | tucmd::TSE,
            54,
            1000,
        ),
    );
    h.put_tx(
        1,
        data_desc(
            TX_BUF,
            frame.len() as u32,
            cmd::TSE | cmd::EOP | cmd::RS,
            popts::TXSM | popts::IXSM,
        ),
    );
    let plain = eth_frame([0x02, 0, 0, 0, 0, 2], 80, 4);
    h.mem.write(TX_BUF + 0x8000, &plain).unwrap();
    h.put_tx(2, legacy(TX_BUF + 0x8000, 80, cmd::EOP | cmd::RS));
    h.dev
        .mmio_write(u64::from(TDT), &3u32.to_le_bytes(), &h.mem);
    let outcome = h.dev.process_tx(&h.mem, &mut h.net);
    assert!(outcome.backend_full);
    assert_eq!(outcome.frames, 0, "the TSO frame is not complete");
    assert_eq!(h.r(TDH), 1, "context consumed, data waits");
    assert_eq!(h.tx_status(1), 0);
    let mut segments = h.sent();
    assert_eq!(segments.len(), 2, "two segments fit");
    let outcome = h.dev.process_tx(&h.mem, &mut h.net);
    assert_eq!(outcome.frames, 2, "third segment and the plain frame");
    assert!(!outcome.backend_full);
    assert_eq!(h.r(TDH), 3);
    assert_eq!(h.tx_status(1), 1);
    assert_eq!(h.tx_status(2), 1);
    let mut rest = h.sent();
    assert_eq!(rest.pop(), Some(plain));
    segments.extend(rest);
    assert_eq!(segments.len(), 3);
    for (i, segment) in segments.iter().enumerate() {
        let seq = u32::from_be_bytes([segment[38], segment[39], segment[40], segment[41]]);
        assert_eq!(seq, 0x1000_0000 + 1000 * i as u32);
        assert!(l4_checksum_ok(segment));
        assert!(ipv4_header_ok(segment));
    }
    assert_eq!(h.dev.errors().tx_backend_full, 1);
}

// ---------------------------------------------------------------- hostile guests

#[test]
fn hostile_rings_and_indices_are_counted() {
    let mut h = Harness::new(false);
    h.w(TCTL, tctl::EN);
    h.w(TDT, 3);
    assert_eq!(h.dev.errors().tx_ring_invalid, 1, "zero-length ring");
    h.w(TDBAL, 0xFFFF_FF00);
    h.w(TDBAH, 0xFFFF_FFFF);
    h.w(TDLEN, 128);
    h.w(TDT, 3);
    assert_eq!(h.dev.errors().tx_ring_invalid, 2, "ring outside memory");
    h.w(TDBAL, TX_RING as u32 | 0x7);
    h.w(TDBAH, 0);
    assert_eq!(h.dev.errors().ring_base_unaligned, 1);
    assert_eq!(h.r(TDBAL), TX_RING as u32);
    h.w(TDLEN, 100);
    assert_eq!(h.dev.errors().ring_length_invalid, 1);
    assert_eq!(h.r(TDLEN), 0);
    h.w(TDLEN, 128);
    h.w(TDT, 8);
    assert_eq!(
        h.dev.errors().tx_index_out_of_range,
        1,
        "tail past the ring"
    );
    h.w(TDT, 0x1_0001);
    assert_eq!(h.dev.errors().ring_index_invalid, 1);
    assert_eq!(h.r(TDT), 1);
    // Receive side.
    h.w(RCTL, rctl::EN);
    h.net.push_rx(&eth_frame(MAC, 64, 0));
    h.dev.process_rx(&h.mem, &mut h.net);
    assert_eq!(h.dev.errors().rx_ring_invalid, 1);
    h.w(RDBAL, RX_RING as u32);
    h.w(RDLEN, 128);
    h.w(RDH, 9);
    h.dev.process_rx(&h.mem, &mut h.net);
    assert_eq!(h.dev.errors().rx_index_out_of_range, 1);
    assert_eq!(h.net.receive_queue.len(), 1, "frame still waits");
}

#[test]
fn hostile_transmit_descriptors_are_dropped_and_counted() {
    let mut h = Harness::new(false);
    h.setup_tx(8);
    let good = eth_frame([0x02, 0, 0, 0, 0, 2], 64, 1);
    h.mem.write(TX_BUF, &good).unwrap();
    // Buffer outside guest memory, then one whose end overflows u64.
    h.put_tx(0, legacy(1 << 40, 64, cmd::EOP | cmd::RS));
    h.put_tx(1, legacy(u64::MAX - 3, 64, cmd::EOP | cmd::RS));
    // Longer than the backend slot (2048).
    h.put_tx(2, data_desc(TX_BUF, 3000, cmd::EOP, 0));
    // TSO with a header longer than the frame, then with MSS 0.
    h.put_tx(
        3,
        context_desc(
            14,
            24,
            33,
            34,
            50,
            0,
            0,
            tucmd::TSE | tucmd::TCP | tucmd::IP,
            200,
            100,
        ),
    );
    h.put_tx(4, data_desc(TX_BUF, 64, cmd::TSE | cmd::EOP, popts::TXSM));
    h.put_tx(
        5,
        context_desc(
            14,
            24,
            33,
            34,
            50,
            0,
            0,
            tucmd::TSE | tucmd::TCP | tucmd::IP,
            54,
            0,
        ),
    );
    h.put_tx(6, data_desc(TX_BUF, 64, cmd::TSE | cmd::EOP, popts::TXSM));
    // Checksum offsets past the frame.
    h.put_tx(7, legacy(TX_BUF, 64, cmd::EOP | cmd::IC));
    let mut d = legacy(TX_BUF, 64, cmd::EOP | cmd::IC);
    d[10] = 200;
    h.put_tx(7, d);
    h.w(TDT, 0); // nothing
    h.dev
        .mmio_write(u64::from(TDT), &7u32.to_le_bytes(), &h.mem);
    h.dev.process_tx(&h.mem, &mut h.net);
    h.put_tx(7, d);
    h.w(TDT, 0);
    let errors = h.dev.errors().clone();
    assert_eq!(errors.tx_buffer_dma_errors, 2);
    assert_eq!(errors.tx_frame_exceeds_slot, 1);
    assert_eq!(errors.tx_tso_invalid, 2);
    assert_eq!(errors.tx_checksum_offsets_invalid, 1);
    assert_eq!(h.tx_status(0), 1, "DD written back despite the error");
    assert_eq!(h.tx_status(1), 1);
    assert_eq!(h.r(TDH), 0, "all consumed, ring wrapped");
    assert_eq!(h.dev.statistics().peek(st::TSCTFC), 2);
    assert_eq!(
        h.sent().len(),
        1,
        "only the frame with bad CSO (sent unchanged)"
    );
}

#[test]
fn hostile_chains_without_eop_or_too_long() {
    let mut h = Harness::new(false);
    h.setup_tx(8);
    // Seven descriptors without EOP fill an 8-entry ring: dropped.
    for i in 0..7 {
        h.put_tx(i, legacy(TX_BUF, 100, cmd::RS));
    }
    h.w(TDT, 7);
    assert_eq!(h.dev.errors().tx_missing_eop, 1);
    assert_eq!(h.r(TDH), 7);
    assert_eq!(h.tx_status(6), 1);
    // A chain longer than 64 KiB: 5 x 16000 bytes.
    h.w(TDLEN, 16 * 16);
    h.w(TDH, 0);
    h.w(TDT, 0);
    for i in 0..5 {
        let command = if i == 4 { cmd::EOP } else { 0 };
        h.put_tx(i, data_desc(TX_BUF, 16000, command, 0));
    }
    h.w(TDT, 5);
    assert_eq!(h.dev.errors().tx_frame_too_long, 1);
    assert_eq!(h.r(TDH), 5);
    assert!(h.sent().is_empty());
}

#[test]
fn hostile_receive_descriptors_are_counted() {
    let mut h = Harness::new(false);
    h.setup_rx(8, 0);
    // Descriptor 0 points outside memory, descriptor 1 is null.
    let mut d = [0u8; 16];
    d[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    h.mem.write(RX_RING, &d).unwrap();
    h.mem.write(RX_RING + 16, &[0u8; 16]).unwrap();
    h.w(RDT, 7);
    h.net.push_rx(&eth_frame(MAC, 64, 0));
    h.net.push_rx(&eth_frame(MAC, 64, 1));
    h.dev.process_rx(&h.mem, &mut h.net);
    assert_eq!(h.dev.errors().rx_buffer_dma_errors, 1);
    assert_eq!(h.rx_desc(0)[13], e1000_spec::desc::rx::errors::RXE);
    assert_eq!(h.dev.errors().rx_null_descriptors, 1);
    assert_eq!(h.rx_desc(1)[12], rxs::DD, "skipped, no EOP");
    assert_eq!(h.rx_desc(2)[12] & rxs::EOP, rxs::EOP);
    assert_eq!(h.r(RDH), 3);
    // A 2000-byte frame cannot fit a ring of 8 x 256-byte buffers.
    h.w(
        RCTL,
        rctl::EN | rctl::SECRC | rctl::LPE | (3 << rctl::BSIZE_SHIFT),
    );
    h.net.push_rx(&eth_frame(MAC, 2000, 0));
    h.net.push_rx(&MAC[..5]);
    h.dev.process_rx(&h.mem, &mut h.net);
    assert_eq!(h.dev.errors().rx_frame_exceeds_ring, 1);
    assert_eq!(h.dev.errors().rx_runt_drops, 1);
    assert_eq!(h.dev.statistics().peek(st::MPC), 1);
    // Receiver disabled: frames are dropped, not left to pile up.
    h.w(RCTL, 0);
    h.net.push_rx(&eth_frame(MAC, 64, 0));
    h.dev.process_rx(&h.mem, &mut h.net);
    assert_eq!(h.dev.errors().rx_disabled_drops, 1);
    assert!(h.net.receive_queue.is_empty());
}

/// xorshift64*: deterministic randomness for the fuzz test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A descriptor with random fields, biased towards plausible ones: buffer
/// addresses in or just past `memory_size`, small lengths, frequent EOP, and
/// context descriptors with random checksum offsets, HDRLEN and MSS.
fn random_descriptor(rng: &mut Rng, memory_size: u64) -> [u8; 16] {
    let mut d = [0u8; 16];
    for byte in &mut d {
        *byte = rng.next() as u8;
    }
    let addr = match rng.below(8) {
        0 => rng.next(),
        1 => 0,
        _ => rng.below(memory_size + 4096),
    };
    let len = match rng.below(4) {
        0 => rng.below(0x10_0000) as u32,
        _ => rng.below(1600) as u32,
    };
    match rng.below(4) {
        0 => {
            let mut d = legacy(addr, len as u16, rng.next() as u8 & !cmd::DEXT);
            d[10] = rng.below(80) as u8;
            d[13] = rng.below(80) as u8;
            d
        }
        1 => {
            let command = rng.next() as u8 & (tucmd::TCP | tucmd::IP | tucmd::TSE | cmd::RS);
            context_desc(
                rng.below(40) as u8,
                rng.below(60) as u8,
                rng.below(80) as u16,
                rng.below(80) as u8,
                rng.below(100) as u8,
                rng.below(100) as u16,
                len,
                command,
                rng.below(120) as u8,
                rng.below(2000) as u16,
            )
        }
        2 => {
            let command =
                (rng.next() as u8 & !cmd::DEXT) | if rng.below(2) == 0 { cmd::EOP } else { 0 };
            data_desc(addr, len, command, rng.below(4) as u8)
        }
        _ => d,
    }
}

#[test]
fn fuzz_random_registers_and_descriptors_never_panic() {
    const OFFSETS: [u32; 26] = [
        CTRL, EECD, EERD, MDIC, ICR, ICS, IMS, IMC, ITR, RCTL, TCTL, RDBAL, RDBAH, RDLEN, RDH, RDT,
        RDTR, RADV, TDBAL, TDBAH, TDLEN, TDH, TDT, TIDV, CSBAL, CSBAH,
    ];
    const SMALL: u64 = 64 * 1024;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut config = E1000Config::new(MAC).with_csb(true);
    config.mitigation = true;
    let mut h = Harness::with_config(config);
    h.net = QueueBackend::new(2048, 64);
    let small = VecMemory::new(SMALL as usize);
    let (mut tx_frames, mut rx_frames) = (0u64, 0u64);
    for _ in 0..200_000u32 {
        match rng.below(18) {
            0..=2 => {
                // Any register, any value (resets are rare).
                let offset = if rng.below(4) == 0 {
                    (rng.below(0x2_0000) as u32) & !3
                } else {
                    OFFSETS[rng.below(OFFSETS.len() as u64) as usize]
                };
                let value = match rng.below(3) {
                    0 => rng.next() as u32,
                    1 => rng.below(64) as u32,
                    _ => (rng.below(16) * 128) as u32,
                };
                if offset == CTRL && value & ctrl::RST != 0 && rng.below(16) != 0 {
                    continue;
                }
                h.dev
                    .mmio_write(u64::from(offset), &value.to_le_bytes(), &small);
            }
            3 => {
                // A plausible ring set-up in small memory.
                let tx_base = rng.below(SMALL / 2) as u32 & !0xF;
                let rx_base = rng.below(SMALL / 2) as u32 & !0xF;
                for (offset, value) in [
                    (TDBAL, tx_base),
                    (TDBAH, 0),
                    (TDLEN, 128 * (1 + rng.below(4) as u32)),
                    (TDH, 0),
                    (TDT, 0),
                    (TCTL, tctl::EN | (rng.below(2) as u32) << 3),
                    (RDBAL, rx_base),
                    (RDBAH, 0),
                    (RDLEN, 128 * (1 + rng.below(4) as u32)),
                    (RDH, 0),
                    (RDT, 0),
                    (
                        RCTL,
                        rctl::EN
                            | rctl::UPE
                            | rctl::MPE
                            | rctl::BAM
                            | (rng.next() as u32 & 0x0603_0F20),
                    ),
                    (CTRL, ctrl::FD | ctrl::SLU | (rng.below(2) as u32) << 30),
                    (IMS, 0xFFFF),
                ] {
                    h.dev
                        .mmio_write(u64::from(offset), &value.to_le_bytes(), &small);
                }
            }
            4..=6 => {
                // A random descriptor inside the TX ring, or anywhere.
                let base = u64::from(h.r(TDBAL));
                let ring = u64::from(h.r(TDLEN) / 16).max(1);
                let at = if rng.below(8) == 0 {
                    rng.below(SMALL - 16) & !0xF
                } else {
                    base + 16 * rng.below(ring)
                };
                let d = random_descriptor(&mut rng, SMALL);
                let _ = small.write(at, &d);
            }
            7 => {
                // RX descriptors: buffer addresses in or near small memory.
                let base = u64::from(h.r(RDBAL));
                let ring = u64::from(h.r(RDLEN) / 16).max(1);
                let addr = match rng.below(8) {
                    0 => 0,
                    1 => rng.next(),
                    _ => rng.below(SMALL),
                };
                let _ = small.write(base + 16 * rng.below(ring), &addr.to_le_bytes());
            }
            8 => {
                let ring = (h.r(TDLEN) / 16).max(1);
                let tail = if rng.below(16) == 0 {
                    rng.below(0x1_0000) as u32
                } else {
                    rng.below(u64::from(ring)) as u32
                };
                h.dev
                    .mmio_write(u64::from(TDT), &tail.to_le_bytes(), &small);
                tx_frames += u64::from(h.dev.process_tx(&small, &mut h.net).frames);
                h.net.transmitted.clear();
            }
            9 => {
                let len = rng.below(3000) as usize;
                let mut frame: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                if len >= 6 && rng.below(2) == 0 {
                    frame[..6].copy_from_slice(&MAC);
                }
                h.net.push_rx(&frame);
            }
            10 => {
                let ring = (h.r(RDLEN) / 16).max(1);
                let tail = rng.below(u64::from(ring)) as u32;
                h.dev
                    .mmio_write(u64::from(RDT), &tail.to_le_bytes(), &small);
                rx_frames += u64::from(h.dev.process_rx(&small, &mut h.net).frames);
                if h.net.receive_queue.len() > 64 {
                    h.net.receive_queue.clear();
                }
            }
            11 => {
                let offset = OFFSETS[rng.below(OFFSETS.len() as u64) as usize];
                let mut data = [0u8; 4];
                h.dev.mmio_read(u64::from(offset), &mut data);
            }
            12 => {
                let offset = rng.below(80);
                let mut data = vec![0u8; rng.below(9) as usize];
                h.dev.io_read(offset, &mut data);
                h.dev
                    .io_write(rng.below(8), &(rng.next() as u32).to_le_bytes(), &small);
                h.dev.mmio_read(rng.below(0x2_0010), &mut data);
            }
            16 => {
                // The CSB: map one (usually valid), or scribble on its fields.
                match (h.dev.csb_address(), rng.below(4)) {
                    (None, _) | (_, 0) => {
                        let at = match rng.below(4) {
                            0 => rng.next() as u32,
                            _ => (rng.below(SMALL) as u32) & !63,
                        };
                        h.dev.mmio_write(u64::from(CSBAH), &[0; 4], &small);
                        h.dev
                            .mmio_write(u64::from(CSBAL), &at.to_le_bytes(), &small);
                    }
                    (Some(base), _) => {
                        let field = rng.below(24) * 4;
                        let value = match rng.below(3) {
                            0 => rng.next() as u32,
                            1 => rng.below(2) as u32,
                            _ => rng.below(64) as u32,
                        };
                        let _ = small.write_u32(base + field, value);
                    }
                }
            }
            17 => match rng.below(4) {
                0 => h.dev.csb_enter_polling(&small),
                1 => {
                    h.dev.csb_prepare_sleep(&small, rng.below(2) == 0);
                }
                2 => h.dev.set_bus_master(rng.below(4) != 0, &small),
                _ => {
                    tx_frames += u64::from(h.dev.process_tx(&small, &mut h.net).frames);
                    rx_frames += u64::from(h.dev.process_rx(&small, &mut h.net).frames);
                    h.net.transmitted.clear();
                }
            },
            _ => {
                let now = h.clock.get() + rng.below(100_000);
                h.clock.set(now);
                h.dev.on_timer(now);
            }
        }
    }
    let errors = h.dev.errors().clone();
    assert!(
        tx_frames > 100 && rx_frames > 100,
        "{tx_frames} sent, {rx_frames} received"
    );
    assert!(
        errors.tx_buffer_dma_errors > 0 && errors.rx_buffer_dma_errors > 0,
        "{errors:?}"
    );
    assert!(
        errors.tx_tso_invalid > 0 && errors.tx_descriptor_type_invalid > 0,
        "{errors:?}"
    );
    assert!(
        errors.csb_address_invalid > 0 && errors.csb_index_invalid > 0,
        "{errors:?}"
    );
    // The device still works after the abuse.
    h.dev.set_bus_master(true, &h.mem);
    h.w(CTRL, ctrl::RST);
    h.setup_tx(8);
    let frame = eth_frame([0x02, 0, 0, 0, 0, 2], 64, 0);
    h.mem.write(TX_BUF, &frame).unwrap();
    h.put_tx(0, legacy(TX_BUF, 64, cmd::EOP));
    h.net.transmitted.clear();
    h.w(TDT, 1);
    assert_eq!(h.sent(), vec![frame]);
    eprintln!("fuzz: {tx_frames} frames sent, {rx_frames} received, {errors:?}");
}

// ---------------------------------------------------------------- moderation

/// Queues one frame per call with RS (and IDE if asked) and runs the ring.
fn send_one(h: &mut Harness, ide: bool) {
    let tail = h.r(TDT);
    let command = cmd::EOP | cmd::RS | if ide { cmd::IDE } else { 0 };
    h.put_tx(tail, legacy(TX_BUF, 60, command));
    h.w(TDT, (tail + 1) % 64);
}

#[test]
fn moderation_off_interrupts_every_completion() {
    let mut h = Harness::new(false);
    h.setup_tx(64);
    h.w(IMS, icr::TXDW);
    h.w(ITR, 1000);
    h.w(TIDV, 100);
    h.w(TADV, 200);
    for i in 0..10 {
        h.set_time_us(i * 5);
        send_one(&mut h, true);
        assert!(h.dev.interrupt_level());
        h.r(ICR);
    }
    assert_eq!(h.rising(), 10);
    assert_eq!(h.dev.next_deadline(), None);
}

#[test]
fn moderation_itr_limits_interrupt_rate() {
    let mut h = Harness::new(true);
    h.setup_tx(64);
    h.w(IMS, icr::TXDW);
    h.w(ITR, 100); // 25.6 us minimum interval
                   // One completion every 5 us for 100 us; the guest acknowledges each
                   // interrupt as soon as it sees it.
    let mut edges_at = Vec::new();
    for t in 0..=20u64 {
        let before = h.rising();
        h.set_time_us(t * 5);
        if h.rising() > before {
            edges_at.push(t * 5);
            h.r(ICR);
        }
        send_one(&mut h, false);
        if h.dev.interrupt_level() && h.rising() > before {
            edges_at.push(t * 5);
            h.r(ICR);
        }
    }
    edges_at.dedup();
    // Edges at 0, 25.6 -> 30 (next tick after the interval), 55.6 -> 60,
    // 85.6 -> 90: the timer fires at 25.6 us, seen by us at 30 us.
    assert_eq!(h.rising(), 4, "edges at {edges_at:?}");
    let deadline = h
        .dev
        .next_deadline()
        .expect("pending completion waits for ITR");
    assert_eq!(deadline, 90_000 + 25_600);
}

#[test]
fn moderation_tidv_tadv_coalesce_transmit_interrupts() {
    let mut h = Harness::new(true);
    h.setup_tx(64);
    h.w(IMS, icr::TXDW);
    h.w(TIDV, 20); // 20.48 us, restarted by every completion
    h.w(TADV, 50); // 51.2 us after the first completion
    let mut fired = Vec::new();
    let mut t = 0u64;
    while t <= 200_000 {
        if t <= 100_000 && t.is_multiple_of(10_000) {
            h.clock.set(t);
            send_one(&mut h, true);
        }
        if let Some(deadline) = h.dev.next_deadline() {
            if deadline <= t {
                h.clock.set(t);
                h.dev.on_timer(deadline);
                if h.dev.interrupt_level() {
                    fired.push(deadline);
                    h.r(ICR);
                }
            }
        }
        t += 100;
    }
    // The absolute timer ends the first burst at 51.2 us; packets at 60..100
    // restart TIDV, and TADV from 60 us fires at 111.2 us.
    assert_eq!(fired, vec![51_200, 111_200]);
    assert_eq!(h.rising(), 2);
    // A completion without IDE interrupts at once and stops the timers.
    h.clock.set(300_000);
    send_one(&mut h, true);
    send_one(&mut h, false);
    assert_eq!(h.rising(), 3);
    assert_eq!(h.dev.next_deadline(), None);
}

#[test]
fn moderation_rdtr_radv_coalesce_receive_interrupts() {
    let mut h = Harness::new(true);
    h.setup_rx(64, 0);
    h.w(RDT, 63);
    h.w(IMS, icr::RXT0);
    h.w(RDTR, 10); // 10.24 us packet timer
    h.w(RADV, 30); // 30.72 us absolute
                   // Frames every 4 us from 0 to 40 us, then one lone frame at 100 us.
    let mut fired = Vec::new();
    for t in (0..=40_000u64).step_by(4_000).chain([100_000]) {
        if let Some(deadline) = h.dev.next_deadline() {
            if deadline <= t {
                h.dev.on_timer(deadline);
                fired.push(deadline);
                h.r(ICR);
            }
        }
        h.clock.set(t);
        h.net.push_rx(&eth_frame(MAC, 64, 0));
        h.dev.process_rx(&h.mem, &mut h.net);
        assert!(!h.dev.interrupt_level());
    }
    let deadline = h.dev.next_deadline().unwrap();
    assert_eq!(deadline, 110_240, "lone frame: the packet timer");
    // RADV from 0 fires at 30.72; the next burst (32..40) ends by the packet
    // timer 10.24 us after the frame at 40 us.
    assert_eq!(fired, vec![30_720, 50_240]);
    // FPD flushes the pending timer at once.
    h.w(RDTR, 10 | rdtr::FPD);
    assert!(h.dev.interrupt_level());
    assert_eq!(h.r(ICR), icr::RXT0);
    assert_eq!(h.dev.next_deadline(), None);
}

// ---------------------------------------------------------------- CSB

const CSB: u64 = 0x3000;

impl Harness {
    /// A device offering the CSB extension, moderation off.
    fn csb() -> Self {
        let mut config = E1000Config::new(MAC).with_csb(true);
        config.mitigation = false;
        Self::with_config(config)
    }

    fn csb_get(&self, field: usize) -> u32 {
        self.mem.read_u32(CSB + field as u64).unwrap()
    }

    fn csb_set(&self, field: usize, value: u32) {
        self.mem.write_u32(CSB + field as u64, value).unwrap();
    }

    /// The guest enables the CSB: guest_csb_on, then CSBAH and CSBAL.
    fn map_csb(&mut self) {
        self.csb_set(csb::field::GUEST_CSB_ON, 1);
        self.w(CSBAH, 0);
        self.w(CSBAL, CSB as u32);
    }

    /// Queues `count` 60-byte frames at TX descriptors `first..` (RS set).
    fn queue_tx(&self, first: u32, count: u32, ring: u32) {
        for k in 0..count {
            let i = (first + k) % ring;
            let buf = TX_BUF + u64::from(i) * 2048;
            let frame = eth_frame([0x02, 0, 0, 0, 0, 1], 60, (first + k) as u8);
            self.mem.write(buf, &frame).unwrap();
            self.put_tx(i, legacy(buf, 60, cmd::EOP | cmd::RS));
        }
    }
}

#[test]
fn csb_registers_map_validate_and_turn_off() {
    let mut h = Harness::csb();
    assert_eq!(h.dev.config().subsystem_id, csb::SUBSYSTEM_ID);
    assert_eq!(h.dev.eeprom().word(0x0B), Some(csb::SUBSYSTEM_ID));
    h.setup_tx(8);
    h.map_csb();
    assert_eq!(h.dev.csb_address(), Some(CSB));
    assert_eq!((h.r(CSBAL), h.r(CSBAH)), (CSB as u32, 0));
    // The host half is initialised: the worker is asleep, TX needs a kick.
    assert_eq!(h.csb_get(csb::field::HOST_NEED_TXKICK), 1);
    assert_eq!(h.csb_get(csb::field::HOST_NEED_RXKICK), 0);
    assert_eq!(h.csb_get(csb::field::HOST_TDH), 0);
    assert_eq!(h.csb_get(csb::field::HOST_RXKICK_AT), csb::NONE);
    // Unaligned, or a page not wholly in RAM: ignored, counted, off.
    h.w(CSBAL, CSB as u32 + 4);
    assert_eq!(h.dev.csb_address(), None);
    h.w(CSBAL, (MEM_SIZE - 2048) as u32);
    assert_eq!(h.dev.csb_address(), None);
    h.w(CSBAH, 7);
    h.w(CSBAL, CSB as u32);
    assert_eq!(h.dev.csb_address(), None);
    assert_eq!(h.dev.errors().csb_address_invalid, 3);
    assert_eq!(h.r(CSBAH), 7, "reads return what was written");
    h.w(CSBAH, 0);
    h.w(CSBAL, CSB as u32);
    assert_eq!(h.dev.csb_address(), Some(CSB));
    // Writing 0 turns it off; so does a reset.
    h.w(CSBAL, 0);
    assert_eq!(h.dev.csb_address(), None);
    h.w(CSBAL, CSB as u32);
    h.w(CTRL, ctrl::RST);
    assert_eq!(h.dev.csb_address(), None);
    assert_eq!((h.r(CSBAL), h.r(CSBAH)), (0, 0));

    // Without the extension the registers do not exist.
    let mut stock = Harness::new(false);
    assert_eq!(stock.dev.config().subsystem_id, DEFAULT_SUBSYSTEM_ID);
    stock.w(CSBAL, CSB as u32);
    assert_eq!(stock.r(CSBAL), 0);
    assert_eq!(stock.dev.csb_address(), None);
    assert_eq!(stock.dev.errors().unknown_register_writes, 1);
}

#[test]
fn csb_tx_follows_guest_tdt_and_interrupts_only_on_request() {
    let mut h = Harness::csb();
    h.setup_tx(16);
    h.w(IMS, icr::TXDW | icr::TXQE);
    h.map_csb();
    // The guest queues 3 frames and publishes guest_tdt; no register write.
    h.queue_tx(0, 3, 16);
    h.csb_set(csb::field::GUEST_TDT, 3);
    let out = h.dev.process_tx(&h.mem, &mut h.net);
    assert_eq!(out.frames, 3);
    assert_eq!(h.sent().len(), 3);
    assert_eq!(h.csb_get(csb::field::HOST_TDH), 3);
    assert_eq!(h.r(TDH), 3);
    assert_eq!(h.tx_status(2) & 1, 1, "DD written back as usual");
    assert_eq!(h.rising(), 0, "guest_need_txkick is 0: no interrupt");
    assert_eq!(h.dev.pending_causes(), 0);
    // A TDT write is only a kick: nothing is processed inline.
    h.queue_tx(3, 2, 16);
    h.csb_set(csb::field::GUEST_TDT, 5);
    let effects = h
        .dev
        .mmio_write(u64::from(TDT), &5u32.to_le_bytes(), &h.mem);
    assert!(effects.csb_kick && !effects.process_tx);
    assert!(h.sent().is_empty());
    // The guest sleeps on a full ring: TX progress interrupts it.
    h.csb_set(csb::field::GUEST_NEED_TXKICK, 1);
    h.dev.process_tx(&h.mem, &mut h.net);
    assert_eq!(h.sent().len(), 2);
    assert_eq!(h.csb_get(csb::field::HOST_TDH), 5);
    assert_eq!(h.rising(), 1);
    assert_eq!(h.r(ICR), icr::TXDW | icr::TXQE);
    // No progress, no interrupt, even with the flag set.
    h.dev.process_tx(&h.mem, &mut h.net);
    assert_eq!(h.rising(), 1);
}

#[test]
fn csb_rx_follows_guest_rdt_and_publishes_host_rdh() {
    let mut h = Harness::csb();
    h.setup_rx(8, 0);
    h.w(IMS, icr::RXT0 | icr::RXDMT0);
    h.map_csb();
    // Buffers are returned through guest_rdt only (RDT stays 0).
    h.csb_set(csb::field::GUEST_RDT, 4);
    for seed in 0..6 {
        h.net.push_rx(&eth_frame(MAC, 60, seed));
    }
    let out = h.dev.process_rx(&h.mem, &mut h.net);
    assert_eq!(out.frames, 4);
    assert!(out.waiting_for_buffers);
    assert_eq!(h.csb_get(csb::field::HOST_RDH), 4);
    assert_eq!(h.rx_desc(3)[12] & 1, 1, "DD");
    assert_eq!(h.rising(), 0, "guest polls: no interrupt");
    // The worker wants to sleep with frames waiting: it asks for an RX kick.
    assert!(h.dev.csb_prepare_sleep(&h.mem, true));
    assert_eq!(h.csb_get(csb::field::HOST_NEED_RXKICK), 1);
    assert_eq!(h.csb_get(csb::field::HOST_NEED_TXKICK), 1);
    // The guest returns buffers and, seeing the flag, writes RDT: a kick.
    h.csb_set(csb::field::GUEST_RDT, 7);
    let effects = h
        .dev
        .mmio_write(u64::from(RDT), &7u32.to_le_bytes(), &h.mem);
    assert!(effects.csb_kick && !effects.process_rx);
    h.dev.csb_enter_polling(&h.mem);
    assert_eq!(h.csb_get(csb::field::HOST_NEED_RXKICK), 0);
    assert_eq!(h.csb_get(csb::field::HOST_NEED_TXKICK), 0);
    // The guest went idle waiting for frames: now delivery interrupts.
    h.csb_set(csb::field::GUEST_NEED_RXKICK, 1);
    let out = h.dev.process_rx(&h.mem, &mut h.net);
    assert_eq!(out.frames, 2);
    assert_eq!(h.csb_get(csb::field::HOST_RDH), 6);
    assert_eq!(h.rising(), 1);
    assert_ne!(h.r(ICR) & icr::RXT0, 0);
    assert_eq!(h.rx_data(5, 60), eth_frame(MAC, 60, 5));
}

#[test]
fn csb_sleep_rechecks_the_guest_index_after_setting_the_flag() {
    let mut h = Harness::csb();
    h.setup_tx(16);
    h.map_csb();
    h.dev.csb_enter_polling(&h.mem);
    assert_eq!(h.csb_get(csb::field::HOST_NEED_TXKICK), 0);
    // Nothing new: the worker may sleep, the flag stays set.
    assert!(h.dev.csb_prepare_sleep(&h.mem, false));
    assert_eq!(h.csb_get(csb::field::HOST_NEED_TXKICK), 1);
    h.dev.csb_enter_polling(&h.mem);
    // The guest published while the worker was deciding (it saw the flag
    // at 0 and did not kick): the re-check finds it, the flag is cleared.
    h.queue_tx(0, 2, 16);
    h.csb_set(csb::field::GUEST_TDT, 2);
    assert!(!h.dev.csb_prepare_sleep(&h.mem, false));
    assert_eq!(h.csb_get(csb::field::HOST_NEED_TXKICK), 0);
    assert_eq!(h.dev.process_tx(&h.mem, &mut h.net).frames, 2);
    assert!(h.dev.csb_prepare_sleep(&h.mem, false));
    // With TX disabled a stale guest_tdt does not keep the worker awake.
    h.w(TCTL, 0);
    h.csb_set(csb::field::GUEST_TDT, 9);
    assert!(h.dev.csb_prepare_sleep(&h.mem, false));
}

#[test]
fn csb_tx_batches_are_bounded() {
    let mut h = Harness::csb();
    h.net = QueueBackend::new(2048, 1 << 16);
    h.setup_tx(1024);
    h.map_csb();
    h.queue_tx(0, 1000, 1024);
    h.csb_set(csb::field::GUEST_TDT, 1000);
    let mut calls = 0;
    let mut sent = 0;
    while sent < 1000 {
        let out = h.dev.process_tx(&h.mem, &mut h.net);
        assert!(out.descriptors <= CSB_TX_BATCH);
        sent += out.frames;
        calls += 1;
        assert!(calls < 100);
    }
    assert_eq!(calls, 1000u32.div_ceil(CSB_TX_BATCH));
    assert_eq!(h.csb_get(csb::field::HOST_TDH), 1000);
    // A chain longer than a batch still goes out (walked whole).
    let first = 1000u32;
    let chain = CSB_TX_BATCH + 10;
    for k in 0..chain {
        let i = (first + k) % 1024;
        let last = k + 1 == chain;
        let command = if last { cmd::EOP | cmd::RS } else { 0 };
        h.put_tx(i, legacy(TX_BUF + u64::from(k) * 2, 2, command));
    }
    h.sent();
    let tail = (first + chain) % 1024;
    h.csb_set(csb::field::GUEST_TDT, tail);
    let out = h.dev.process_tx(&h.mem, &mut h.net);
    assert_eq!(out.frames, 1);
    assert_eq!(out.descriptors, chain);
    assert_eq!(h.sent()[0].len(), 2 * chain as usize);
    // RX is bounded the same way (a ring larger than a batch: 2 KiB
    // buffers packed from RX_BUF).
    let rx_ring = 2 * CSB_RX_BATCH;
    h.setup_rx(rx_ring, 0);
    for i in 0..rx_ring {
        let mut d = [0u8; 16];
        d[..8].copy_from_slice(&(RX_BUF + u64::from(i) * 2048).to_le_bytes());
        h.mem.write(RX_RING + u64::from(i) * 16, &d).unwrap();
    }
    h.csb_set(csb::field::GUEST_RDT, rx_ring - 1);
    let frames = CSB_RX_BATCH + 100;
    for seed in 0..frames {
        h.net.push_rx(&eth_frame(MAC, 60, seed as u8));
    }
    let out = h.dev.process_rx(&h.mem, &mut h.net);
    assert_eq!((out.frames, out.more), (CSB_RX_BATCH, true));
    let out = h.dev.process_rx(&h.mem, &mut h.net);
    assert_eq!((out.frames, out.more), (frames - CSB_RX_BATCH, false));
    assert_eq!(h.csb_get(csb::field::HOST_RDH), frames);
}

#[test]
fn hostile_csb_values_are_counted_and_ignored() {
    let mut h = Harness::csb();
    h.setup_tx(16);
    h.setup_rx(8, 0);
    h.w(IMS, icr::TXDW | icr::RXT0);
    h.map_csb();
    h.queue_tx(0, 4, 16);
    h.csb_set(csb::field::GUEST_TDT, 4);
    assert_eq!(h.dev.process_tx(&h.mem, &mut h.net).frames, 4);
    h.sent();
    // Out-of-range indices: counted (once per value), the last valid one stays.
    h.csb_set(csb::field::GUEST_TDT, 16);
    h.csb_set(csb::field::GUEST_RDT, 0xFFFF_FFFF);
    h.net.push_rx(&eth_frame(MAC, 60, 1));
    for _ in 0..3 {
        assert_eq!(h.dev.process_tx(&h.mem, &mut h.net).frames, 0);
        assert_eq!(h.dev.process_rx(&h.mem, &mut h.net).frames, 0);
    }
    assert_eq!(h.dev.errors().csb_index_invalid, 2);
    assert!(h.sent().is_empty(), "nothing replayed");
    assert_eq!(h.r(TDT), 4);
    // Flags with any non-zero value count as set; csb_on flipping switches
    // between the CSB and the registers without replaying or losing frames.
    h.queue_tx(4, 2, 16);
    h.csb_set(csb::field::GUEST_TDT, 6);
    h.csb_set(csb::field::GUEST_CSB_ON, 0);
    assert_eq!(
        h.dev.process_tx(&h.mem, &mut h.net).frames,
        0,
        "registers: TDT is 4"
    );
    h.csb_set(csb::field::GUEST_CSB_ON, 0xFFFF_FFFF);
    h.csb_set(csb::field::GUEST_NEED_TXKICK, 0x8000_0000);
    assert_eq!(h.dev.process_tx(&h.mem, &mut h.net).frames, 2);
    assert_eq!(h.rising(), 1, "need_txkick 0x80000000 is set");
    assert_eq!(h.dev.errors().csb_guest_on_changes, 2);
    assert_eq!(h.sent().len(), 2);
    // Scribbling over the host half changes nothing the device relies on.
    for field in [csb::field::HOST_TDH, csb::field::HOST_NEED_TXKICK] {
        h.csb_set(field, 0xDEAD_BEEF);
    }
    h.queue_tx(6, 1, 16);
    h.csb_set(csb::field::GUEST_TDT, 7);
    assert_eq!(h.dev.process_tx(&h.mem, &mut h.net).frames, 1);
    assert_eq!(h.csb_get(csb::field::HOST_TDH), 7);
}

#[test]
fn no_dma_while_bus_mastering_is_off() {
    let mut h = Harness::csb();
    h.setup_tx(16);
    h.setup_rx(8, 0);
    h.dev.set_bus_master(false, &h.mem);
    h.map_csb();
    assert_eq!(h.dev.csb_address(), Some(CSB));
    assert_eq!(
        h.csb_get(csb::field::HOST_NEED_TXKICK),
        0,
        "CSB not written without bus mastering"
    );
    h.queue_tx(0, 2, 16);
    h.csb_set(csb::field::GUEST_TDT, 2);
    h.csb_set(csb::field::GUEST_RDT, 4);
    h.net.push_rx(&eth_frame(MAC, 60, 1));
    assert_eq!(h.dev.process_tx(&h.mem, &mut h.net).frames, 0);
    assert_eq!(h.dev.process_rx(&h.mem, &mut h.net).frames, 0);
    assert_eq!(h.tx_status(0), 0);
    assert_eq!(h.net.receive_queue.len(), 1, "the frame waits");
    assert_eq!(h.dev.errors().dma_refused_bus_master_off, 1);
    h.dev.set_bus_master(true, &h.mem);
    assert_eq!(h.csb_get(csb::field::HOST_NEED_TXKICK), 1);
    assert_eq!(h.dev.process_tx(&h.mem, &mut h.net).frames, 2);
    assert_eq!(h.dev.process_rx(&h.mem, &mut h.net).frames, 1);
}
