//! The CSB paravirtual extension: mapping and validating the block, TX
//! and RX by the guest's indices with interrupts only on request, the
//! worker's need-kick re-check, bounded batches, hostile CSB values; and
//! PCI bus mastering, without which the device does no DMA (CSB included).

use e1000_spec::csb;
use e1000_spec::desc::rx::status as rxs;
use e1000_spec::desc::tx::{cmd, status as txs};
use e1000_spec::regs::{ctrl, icr, CTRL, ICR, IMS};
use e1000_spec::{eeprom, pci};

use super::*;
use crate::{CSB_RX_BATCH, CSB_TX_BATCH};

#[test]
fn csb_registers_map_validate_and_turn_off() {
    let mut h = Harness::csb();
    assert_eq!(h.dev.config().subsystem_id, csb::SUBSYSTEM_ID);
    assert_eq!(
        h.dev.eeprom().word(eeprom::WORD_SUBSYSTEM_ID),
        Some(csb::SUBSYSTEM_ID)
    );
    h.setup_tx(8);
    h.map_csb();
    assert_eq!(h.dev.csb_address(), Some(CSB));
    assert_eq!((h.r(CSBAL), h.r(CSBAH)), (CSB as u32, 0));
    // The host half is initialised: the worker is asleep, TX needs a kick.
    assert_eq!(h.csb_get(field::HOST_NEED_TXKICK), 1);
    assert_eq!(h.csb_get(field::HOST_NEED_RXKICK), 0);
    assert_eq!(h.csb_get(field::HOST_TDH), 0);
    assert_eq!(h.csb_get(field::HOST_RXKICK_AT), csb::NONE);
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
    assert_eq!(stock.dev.config().subsystem_id, pci::SUBSYSTEM_ID);
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
    h.csb_set(field::GUEST_TDT, 3);
    let out = h.tx();
    assert_eq!(out.frames, 3);
    assert_eq!(h.sent().len(), 3);
    assert_eq!(h.csb_get(field::HOST_TDH), 3);
    assert_eq!(h.r(TDH), 3);
    assert_eq!(
        h.tx_status(2) & txs::DD,
        txs::DD,
        "DD written back as usual"
    );
    assert_eq!(h.rising(), 0, "guest_need_txkick is 0: no interrupt");
    assert_eq!(h.dev.pending_causes(), 0);
    // A TDT write is only a kick: nothing is processed inline.
    h.queue_tx(3, 2, 16);
    h.csb_set(field::GUEST_TDT, 5);
    let effects = h.write_only(TDT, 5);
    assert!(effects.csb_kick && !effects.process_tx);
    assert!(h.sent().is_empty());
    // The guest sleeps on a full ring: TX progress interrupts it.
    h.csb_set(field::GUEST_NEED_TXKICK, 1);
    h.tx();
    assert_eq!(h.sent().len(), 2);
    assert_eq!(h.csb_get(field::HOST_TDH), 5);
    assert_eq!(h.rising(), 1);
    assert_eq!(h.r(ICR), icr::TXDW | icr::TXQE);
    // No progress, no interrupt, even with the flag set.
    h.tx();
    assert_eq!(h.rising(), 1);
}

