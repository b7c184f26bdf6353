//! Interrupt moderation: without it every completion interrupts; with it
//! ITR spaces the assertions and TIDV/TADV and RDTR/RADV coalesce transmit
//! and receive interrupts (FPD flushes the receive timer).

use e1000_spec::desc::tx::cmd;
use e1000_spec::regs::{icr, rdtr, ICR, IMS, ITR, RADV, RDTR, TADV, TIDV};

use super::*;

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
        h.deliver(&eth_frame(MAC, 64, 0));
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
