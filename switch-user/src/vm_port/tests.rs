//! An offloaded port over a fake guest: descriptor rings, buffers and a
//! CSB laid out in a real sealed memfd with the e1000 spec's constants, as
//! a guest driver in CSB mode leaves them.

use std::os::fd::{AsFd, OwnedFd};

use e1000_model::offload::Handover;
use e1000_model::Dma;
use e1000_spec::csb::field;
use e1000_spec::desc::{self, rx as rx_desc, tx as tx_desc};
use e1000_spec::regs::*;
use switch_port::eventfd::EventFd;

use super::guest_memory::{sealed_memfd, GuestMemory};
use super::handover_fds::HandoverFds;
use super::offloaded_port::{OffloadError, OffloadedPort};
use crate::bridge::port::{FrameRef, PortIo};
use crate::counters::PortCounters;

pub(crate) const MEM: u64 = 1 << 20;
pub(crate) const CSB: u64 = 0x1000;
const TX_RING: u64 = 0x2000;
const RX_RING: u64 = 0x3000;
const TX_BUF: u64 = 0x1_0000;
const RX_BUF: u64 = 0x4_0000;
const STRIDE: u64 = 2048;
pub(crate) const RING: u32 = 16;
const SLOT: usize = 2048;

/// The guest's side: its own mapping of the memory and the VMM's ends of
/// the eventfds.
pub(crate) struct Guest {
    pub mem: GuestMemory,
    pub kick: EventFd,
    pub rx_call: EventFd,
    pub tx_call: EventFd,
}

fn dup(fd: &impl AsFd) -> OwnedFd {
    fd.as_fd().try_clone_to_owned().unwrap()
}

/// The hand-over of a guest with both rings of [`RING`] descriptors at
/// head 0, the receiver promiscuous, and the CSB at `csb`.
pub(crate) fn handover(csb: u64) -> Handover {
    let len = RING * desc::SIZE as u32;
    Handover {
        csb_address: csb,
        registers: vec![
            (TDBAL, TX_RING as u32),
            (TDBAH, 0),
            (TDLEN, len),
            (TDH, 0),
            (TDT, 0),
            (TCTL, tctl::EN),
            (RDBAL, RX_RING as u32),
            (RDBAH, 0),
            (RDLEN, len),
            (RDH, 0),
            (RDT, 0),
            (RCTL, rctl::EN | rctl::BAM | rctl::UPE | rctl::SECRC),
        ],
        tx: Default::default(),
    }
}

impl Guest {
    /// A guest in CSB mode (guest_csb_on set, no kicks wanted) with its RX
    /// descriptors pointing at buffers, and the port serving it.
    fn start(handover: &Handover) -> (Guest, Result<OffloadedPort, OffloadError>) {
        let (guest, fds) = Guest::new();
        let fds = HandoverFds::split(fds).unwrap();
        let memory = GuestMemory::map(fds.memory.as_fd(), MEM).unwrap();
        let port = OffloadedPort::new(memory, fds, handover, SLOT);
        (guest, port)
    }

    /// A guest in CSB mode, and the four fds a VMM hands over for it.
    pub(crate) fn new() -> (Guest, Vec<OwnedFd>) {
        let memfd = sealed_memfd(MEM, libc::F_SEAL_SHRINK | libc::F_SEAL_GROW);
        let (kick, rx_call, tx_call) = (
            EventFd::new().unwrap(),
            EventFd::new().unwrap(),
            EventFd::new().unwrap(),
        );
        let guest = Guest {
            mem: GuestMemory::map(memfd.as_fd(), MEM).unwrap(),
            kick,
            rx_call,
            tx_call,
        };
        guest.csb_set(field::GUEST_CSB_ON, 1);
        for i in 0..RING {
            let mut d = [0u8; desc::SIZE];
            let addr = RX_BUF + u64::from(i) * STRIDE;
            d[rx_desc::ADDR..rx_desc::ADDR + 8].copy_from_slice(&addr.to_le_bytes());
            guest.put(RX_RING + u64::from(i) * desc::SIZE as u64, &d);
        }
        let fds = vec![
            memfd,
            dup(&guest.kick),
            dup(&guest.rx_call),
            dup(&guest.tx_call),
        ];
        (guest, fds)
    }

    pub(crate) fn put(&self, addr: u64, bytes: &[u8]) {
        self.mem.write(addr, bytes).unwrap();
    }

    pub(crate) fn csb_get(&self, f: usize) -> u32 {
        self.mem.read_u32(CSB + f as u64).unwrap()
    }

