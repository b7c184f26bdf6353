//! Transmit offloads: TCP/UDP and IP checksum insertion through a context
//! and data descriptors, the legacy descriptor's checksum insertion, TCP
//! segmentation (TSO), and a TSO frame resumed after the backend was full.

use e1000_spec::desc::context::tucmd;
use e1000_spec::desc::data::popts;
use e1000_spec::desc::tx::{cmd, status as txs, CSO, CSS};
use e1000_spec::stats as st;

use super::reference::{ipv4_frame, ipv4_header_ok, l4_checksum_ok, pseudo_seed, reference_sum};
use super::*;

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
        h.put(TX_BUF, &frame[..80]);
        h.put(TX_BUF + 0x1000, &frame[80..]);
        let command = if tcp {
            tucmd::TCP | tucmd::IP
        } else {
            tucmd::IP
        };
        h.put_tx(0, ipv4_context(tucso as u8, 0, command, 0, 0));
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
        assert_eq!(h.tx_status(2), txs::DD);
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
    h.put(TX_BUF, &frame);
    let mut d = legacy(TX_BUF, frame.len() as u16, cmd::EOP | cmd::IC);
    d[CSO] = 40;
    d[CSS] = 34;
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
    h.put(TX_BUF, &frame[..54]);
    h.put(TX_BUF + 0x1000, &frame[54..2054]);
    h.put(TX_BUF + 0x2000, &frame[2054..]);
    h.put_tx(0, tso_context(payload as u32, hdrlen, mss));
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
    assert_eq!(h.tx_status(3), txs::DD);
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
    h.put(TX_BUF, &frame);
    h.put_tx(0, tso_context(3000, 54, 1000));
    h.put_tx(
        1,
        data_desc(
            TX_BUF,
            frame.len() as u32,
            cmd::TSE | cmd::EOP | cmd::RS,
            popts::TXSM | popts::IXSM,
        ),
    );
    let plain = eth_frame(PEER, 80, 4);
    h.put_tx_frame(2, TX_BUF + 0x8000, &plain, cmd::EOP | cmd::RS);
    h.write_only(TDT, 3);
    let outcome = h.tx();
    assert!(outcome.backend_full);
    assert_eq!(outcome.frames, 0, "the TSO frame is not complete");
    assert_eq!(h.r(TDH), 1, "context consumed, data waits");
    assert_eq!(h.tx_status(1), 0);
    let mut segments = h.sent();
    assert_eq!(segments.len(), 2, "two segments fit");
    let outcome = h.tx();
    assert_eq!(outcome.frames, 2, "third segment and the plain frame");
    assert!(!outcome.backend_full);
    assert_eq!(h.r(TDH), 3);
    assert_eq!(h.tx_status(1), txs::DD);
    assert_eq!(h.tx_status(2), txs::DD);
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
