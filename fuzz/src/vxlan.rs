//! The `vxlan` target: arbitrary UDP datagrams from arbitrary remote hosts
//! into a VXLAN tunnel's receive step ([`Decap`]), through a real
//! [`RecvBatch`] (filled as `recvmmsg` fills it) and a real [`VtepTable`]:
//! header checks, demultiplexing between our VNI, a neighbour tunnel's VNI
//! (parked in its real [`Inbox`], then taken by that tunnel) and unknown
//! ones, and learning inner source MACs against the sending VTEP.
//!
//! Checked for every datagram: it is counted under exactly one outcome,
//! the one the header and length call for; a frame handed on points into
//! the datagram's slot, is at least an Ethernet header long and is the
//! datagram's bytes after the VXLAN header; a frame passed to the
//! neighbour arrives there intact (or is counted as an inbox drop). After
//! every batch: the learning tables hold only unicast addresses, never
//! behind our own address, and within their capacity. Always: no crash.

use std::net::Ipv4Addr;

use parking_lot::RwLock;
use switch_user::tunnel::decap::{Decap, RxTally};
use switch_user::tunnel::demux::Inbox;
use switch_user::tunnel::header::{encode, FLAG_VNI, VXLAN_HEADER};
use switch_user::tunnel::socket::RecvBatch;
use switch_user::tunnel::vteps::VtepTable;

use crate::input::Input;

/// Operation codes (modulo [`op::COUNT`]).
pub mod op {
    /// A datagram arrives: sender u8 (10.0.0.N, N mod 4; 1 is our own
    /// address), header u8 (0: as given in the run; else a valid header
    /// for VNI N-1 mod 4 in front of it), run.
    pub const DATAGRAM: u8 = 0;
    /// The batch read so far is decapsulated.
    pub const RECEIVE: u8 = 1;
    /// The clock advances: seconds u8.
    pub const TICK: u8 = 2;
    /// Number of operation codes.
    pub const COUNT: u8 = 3;
}

/// Our VNI; the neighbour tunnel on the same socket has [`OTHER_VNI`].
pub const OUR_VNI: u32 = 1;
/// The neighbour's VNI.
pub const OTHER_VNI: u32 = 2;
/// Our VTEP address.
pub const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// Longest datagram run read from the input.
const MAX_DATAGRAM: usize = 1024;
/// Datagrams per batch at most.
const SLOTS: usize = 16;

/// One tunnel's state: its receive step's table.
struct Tunnel {
    vni: u32,
    vteps: RwLock<VtepTable>,
    capacity: usize,
}

impl Tunnel {
    fn decap(&self, now: u32) -> Decap<'_> {
        Decap {
            vni: self.vni,
            local: LOCAL,
            vteps: &self.vteps,
            now,
        }
    }

    fn check_table(&self, now: u32) {
        let t = self.vteps.read();
        assert!(t.len() <= self.capacity, "table past its capacity");
        for (mac, vtep, _) in t.entries(now) {
            assert_eq!(mac[0] & 1, 0, "a group address learned");
            assert_ne!(mac, [0; 6], "the zero address learned");
            assert_ne!(vtep, LOCAL, "learned behind our own address");
        }
    }
}

/// What the step must make of a datagram.
#[derive(Debug, PartialEq, Eq)]
enum Expected {
    Taken,
    Short,
    Bad,
    Unknown,
    Oversize,
    Passed,
}

fn expected(datagram: &[u8], slot: usize) -> Expected {
    if datagram.len() > VXLAN_HEADER + slot {
        Expected::Oversize
    } else if datagram.len() < VXLAN_HEADER + 14 {
        Expected::Short
    } else if datagram[0] & FLAG_VNI == 0 {
        Expected::Bad
    } else {
        match u32::from_be_bytes([0, datagram[4], datagram[5], datagram[6]]) {
            OUR_VNI => Expected::Taken,
            OTHER_VNI => Expected::Passed,
            _ => Expected::Unknown,
        }
    }
}

fn outcome(before: &RxTally, after: &RxTally) -> Expected {
    let steps = [
        (after.taken - before.taken, Expected::Taken),
        (after.short - before.short, Expected::Short),
        (after.bad - before.bad, Expected::Bad),
        (after.unknown - before.unknown, Expected::Unknown),
        (after.oversize - before.oversize, Expected::Oversize),
        (after.passed - before.passed, Expected::Passed),
    ];
    let total: u64 = steps.iter().map(|(n, _)| n).sum();
    assert_eq!(total, 1, "a datagram counted {total} times: {after:?}");
    steps.into_iter().find(|(n, _)| *n == 1).unwrap().1
}

