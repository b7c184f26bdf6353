//! What a hostile or broken guest does to the rings, indices and
//! descriptors: every case is dropped or ignored, counted, and the device
//! keeps going.

use e1000_spec::desc::data::popts;
use e1000_spec::desc::rx::{errors as rxe, status as rxs};
use e1000_spec::desc::tx::{cmd, status as txs, CSO};
use e1000_spec::regs::{rctl, tctl};
use e1000_spec::stats as st;

use super::*;

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
    h.deliver(&eth_frame(MAC, 64, 0));
    assert_eq!(h.dev.errors().rx_ring_invalid, 1);
    h.w(RDBAL, RX_RING as u32);
    h.w(RDLEN, 128);
    h.w(RDH, 9);
    h.rx();
    assert_eq!(h.dev.errors().rx_index_out_of_range, 1);
    assert_eq!(h.net.receive_queue.len(), 1, "frame still waits");
}

#[test]
fn hostile_transmit_descriptors_are_dropped_and_counted() {
    let mut h = Harness::new(false);
    h.setup_tx(8);
    let good = eth_frame(PEER, 64, 1);
    h.put(TX_BUF, &good);
    // Buffer outside guest memory, then one whose end overflows u64.
    h.put_tx(0, legacy(1 << 40, 64, cmd::EOP | cmd::RS));
    h.put_tx(1, legacy(u64::MAX - 3, 64, cmd::EOP | cmd::RS));
    // Longer than the backend slot (2048).
    h.put_tx(2, data_desc(TX_BUF, 3000, cmd::EOP, 0));
    // TSO with a header longer than the frame, then with MSS 0.
    h.put_tx(3, tso_context(0, 200, 100));
    h.put_tx(4, data_desc(TX_BUF, 64, cmd::TSE | cmd::EOP, popts::TXSM));
    h.put_tx(5, tso_context(0, 54, 0));
    h.put_tx(6, data_desc(TX_BUF, 64, cmd::TSE | cmd::EOP, popts::TXSM));
    // Checksum offsets past the frame.
    h.put_tx(7, legacy(TX_BUF, 64, cmd::EOP | cmd::IC));
    let mut d = legacy(TX_BUF, 64, cmd::EOP | cmd::IC);
    d[CSO] = 200;
    h.put_tx(7, d);
    h.w(TDT, 0); // nothing
    h.write_only(TDT, 7);
    h.tx();
    h.put_tx(7, d);
    h.w(TDT, 0);
    let errors = h.dev.errors().clone();
    assert_eq!(errors.tx_buffer_dma_errors, 2);
    assert_eq!(errors.tx_frame_exceeds_slot, 1);
    assert_eq!(errors.tx_tso_invalid, 2);
    assert_eq!(errors.tx_checksum_offsets_invalid, 1);
    assert_eq!(h.tx_status(0), txs::DD, "DD written back despite the error");
    assert_eq!(h.tx_status(1), txs::DD);
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
    assert_eq!(h.tx_status(6), txs::DD);
    // A chain longer than 64 KiB: 5 x 16000 bytes.
    h.w(TDLEN, 16 * desc::SIZE as u32);
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

/// A chain of more data descriptors than a packet may span is consumed and
/// dropped when it reaches the limit, so no walk reads more than that many
/// descriptors of one unfinished chain; the frame after it goes out.
#[test]
fn a_chain_longer_than_a_packet_may_span_is_dropped() {
    use crate::tx::MAX_PACKET_DESCRIPTORS as LIMIT;
    let mut h = Harness::new(false);
    h.setup_tx(1024);
    for i in 0..LIMIT {
        let command = if i == LIMIT - 1 { cmd::RS } else { 0 };
        h.put_tx(i, legacy(TX_BUF, 60, command));
    }
    // The guest publishes the chain a little at a time: each walk reads it
    // again from its start, until it is too long.
    for tail in [100, 200, LIMIT - 1] {
        h.w(TDT, tail);
        assert_eq!(h.r(TDH), 0, "an unfinished chain waits (tail {tail})");
        assert_eq!(h.dev.errors().tx_chain_too_long, 0);
    }
    h.put_tx_frame(LIMIT, TX_BUF + 4096, &eth_frame(MAC, 60, 7), cmd::EOP);
    h.w(TDT, LIMIT + 1);
    assert_eq!(h.dev.errors().tx_chain_too_long, 1);
    assert_eq!(h.tx_status(LIMIT - 1), txs::DD, "consumed, reported");
    assert_eq!(h.r(TDH), LIMIT + 1);
    let sent = h.sent();
    assert_eq!(sent, vec![eth_frame(MAC, 60, 7)], "only the frame after it");
    // Context descriptors inside an open packet count too: one data
    // descriptor followed by 300 contexts is dropped at the 256th.
    h.put_tx(LIMIT + 1, legacy(TX_BUF, 60, 0));
    for i in LIMIT + 2..LIMIT + 302 {
        h.put_tx(i, context_desc(0, 0, 0, 0, 0, 0, 0, cmd::DEXT, 0, 0));
    }
    h.w(TDT, LIMIT + 302);
    assert_eq!(h.dev.errors().tx_chain_too_long, 2);
    assert_eq!(h.r(TDH), LIMIT + 302, "the contexts after it consumed");
    assert!(h.sent().is_empty());
}

#[test]
fn hostile_receive_descriptors_are_counted() {
    let mut h = Harness::new(false);
    h.setup_rx(8, 0);
    // Descriptor 0 points outside memory, descriptor 1 is null.
    h.put_rx_buffer(0, 1 << 40);
    h.put_rx_buffer(1, 0);
    h.w(RDT, 7);
    h.net.push_rx(&eth_frame(MAC, 64, 0));
    h.net.push_rx(&eth_frame(MAC, 64, 1));
    h.rx();
    assert_eq!(h.dev.errors().rx_buffer_dma_errors, 1);
    assert_eq!(h.rx_done(0).errors, rxe::RXE);
    assert_eq!(h.dev.errors().rx_null_descriptors, 1);
    assert_eq!(h.rx_done(1).status, rxs::DD, "skipped, no EOP");
    assert_eq!(h.rx_done(2).status & rxs::EOP, rxs::EOP);
    assert_eq!(h.r(RDH), 3);
    // A 2000-byte frame cannot fit a ring of 8 x 256-byte buffers.
    h.w(RCTL, rctl::EN | rctl::SECRC | rctl::LPE | rctl::bsize::B256);
    h.net.push_rx(&eth_frame(MAC, 2000, 0));
    h.net.push_rx(&MAC[..5]);
    h.rx();
    assert_eq!(h.dev.errors().rx_frame_exceeds_ring, 1);
    assert_eq!(h.dev.errors().rx_runt_drops, 1);
    assert_eq!(h.dev.statistics().peek(st::MPC), 1);
    // Receiver disabled: frames are dropped, not left to pile up.
    h.w(RCTL, 0);
    h.deliver(&eth_frame(MAC, 64, 0));
    assert_eq!(h.dev.errors().rx_disabled_drops, 1);
    assert!(h.net.receive_queue.is_empty());
}