#[test]
fn csb_rx_follows_guest_rdt_and_publishes_host_rdh() {
    let mut h = Harness::csb();
    h.setup_rx(8, 0);
    h.w(IMS, icr::RXT0 | icr::RXDMT0);
    h.map_csb();
    // Buffers are returned through guest_rdt only (RDT stays 0).
    h.csb_set(field::GUEST_RDT, 4);
    for seed in 0..6 {
        h.net.push_rx(&eth_frame(MAC, 60, seed));
    }
    let out = h.rx();
    assert_eq!(out.frames, 4);
    assert!(out.waiting_for_buffers);
    assert_eq!(h.csb_get(field::HOST_RDH), 4);
    assert_eq!(h.rx_done(3).status & rxs::DD, rxs::DD, "DD");
    assert_eq!(h.rising(), 0, "guest polls: no interrupt");
    // The worker wants to sleep with frames waiting: it asks for an RX kick.
    assert!(h.dev.csb_prepare_sleep(&h.mem, true));
    assert_eq!(h.csb_get(field::HOST_NEED_RXKICK), 1);
    assert_eq!(h.csb_get(field::HOST_NEED_TXKICK), 1);
    // The guest returns buffers and, seeing the flag, writes RDT: a kick.
    h.csb_set(field::GUEST_RDT, 7);
    let effects = h.write_only(RDT, 7);
    assert!(effects.csb_kick && !effects.process_rx);
    h.dev.csb_enter_polling(&h.mem);
    assert_eq!(h.csb_get(field::HOST_NEED_RXKICK), 0);
    assert_eq!(h.csb_get(field::HOST_NEED_TXKICK), 0);
    // The guest went idle waiting for frames: now delivery interrupts.
    h.csb_set(field::GUEST_NEED_RXKICK, 1);
    let out = h.rx();
    assert_eq!(out.frames, 2);
    assert_eq!(h.csb_get(field::HOST_RDH), 6);
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
    assert_eq!(h.csb_get(field::HOST_NEED_TXKICK), 0);
    // Nothing new: the worker may sleep, the flag stays set.
    assert!(h.dev.csb_prepare_sleep(&h.mem, false));
    assert_eq!(h.csb_get(field::HOST_NEED_TXKICK), 1);
    h.dev.csb_enter_polling(&h.mem);
    // The guest published while the worker was deciding (it saw the flag
    // at 0 and did not kick): the re-check finds it, the flag is cleared.
    h.queue_tx(0, 2, 16);
    h.csb_set(field::GUEST_TDT, 2);
    assert!(!h.dev.csb_prepare_sleep(&h.mem, false));
    assert_eq!(h.csb_get(field::HOST_NEED_TXKICK), 0);
    assert_eq!(h.tx().frames, 2);
    assert!(h.dev.csb_prepare_sleep(&h.mem, false));
    // With TX disabled a stale guest_tdt does not keep the worker awake.
    h.w(TCTL, 0);
    h.csb_set(field::GUEST_TDT, 9);
    assert!(h.dev.csb_prepare_sleep(&h.mem, false));
}

#[test]
fn csb_tx_batches_are_bounded() {
    let mut h = Harness::csb();
    h.net = QueueBackend::new(2048, 1 << 16);
    h.setup_tx(1024);
    h.map_csb();
    h.queue_tx(0, 1000, 1024);
    h.csb_set(field::GUEST_TDT, 1000);
    let mut calls = 0;
    let mut sent = 0;
    while sent < 1000 {
        let out = h.tx();
        assert!(out.descriptors <= CSB_TX_BATCH);
        sent += out.frames;
        calls += 1;
        assert!(calls < 100);
    }
    assert_eq!(calls, 1000u32.div_ceil(CSB_TX_BATCH));
    assert_eq!(h.csb_get(field::HOST_TDH), 1000);
    // A chain as long as a packet may span goes out whole, across the
    // ring's end.
    let first = 1000u32;
    let chain = crate::tx::MAX_PACKET_DESCRIPTORS;
    for k in 0..chain {
        let i = (first + k) % 1024;
        let last = k + 1 == chain;
        let command = if last { cmd::EOP | cmd::RS } else { 0 };
        h.put_tx(i, legacy(TX_BUF + u64::from(k) * 2, 2, command));
    }
    h.sent();
    let tail = (first + chain) % 1024;
    h.csb_set(field::GUEST_TDT, tail);
    let out = h.tx();
    assert_eq!(out.frames, 1);
    assert_eq!(out.descriptors, chain);
    assert_eq!(h.sent()[0].len(), 2 * chain as usize);
    // RX is bounded the same way (a ring larger than a batch: 2 KiB
    // buffers packed from RX_BUF).
    let rx_ring = 2 * CSB_RX_BATCH;
    h.setup_rx(rx_ring, 0);
    for i in 0..rx_ring {
        h.put_rx_buffer(i, RX_BUF + u64::from(i) * 2048);
    }
    h.csb_set(field::GUEST_RDT, rx_ring - 1);
    let frames = CSB_RX_BATCH + 100;
    for seed in 0..frames {
        h.net.push_rx(&eth_frame(MAC, 60, seed as u8));
    }
    let out = h.rx();
    assert_eq!((out.frames, out.more), (CSB_RX_BATCH, true));
    let out = h.rx();
    assert_eq!((out.frames, out.more), (frames - CSB_RX_BATCH, false));
    assert_eq!(h.csb_get(field::HOST_RDH), frames);
}