    pub(crate) fn csb_set(&self, f: usize, value: u32) {
        self.mem.write_u32(CSB + f as u64, value).unwrap();
    }

    /// Puts `frame` in TX buffer `index` with an EOP descriptor, as the
    /// driver does before moving guest_tdt.
    pub(crate) fn queue_tx(&self, index: u32, frame: &[u8]) {
        let addr = TX_BUF + u64::from(index) * STRIDE;
        self.put(addr, frame);
        self.put_tx_desc(index, addr, frame.len() as u16);
    }

    fn put_tx_desc(&self, index: u32, addr: u64, len: u16) {
        let mut d = [0u8; desc::SIZE];
        d[tx_desc::ADDR..tx_desc::ADDR + 8].copy_from_slice(&addr.to_le_bytes());
        d[tx_desc::LENGTH..tx_desc::LENGTH + 2].copy_from_slice(&len.to_le_bytes());
        d[tx_desc::CMD] = tx_desc::cmd::EOP | tx_desc::cmd::IFCS | tx_desc::cmd::RS;
        self.put(TX_RING + u64::from(index) * desc::SIZE as u64, &d);
    }

    /// The frame the device wrote into RX descriptor `index`'s buffer, if
    /// the descriptor is done.
    pub(crate) fn received(&self, index: u32) -> Option<Vec<u8>> {
        let mut d = [0u8; desc::SIZE];
        self.mem
            .read(RX_RING + u64::from(index) * desc::SIZE as u64, &mut d)
            .unwrap();
        if d[rx_desc::STATUS] & rx_desc::status::DD == 0 {
            return None;
        }
        let len = u16::from_le_bytes([d[rx_desc::LENGTH], d[rx_desc::LENGTH + 1]]);
        let mut data = vec![0u8; len as usize];
        self.mem
            .read(RX_BUF + u64::from(index) * STRIDE, &mut data)
            .unwrap();
        Some(data)
    }
}

/// A unicast Ethernet frame of `len` bytes whose payload bytes are `seed`.
pub(crate) fn frame(len: usize, seed: u8) -> Vec<u8> {
    let mut f = vec![seed; len];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x0A]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x0B]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f
}

fn refs(frames: &[Vec<u8>]) -> Vec<FrameRef> {
    frames
        .iter()
        .map(|f| FrameRef {
            ptr: f.as_ptr(),
            len: f.len() as u32,
            readable: f.len() as u32,
        })
        .collect()
}

/// The frames of one receive, copied out.
fn receive(port: &OffloadedPort, counters: &PortCounters) -> Vec<Vec<u8>> {
    let mut batch = Vec::new();
    port.receive(&mut batch, 512, counters);
    let out = batch
        .iter()
        // SAFETY: the port's staging slots hold `len` bytes until release.
        .map(|f| unsafe { std::slice::from_raw_parts(f.ptr, f.len as usize) }.to_vec())
        .collect();
    port.release(counters);
    out
}

fn stat(port: &OffloadedPort, name: &str) -> u64 {
    port.extra_stats()
        .into_iter()
        .find(|(n, _)| n == name)
        .map_or(0, |(_, v)| v)
}

#[test]
fn transmitted_frames_come_out_of_receive_byte_exact() {
    let (guest, port) = Guest::start(&handover(CSB));
    let port = port.unwrap();
    let counters = PortCounters::default();
    assert!(receive(&port, &counters).is_empty(), "nothing queued yet");
    let sent: Vec<Vec<u8>> = [60, 1514, 342]
        .iter()
        .enumerate()
        .map(|(i, &len)| frame(len, i as u8 + 1))
        .collect();
    for (i, f) in sent.iter().enumerate() {
        guest.queue_tx(i as u32, f);
    }
    guest.csb_set(field::GUEST_TDT, sent.len() as u32);
    assert_eq!(receive(&port, &counters), sent);
    assert_eq!(guest.csb_get(field::HOST_TDH), 3, "host_tdh published");
    assert_eq!(guest.tx_call.drain(), 0, "no call unless the guest asks");
    let c = counters.snapshot();
    assert_eq!((c.rx_packets, c.rx_bytes), (3, 60 + 1514 + 342));

    // The guest now sleeps waiting for completions: it gets a call.
    guest.csb_set(field::GUEST_NEED_TXKICK, 1);
    guest.queue_tx(3, &frame(100, 9));
    guest.csb_set(field::GUEST_TDT, 4);
    assert_eq!(receive(&port, &counters), vec![frame(100, 9)]);
    assert_eq!(guest.tx_call.drain(), 1);
    let back = port.hand_back();
    assert_eq!((back.tdh, back.tdt), (4, 4));
}

