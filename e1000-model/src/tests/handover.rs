//! The offloaded data path: a device in CSB mode hands its rings to an
//! [`OffloadedRings`] walker, which carries on where the device stopped, and
//! takes them back with nothing lost, repeated or miscounted; a hostile
//! hand-over is refused.

use e1000_spec::csb::field;
use e1000_spec::regs::{icr, IMS, RDT, TDH, TDT};
use e1000_spec::stats::{GPRC, GPTC};

use super::*;
use crate::offload::{access_keeps_offload, Handover, HandoverError, OffloadedRings};

/// A device with TX and RX rings of 16 and the CSB on, frames flowing.
fn flowing() -> Harness {
    let mut h = Harness::csb();
    h.setup_tx(16);
    h.setup_rx(16, 0);
    h.w(IMS, icr::TXDW | icr::RXT0);
    h.map_csb();
    h
}

#[test]
fn rings_move_to_the_walker_and_back_without_loss_or_repeat() {
    let mut h = flowing();
    // The device sends 3 frames and receives 2 itself.
    h.queue_tx(0, 3, 16);
    h.csb_set(field::GUEST_TDT, 3);
    assert_eq!(h.tx().frames, 3);
    h.csb_set(field::GUEST_RDT, 15);
    assert_eq!(h.deliver(&eth_frame(MAC, 60, 1)).frames, 1);
    assert_eq!(h.deliver(&eth_frame(MAC, 60, 2)).frames, 1);
    let sent_before: Vec<_> = h.sent();
    assert_eq!(sent_before.len(), 3);

    // Hand over: the walker continues from TDH 3 and RDH 2.
    let handover = h.dev.handover(&h.mem).expect("CSB active");
    let json = serde_json::to_string(&handover).unwrap();
    let handover: Handover = serde_json::from_str(&json).unwrap();
    let mut walker = OffloadedRings::new(&handover, &h.mem).unwrap();
    let mut net = QueueBackend::new(2048, 4096);
    h.queue_tx(3, 4, 16);
    h.csb_set(field::GUEST_TDT, 7);
    let (out, causes) = walker.transmit(&h.mem, &mut net);
    assert_eq!(out.frames, 4, "frames 3..7, none before");
    assert_eq!(causes, 0, "the guest did not ask for an interrupt");
    assert_eq!(net.transmitted.len(), 4);
    assert_eq!(
        net.transmitted[0][14],
        14 + 3,
        "the walker starts at descriptor 3"
    );
    assert_eq!(h.csb_get(field::HOST_TDH), 7);
    net.push_rx(&eth_frame(MAC, 60, 3));
    h.csb_set(field::GUEST_NEED_RXKICK, 1);
    let (rx, causes) = walker.receive(&h.mem, &mut net);
    assert_eq!(rx.frames, 1);
    assert_eq!(
        causes & icr::RXT0,
        icr::RXT0,
        "the guest asked for an RX interrupt"
    );
    assert_eq!(h.csb_get(field::HOST_RDH), 3);
    assert_eq!(
        h.rx_data(2, 60),
        eth_frame(MAC, 60, 3),
        "into the next buffer"
    );
    assert_eq!(
        h.rising(),
        0,
        "the walker raises nothing itself: the VMM does"
    );

    // Hand back: the device carries on at TDH 7 and RDH 3, with the counts,
    // and tells the guest the rings are its own again.
    h.dev.set_offloaded_flag(&h.mem, true);
    assert_eq!(h.csb_get(field::HOST_OFFLOADED), 1);
    let back = walker.hand_back();
    h.dev.take_back(&back, &h.mem);
    assert_eq!(h.csb_get(field::HOST_OFFLOADED), 0);
    assert_eq!(h.r(TDH), 7);
    h.queue_tx(7, 1, 16);
    h.csb_set(field::GUEST_TDT, 8);
    assert_eq!(h.tx().frames, 1);
    let after = h.sent();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0][14], 14 + 7, "no frame repeated");
    assert_eq!(h.deliver(&eth_frame(MAC, 60, 4)).frames, 1);
    assert_eq!(h.rx_data(3, 60), eth_frame(MAC, 60, 4));
    assert_eq!(
        h.r(GPTC),
        3 + 4 + 1,
        "statistics counted by the walker are merged"
    );
    assert_eq!(h.r(GPRC), 2 + 1 + 1);
}