/// Decapsulates the datagrams in `rx` (copies of which are in `sent`) and
/// checks every outcome.
fn receive(
    rx: &mut RecvBatch,
    sent: &mut Vec<Vec<u8>>,
    ours: &Tunnel,
    other: &Tunnel,
    inbox: &Inbox,
    now: u32,
) {
    let slot = rx.slot_size();
    let decap = ours.decap(now);
    let mut batch = Vec::new();
    let mut tally = RxTally::default();
    let mut passed = Vec::new();
    for (i, datagram) in sent.iter().enumerate() {
        let d = rx.get(i);
        let before = tally;
        let full_before = inbox.full_drops();
        // SAFETY: a datagram pushed into `rx`, which outlives `batch`.
        unsafe {
            decap.datagram(
                &d,
                slot as u32,
                |vni| (vni == OTHER_VNI).then_some(inbox),
                &mut batch,
                &mut tally,
            )
        };
        let got = outcome(&before, &tally);
        assert_eq!(got, expected(datagram, slot), "datagram {datagram:02x?}");
        match got {
            Expected::Taken => {
                let f = batch.last().expect("taken but not in the batch");
                let len = f.len as usize;
                assert_eq!(f.ptr, d.frame, "the frame is not the datagram's slot");
                assert!(len >= 14, "a frame of {len} bytes handed on");
                assert!(
                    len + VXLAN_HEADER <= datagram.len(),
                    "frame past the datagram"
                );
                assert!(f.readable as usize >= len && f.readable as usize <= slot);
                assert_eq!(tally.bytes - before.bytes, len as u64);
                // SAFETY: the slot holds `len` bytes.
                let bytes = unsafe { std::slice::from_raw_parts(f.ptr, len) };
                assert_eq!(bytes, &datagram[VXLAN_HEADER..], "frame bytes differ");
            }
            Expected::Passed if inbox.full_drops() == full_before => {
                passed.push((datagram[VXLAN_HEADER..].to_vec(), d.from));
            }
            _ => {}
        }
        assert_eq!(batch.len() as u64, tally.taken, "batch and count disagree");
    }
    rx.clear();
    sent.clear();
    ours.check_table(now);

    // The neighbour takes what was parked for it, in order, intact.
    let mut parked = Vec::new();
    inbox.take(&mut parked, usize::MAX);
    assert_eq!(parked.len(), passed.len(), "parked frames lost or invented");
    let decap = other.decap(now);
    let mut batch = Vec::new();
    let mut tally = RxTally::default();
    for (p, (frame, from)) in parked.iter().zip(&passed) {
        assert_eq!(&p.frame, frame, "a parked frame changed");
        assert_eq!(p.from, *from);
        decap.parked(p, &mut batch, &mut tally);
        let f = batch.last().unwrap();
        assert!(f.len as usize >= 14 && f.len as usize == p.frame.len());
    }
    assert_eq!(tally.taken, parked.len() as u64);
    inbox.recycle(&mut parked);
    other.check_table(now);
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    // Small receive slots, tables and inbox, so that truncation, refusals
    // and a full inbox are reached.
    let slot = 64 * (1 + usize::from(input.u8() % 4));
    let capacity = 1 + usize::from(input.u8() % 8);
    let max_age = 1 + u32::from(input.u8() % 16);
    let inbox = Inbox::new(1 + usize::from(input.u8() % 4)).expect("eventfd");
    let tunnel = |vni| Tunnel {
        vni,
        vteps: RwLock::new(VtepTable::new(capacity, max_age)),
        capacity,
    };
    let (ours, other) = (tunnel(OUR_VNI), tunnel(OTHER_VNI));
    let mut rx = RecvBatch::new(SLOTS, slot);
    let mut sent: Vec<Vec<u8>> = Vec::new();
    let mut now = 0u32;
    while !input.done() {
        match input.u8() % op::COUNT {
            op::DATAGRAM => {
                let from = Ipv4Addr::new(10, 0, 0, input.u8() % 4);
                let header = input.u8();
                let body = input.run(MAX_DATAGRAM);
                let mut datagram = Vec::with_capacity(body.len() + VXLAN_HEADER);
                if header != 0 {
                    datagram.extend_from_slice(&encode(u32::from(header - 1) % 4));
                }
                datagram.extend_from_slice(body);
                if !rx.push(&datagram, from) {
                    receive(&mut rx, &mut sent, &ours, &other, &inbox, now);
                    assert!(rx.push(&datagram, from), "no room after a receive");
                }
                sent.push(datagram);
            }
            op::RECEIVE => receive(&mut rx, &mut sent, &ours, &other, &inbox, now),
            _ => now = now.saturating_add(u32::from(input.u8())),
        }
    }
    receive(&mut rx, &mut sent, &ours, &other, &inbox, now);
}
