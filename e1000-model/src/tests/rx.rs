//! The receive path: address and VLAN filters, the ring and its write-back,
//! frames waiting for buffers, frames spanning buffers with CRC and padding,
//! VLAN stripping, the descriptor threshold and oversize frames.

use e1000_spec::desc::rx::status as rxs;
use e1000_spec::regs::{ctrl, icr, ra_high, ra_low, rah, rctl, CTRL, ICR, IMS, MTA, VFTA};
use e1000_spec::stats as st;

use super::reference::reference_crc;
use super::*;
use crate::rx::multicast_hash;

#[test]
fn receive_filters_unicast_broadcast_multicast_promiscuous() {
    let mut h = Harness::new(false);
    h.setup_rx(64, 0);
    h.w(RDT, 63);
    let other = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
    let multicast = [0x01, 0x00, 0x5E, 0x00, 0x00, 0xFB];
    let accepted = |h: &mut Harness, frame: Vec<u8>| -> bool {
        let before = h.dev.statistics().peek(st::GPRC);
        h.deliver(&frame);
        assert!(h.net.receive_queue.is_empty());
        h.dev.statistics().peek(st::GPRC) > before
    };
    assert!(accepted(&mut h, eth_frame(MAC, 64, 1)), "own unicast");
    assert!(!accepted(&mut h, eth_frame(other, 64, 1)), "other unicast");
    assert!(
        accepted(&mut h, eth_frame([0xFF; 6], 64, 1)),
        "broadcast with BAM"
    );
    assert!(
        !accepted(&mut h, eth_frame(multicast, 64, 1)),
        "multicast not in MTA"
    );
    let hash = multicast_hash(&multicast, 0);
    h.w(MTA + 4 * (hash >> 5), 1 << (hash & 31));
    assert!(
        accepted(&mut h, eth_frame(multicast, 64, 1)),
        "multicast in MTA"
    );
    h.w(RCTL, rctl::EN | rctl::SECRC);
    assert!(
        !accepted(&mut h, eth_frame([0xFF; 6], 64, 1)),
        "broadcast without BAM"
    );
    h.w(RCTL, rctl::EN | rctl::SECRC | rctl::UPE);
    assert!(
        accepted(&mut h, eth_frame(other, 64, 1)),
        "unicast promiscuous"
    );
    assert!(
        !accepted(&mut h, eth_frame([0x03, 0, 0, 0, 0, 1], 64, 1)),
        "UPE is unicast only"
    );
    h.w(RCTL, rctl::EN | rctl::SECRC | rctl::MPE);
    assert!(
        accepted(&mut h, eth_frame([0x03, 0, 0, 0, 0, 1], 64, 1)),
        "multicast promiscuous"
    );
    // A second exact address; an entry without AV does not match.
    h.w(RCTL, rctl::EN | rctl::SECRC);
    h.w(
        ra_low(1),
        u32::from_le_bytes([other[0], other[1], other[2], other[3]]),
    );
    h.w(
        ra_high(1),
        u32::from(u16::from_le_bytes([other[4], other[5]])),
    );
    assert!(!accepted(&mut h, eth_frame(other, 64, 1)));
    h.w(
        ra_high(1),
        u32::from(u16::from_le_bytes([other[4], other[5]])) | rah::AV,
    );
    assert!(accepted(&mut h, eth_frame(other, 64, 1)));
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
        let outcome = h.rx();
        assert_eq!(outcome.frames, 5);
        for k in 0..5u32 {
            let index = (expected_head + k) % 8;
            let d = h.rx_done(index);
            let len = usize::from(d.len);
            assert_eq!(len, 100 + k as usize);
            assert_eq!(d.status, rxs::DD | rxs::EOP | rxs::IXSM);
            assert_eq!(d.errors, 0);
            let frame = eth_frame(MAC, len, round * 10 + k as u8);
            assert_eq!(h.rx_data(index, len), frame);
            // The guest returns the buffer: clear status, move RDT.
            h.put_rx_buffer(index, RX_BUF + u64::from(index) * RX_STRIDE);
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
    let outcome = h.rx();
    assert!(outcome.waiting_for_buffers);
    assert_eq!(outcome.frames, 0);
    h.rx();
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

#[test]
fn receive_spans_buffers_appends_crc_and_pads() {
    let mut h = Harness::new(false);
    // 256-byte buffers (BSIZE 11b), CRC kept (SECRC clear).
    h.setup_rx(16, rctl::bsize::B256);
    h.w(RCTL, rctl::EN | rctl::BAM | rctl::bsize::B256);
    h.w(RDT, 15);
    let frame = eth_frame(MAC, 600, 7);
    h.deliver(&frame);
    let mut wire = frame.clone();
    wire.extend_from_slice(&reference_crc(&frame).to_le_bytes());
    let mut got = Vec::new();
    for index in 0..3 {
        let d = h.rx_done(index);
        let last = index == 2;
        assert_eq!(d.status & rxs::EOP != 0, last);
        assert_ne!(d.status & rxs::DD, 0);
        got.extend(h.rx_data(index, usize::from(d.len)));
    }
    assert_eq!(got, wire);
    assert_eq!(h.r(RDH), 3);
    // A runt from the backend is padded to 60 bytes (plus CRC).
    let short = eth_frame(MAC, 20, 1);
    h.deliver(&short);
    assert_eq!(h.rx_done(3).len, 64);
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
    h.deliver(&tagged);
    let d = h.rx_done(0);
    assert_eq!(d.len, 100);
    assert_ne!(d.status & rxs::VP, 0);
    assert_eq!(d.special, 0x2005);
    assert_eq!(h.rx_data(0, 100), inner);
    // With the VLAN filter on, VID 5 must be in the VFTA.
    let value = h.r(RCTL) | rctl::VFE;
    h.w(RCTL, value);
    h.deliver(&tagged);
    assert_eq!(h.r(RDH), 1);
    h.w(VFTA, 1 << 5);
    h.deliver(&tagged);
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
    h.rx();
    assert_eq!(h.dev.pending_causes() & icr::RXDMT0, 0);
    h.deliver(&eth_frame(MAC, 64, 3));
    assert_ne!(h.r(ICR) & icr::RXDMT0, 0);
    // 1519 bytes + CRC is too long without LPE.
    h.deliver(&eth_frame(MAC, 1519, 0));
    assert_eq!(h.dev.errors().rx_oversize_drops, 1);
    assert_eq!(h.dev.statistics().peek(st::ROC), 1);
    let value = h.r(RCTL) | rctl::LPE;
    h.w(RCTL, value);
    h.deliver(&eth_frame(MAC, 1519, 0));
    assert_eq!(h.dev.statistics().peek(st::GPRC), 4);
}