#[test]
fn delivered_frames_land_in_rx_buffers_and_move_host_rdh() {
    let (guest, port) = Guest::start(&handover(CSB));
    let port = port.unwrap();
    let counters = PortCounters::default();
    // 15 buffers given to the device (the ring keeps one free).
    guest.csb_set(field::GUEST_RDT, RING - 1);
    let frames = vec![frame(60, 1), frame(1514, 2)];
    assert_eq!(port.deliver(&refs(&frames), &[0, 1], &counters), 2);
    assert_eq!(guest.received(0).as_ref(), Some(&frames[0]));
    assert_eq!(guest.received(1).as_ref(), Some(&frames[1]));
    assert_eq!(guest.received(2), None);
    assert_eq!(guest.csb_get(field::HOST_RDH), 2);
    assert_eq!(guest.rx_call.drain(), 0, "no call unless the guest asks");

    guest.csb_set(field::GUEST_NEED_RXKICK, 1);
    let third = vec![frame(200, 3)];
    assert_eq!(port.deliver(&refs(&third), &[0], &counters), 1);
    assert_eq!(guest.received(2).as_ref(), Some(&third[0]));
    assert_eq!(guest.rx_call.drain(), 1);

    // 12 buffers are left: of 20 frames, 8 find none (a full ring).
    let many: Vec<Vec<u8>> = (0..20).map(|i| frame(64, i)).collect();
    let which: Vec<u16> = (0..20).collect();
    assert_eq!(port.deliver(&refs(&many), &which, &counters), 12);
    let c = counters.snapshot();
    assert_eq!(c.tx_packets, 15);
    assert_eq!(c.drop_ring_full, 8);
    assert_eq!(port.hand_back().rdh, RING - 1);
}

#[test]
fn the_sleep_handshake_uses_the_csb_flags_and_the_kick() {
    let (guest, port) = Guest::start(&handover(CSB));
    let port = port.unwrap();
    assert!(port.wake_fd().is_some());
    // Nothing waiting: the port may sleep and asks the guest to kick.
    assert!(!port.arm());
    assert_eq!(guest.csb_get(field::HOST_NEED_TXKICK), 1);
    port.disarm();
    assert_eq!(guest.csb_get(field::HOST_NEED_TXKICK), 0);
    // Work published meanwhile: arm says so.
    guest.queue_tx(0, &frame(60, 1));
    guest.csb_set(field::GUEST_TDT, 1);
    assert!(port.arm());
    // The guest's kick is the wake fd, drained on wake.
    guest.kick.signal();
    assert!(guest.kick.wait(0).unwrap());
    port.on_wake();
    assert!(!guest.kick.wait(0).unwrap());
    assert_eq!(stat(&port, "offload_kicks"), 1);
}

#[test]
fn a_guest_leaving_csb_mode_is_walked_no_more_and_the_vmm_called_once() {
    let (guest, port) = Guest::start(&handover(CSB));
    let port = port.unwrap();
    let counters = PortCounters::default();
    guest.queue_tx(0, &frame(60, 1));
    guest.csb_set(field::GUEST_TDT, 1);
    guest.csb_set(field::GUEST_CSB_ON, 0);
    assert!(receive(&port, &counters).is_empty());
    assert!(receive(&port, &counters).is_empty());
    assert!(!port.arm());
    assert_eq!(guest.tx_call.drain(), 1);
    assert_eq!(stat(&port, "offload_guest_left_csb"), 1);
    assert_eq!(guest.csb_get(field::HOST_TDH), 0, "nothing was walked");
}

#[test]
fn a_revoked_port_touches_guest_memory_no_more() {
    let (guest, port) = Guest::start(&handover(CSB));
    let port = port.unwrap();
    let counters = PortCounters::default();
    guest.csb_set(field::GUEST_RDT, RING - 1);
    guest.queue_tx(0, &frame(60, 1));
    guest.csb_set(field::GUEST_TDT, 1);
    assert_eq!(receive(&port, &counters).len(), 1);
    let one = vec![frame(60, 7)];
    assert_eq!(port.deliver(&refs(&one), &[0], &counters), 1);
    port.revoke();
    assert!(port.revoked());
    guest.queue_tx(1, &frame(60, 2));
    guest.csb_set(field::GUEST_TDT, 2);
    assert!(receive(&port, &counters).is_empty());
    assert_eq!(port.deliver(&refs(&one), &[0], &counters), 0);
    assert!(!port.arm());
    port.disarm();
    assert_eq!(guest.csb_get(field::HOST_TDH), 1);
    assert_eq!(guest.received(1), None);
    assert_eq!(counters.snapshot().drop_no_client, 1);
    let back = port.hand_back();
    assert_eq!((back.tdh, back.rdh, back.rdt), (1, 1, RING - 1));
}