#[test]
fn hostile_csb_values_are_counted_and_ignored() {
    let mut h = Harness::csb();
    h.setup_tx(16);
    h.setup_rx(8, 0);
    h.w(IMS, icr::TXDW | icr::RXT0);
    h.map_csb();
    h.queue_tx(0, 4, 16);
    h.csb_set(field::GUEST_TDT, 4);
    assert_eq!(h.tx().frames, 4);
    h.sent();
    // Out-of-range indices: counted (once per value), the last valid one stays.
    h.csb_set(field::GUEST_TDT, 16);
    h.csb_set(field::GUEST_RDT, 0xFFFF_FFFF);
    h.net.push_rx(&eth_frame(MAC, 60, 1));
    for _ in 0..3 {
        assert_eq!(h.tx().frames, 0);
        assert_eq!(h.rx().frames, 0);
    }
    assert_eq!(h.dev.errors().csb_index_invalid, 2);
    assert!(h.sent().is_empty(), "nothing replayed");
    assert_eq!(h.r(TDT), 4);
    // Flags with any non-zero value count as set; csb_on flipping switches
    // between the CSB and the registers without replaying or losing frames.
    h.queue_tx(4, 2, 16);
    h.csb_set(field::GUEST_TDT, 6);
    h.csb_set(field::GUEST_CSB_ON, 0);
    assert_eq!(h.tx().frames, 0, "registers: TDT is 4");
    h.csb_set(field::GUEST_CSB_ON, 0xFFFF_FFFF);
    h.csb_set(field::GUEST_NEED_TXKICK, 0x8000_0000);
    assert_eq!(h.tx().frames, 2);
    assert_eq!(h.rising(), 1, "need_txkick 0x80000000 is set");
    assert_eq!(h.dev.errors().csb_guest_on_changes, 2);
    assert_eq!(h.sent().len(), 2);
    // Scribbling over the host half changes nothing the device relies on.
    for field in [field::HOST_TDH, field::HOST_NEED_TXKICK] {
        h.csb_set(field, 0xDEAD_BEEF);
    }
    h.queue_tx(6, 1, 16);
    h.csb_set(field::GUEST_TDT, 7);
    assert_eq!(h.tx().frames, 1);
    assert_eq!(h.csb_get(field::HOST_TDH), 7);
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
        h.csb_get(field::HOST_NEED_TXKICK),
        0,
        "CSB not written without bus mastering"
    );
    h.queue_tx(0, 2, 16);
    h.csb_set(field::GUEST_TDT, 2);
    h.csb_set(field::GUEST_RDT, 4);
    h.net.push_rx(&eth_frame(MAC, 60, 1));
    assert_eq!(h.tx().frames, 0);
    assert_eq!(h.rx().frames, 0);
    assert_eq!(h.tx_status(0), 0);
    assert_eq!(h.net.receive_queue.len(), 1, "the frame waits");
    assert_eq!(h.dev.errors().dma_refused_bus_master_off, 1);
    h.dev.set_bus_master(true, &h.mem);
    assert_eq!(h.csb_get(field::HOST_NEED_TXKICK), 1);
    assert_eq!(h.tx().frames, 2);
    assert_eq!(h.rx().frames, 1);
}