#[test]
fn a_walker_that_disappears_leaves_the_heads_in_the_csb() {
    let mut h = flowing();
    let handover = h.dev.handover(&h.mem).unwrap();
    let mut walker = OffloadedRings::new(&handover, &h.mem).unwrap();
    let mut net = QueueBackend::new(2048, 4096);
    h.queue_tx(0, 5, 16);
    h.csb_set(field::GUEST_TDT, 5);
    assert_eq!(walker.transmit(&h.mem, &mut net).0.frames, 5);
    drop(walker);
    h.dev.set_offloaded_flag(&h.mem, true);
    h.dev.take_back_from_csb(&h.mem);
    assert_eq!(h.csb_get(field::HOST_OFFLOADED), 0);
    assert_eq!(h.r(TDH), 5);
    h.queue_tx(5, 1, 16);
    h.csb_set(field::GUEST_TDT, 6);
    let sent = {
        h.tx();
        h.sent()
    };
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0][14], 14 + 5);
}

#[test]
fn no_handover_without_an_active_csb() {
    let mut h = Harness::csb();
    h.setup_tx(16);
    assert!(h.dev.handover(&h.mem).is_none(), "CSB not mapped");
    h.csb_set(field::GUEST_CSB_ON, 0);
    h.w(CSBAH, 0);
    h.w(CSBAL, CSB as u32);
    assert!(h.dev.handover(&h.mem).is_none(), "guest_csb_on clear");
}

#[test]
fn hostile_handovers_are_refused() {
    let mut h = flowing();
    let good = h.dev.handover(&h.mem).unwrap();
    let mut bad = good.clone();
    bad.csb_address = MEM_SIZE as u64 - 64;
    assert!(matches!(
        OffloadedRings::new(&bad, &h.mem),
        Err(HandoverError::CsbAddress(_))
    ));
    bad.csb_address = CSB + 4;
    assert!(OffloadedRings::new(&bad, &h.mem).is_err());
    let mut bad = good.clone();
    bad.registers.push((e1000_spec::regs::ICR, 1));
    assert_eq!(
        OffloadedRings::new(&bad, &h.mem).unwrap_err(),
        HandoverError::Register(e1000_spec::regs::ICR)
    );
    let mut bad = good.clone();
    bad.registers = vec![(TDT, 0); 10_000];
    assert!(matches!(
        OffloadedRings::new(&bad, &h.mem),
        Err(HandoverError::TooManyRegisters(_))
    ));
    // Registers with hostile values are accepted and checked at use: a ring
    // outside memory and indices out of range are counted, nothing moves.
    let mut bad = good.clone();
    bad.registers
        .retain(|&(offset, _)| offset != e1000_spec::regs::TDBAL);
    bad.registers
        .push((e1000_spec::regs::TDBAL, (MEM_SIZE - 16) as u32));
    bad.registers.push((RDT, u32::MAX));
    let mut walker = OffloadedRings::new(&bad, &h.mem).unwrap();
    let mut net = QueueBackend::new(2048, 4096);
    h.queue_tx(0, 2, 16);
    h.csb_set(field::GUEST_TDT, 2);
    assert_eq!(walker.transmit(&h.mem, &mut net).0.frames, 0);
    assert_eq!(walker.errors().tx_ring_invalid, 1);
    net.push_rx(&eth_frame(MAC, 60, 1));
    h.csb_set(field::GUEST_RDT, 99);
    assert_eq!(walker.receive(&h.mem, &mut net).0.frames, 0);
}

#[test]
fn only_interrupt_and_kick_registers_keep_the_data_path_offloaded() {
    use e1000_spec::regs::*;
    for (offset, write) in [
        (ICR, false),
        (IMS, true),
        (IMC, true),
        (TDT, true),
        (STATUS, false),
    ] {
        assert!(access_keeps_offload(offset, write), "{offset:#x}");
    }
    for (offset, write) in [
        (TDH, false),
        (RCTL, true),
        (TDBAL, true),
        (CSBAL, true),
        (CTRL, true),
        (GPRC, false),
        (ra_low(0), true),
        (MTA, true),
    ] {
        assert!(!access_keeps_offload(offset, write), "{offset:#x}");
    }
}

#[test]
fn registers_left_out_of_a_handover_are_zero_not_their_reset_values() {
    let mut h = flowing();
    // VET and CTRL have non-zero reset values; the guest cleared them.
    h.w(e1000_spec::regs::VET, 0);
    h.w(e1000_spec::regs::CTRL, 0);
    let handover = h.dev.handover(&h.mem).unwrap();
    assert!(handover
        .registers
        .iter()
        .all(|&(offset, _)| offset != e1000_spec::regs::VET));
    let walker = OffloadedRings::new(&handover, &h.mem).unwrap();
    assert_eq!(walker.register(e1000_spec::regs::VET), 0);
    assert_eq!(walker.register(e1000_spec::regs::CTRL), 0);
    assert_eq!(walker.register(e1000_spec::regs::TDLEN), 16 * 16);
}