#[test]
fn a_bad_csb_or_register_is_refused() {
    for csb in [0, CSB + 4, MEM - 64, MEM, u64::MAX - 63] {
        let (_guest, port) = Guest::start(&handover(csb));
        assert!(
            matches!(port, Err(OffloadError::Handover(_))),
            "CSB at {csb:#x}"
        );
    }
    let mut bad = handover(CSB);
    bad.registers.push((ICR, 0));
    assert!(Guest::start(&bad).1.is_err(), "not a data-path register");
    let mut many = handover(CSB);
    many.registers = vec![(TDT, 0); 10_000];
    assert!(Guest::start(&many).1.is_err(), "too many registers");
}

#[test]
fn hostile_rings_and_indices_are_counted_never_followed() {
    let counters = PortCounters::default();
    // Rings outside guest memory.
    let mut outside = handover(CSB);
    for (reg, value) in &mut outside.registers {
        if *reg == TDBAL || *reg == RDBAL {
            *value = (MEM - 64) as u32;
        }
    }
    let (guest, port) = Guest::start(&outside);
    let port = port.unwrap();
    guest.csb_set(field::GUEST_TDT, 3);
    guest.csb_set(field::GUEST_RDT, 3);
    assert!(receive(&port, &counters).is_empty());
    let one = vec![frame(60, 1)];
    assert_eq!(port.deliver(&refs(&one), &[0], &counters), 0);
    assert_eq!(stat(&port, "e1000_tx_ring_invalid"), 1);
    assert_eq!(stat(&port, "e1000_rx_ring_invalid"), 1);
    assert_eq!(counters.snapshot().drop_ring_full, 1);

    // Heads handed over past the ring's end.
    let mut heads = handover(CSB);
    for (reg, value) in &mut heads.registers {
        if *reg == TDH || *reg == RDH {
            *value = 1000;
        }
    }
    let (guest, port) = Guest::start(&heads);
    let port = port.unwrap();
    guest.csb_set(field::GUEST_TDT, 2);
    guest.csb_set(field::GUEST_RDT, 2);
    assert!(receive(&port, &counters).is_empty());
    assert_eq!(port.deliver(&refs(&one), &[0], &counters), 0);
    assert_eq!(stat(&port, "e1000_tx_index_out_of_range"), 1);
    assert_eq!(stat(&port, "e1000_rx_index_out_of_range"), 1);

    // Guest indices past the ring, a buffer outside memory, a bad batch
    // index: counted, nothing read from outside.
    let (guest, port) = Guest::start(&handover(CSB));
    let port = port.unwrap();
    guest.csb_set(field::GUEST_TDT, 5000);
    assert!(receive(&port, &counters).is_empty());
    assert!(stat(&port, "e1000_csb_index_invalid") >= 1);
    guest.put_tx_desc(0, MEM - 10, 60);
    guest.queue_tx(1, &frame(60, 4));
    guest.csb_set(field::GUEST_TDT, 2);
    assert_eq!(receive(&port, &counters), vec![frame(60, 4)]);
    assert_eq!(stat(&port, "e1000_tx_buffer_dma_errors"), 1);
    guest.csb_set(field::GUEST_RDT, 4);
    assert_eq!(port.deliver(&refs(&one), &[7, 0], &counters), 1);
    assert_eq!(guest.received(0).as_ref(), Some(&one[0]));
}

#[test]
fn frames_the_guest_receiver_refuses_are_dropped_and_counted() {
    let (guest, port) = Guest::start(&handover(CSB));
    let port = port.unwrap();
    let counters = PortCounters::default();
    guest.csb_set(field::GUEST_RDT, RING - 1);
    // Longer than the receiver takes without RCTL.LPE, then one that fits.
    let frames = vec![frame(3000, 1), frame(60, 2)];
    assert_eq!(port.deliver(&refs(&frames), &[0, 1], &counters), 1);
    assert_eq!(guest.received(0).as_ref(), Some(&frames[1]));
    assert_eq!(counters.snapshot().drop_filtered, 1);
    assert_eq!(stat(&port, "e1000_rx_oversize_drops"), 1);
    assert_eq!(stat(&port, "offload_model_drops"), 1);
}
