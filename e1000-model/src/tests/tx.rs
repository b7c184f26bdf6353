//! The transmit path: the ring and its write-back, chains of descriptors
//! waiting for EOP, short-frame padding and VLAN tag insertion.

use e1000_spec::desc::tx::{cmd, status as txs, SPECIAL};
use e1000_spec::regs::{ctrl, icr, tctl, CTRL, ICR, IMS};

use super::*;

#[test]
fn transmit_ring_wraps_writes_back_and_interrupts() {
    let mut h = Harness::new(false);
    h.setup_tx(8);
    h.w(IMS, icr::TXDW | icr::TXQE);
    let mut tail = 0u32;
    let mut expected = Vec::new();
    for round in 0..4u8 {
        for k in 0..5u8 {
            let frame = eth_frame(PEER, 64 + usize::from(k), round * 16 + k);
            let addr = TX_BUF + u64::from(tail) * 0x800;
            h.put_tx_frame(tail, addr, &frame, cmd::EOP | cmd::IFCS | cmd::RS);
            expected.push(frame);
            tail = (tail + 1) % 8;
        }
        h.w(TDT, tail);
        assert_eq!(h.r(TDH), tail);
        assert!(h.dev.interrupt_level());
        assert_eq!(h.r(ICR), icr::TXDW | icr::TXQE);
        for k in 0..5 {
            let index = (tail + 8 - 5 + k) % 8;
            assert_eq!(h.tx_status(index), txs::DD, "DD written back at {index}");
            h.put_tx(index, [0; desc::SIZE]);
        }
    }
    assert_eq!(h.sent(), expected);
    assert_eq!(h.net.tx_kicks, 4, "one flush per TDT write");
}

#[test]
fn transmit_gathers_chains_and_waits_for_eop() {
    let mut h = Harness::new(false);
    h.setup_tx(8);
    let frame = eth_frame(PEER, 300, 9);
    h.put_tx_frame(0, TX_BUF, &frame[..100], 0);
    h.put_tx_frame(1, TX_BUF + 0x1000, &frame[100..250], 0);
    h.put_tx(2, legacy(0, 0, 0)); // null descriptor in the middle
    h.put_tx_frame(3, TX_BUF + 0x2000, &frame[250..], cmd::EOP | cmd::RS);
    h.w(TDT, 2);
    assert_eq!(h.r(TDH), 0, "chain without EOP stays in the ring");
    assert!(h.sent().is_empty());
    h.w(TDT, 4);
    assert_eq!(h.r(TDH), 4);
    assert_eq!(h.sent(), vec![frame]);
    assert_eq!(h.tx_status(3), txs::DD);
}

#[test]
fn transmit_pads_short_frames_and_inserts_vlan_tags() {
    let mut h = Harness::new(false);
    h.setup_tx(8);
    h.w(TCTL, tctl::EN | tctl::PSP);
    let value = h.r(CTRL) | ctrl::VME;
    h.w(CTRL, value);
    let frame = eth_frame(PEER, 40, 1);
    h.put_tx_frame(0, TX_BUF, &frame, cmd::EOP);
    let mut tagged = legacy(TX_BUF, 40, cmd::EOP | cmd::VLE);
    tagged[SPECIAL..SPECIAL + 2].copy_from_slice(&0x3007u16.to_le_bytes());
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
