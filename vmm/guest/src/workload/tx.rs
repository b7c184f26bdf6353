//! `tx`: sends `count` test frames (or for `duration`) of `size` bytes to
//! `dst`, at `rate` if given, `burst` frames per loop iteration; then waits
//! for the device to complete them and reports.

use super::{print_result, rate, wait_for_tx, wait_until, Env, Progress};
use crate::args::TxMode;
use crate::counters::COUNTERS;
use crate::irq::{self, with_driver};
use crate::tsc::{self, Deadline};
use crate::{EXIT_OK, EXIT_WORKLOAD};
use testframe::{FrameTemplate, Kind};

/// Frames sent when neither `count=` nor `duration=` is given.
pub const DEFAULT_COUNT: u64 = 1000;
/// How long to wait for the last frames to complete.
const DRAIN_MS: u64 = 1000;

/// Runs the workload; returns the exit code.
pub fn run(env: &Env) -> u8 {
    let config = env.config;
    let count = match (config.count, config.duration_ms) {
        (Some(n), _) => n,
        (None, Some(_)) => u64::MAX,
        (None, None) => DEFAULT_COUNT,
    };
    let Some(template) = FrameTemplate::new(config.dst, env.mac, Kind::Data, config.size) else {
        return EXIT_WORKLOAD;
    };
    let len = template.len() as u16;
    with_driver(|d| {
        for i in 0..d.tx.size() {
            template.write(d.tx.buffer(i), 0, 0);
        }
    });
    let csb = config.txmode == TxMode::Csb;
    let deadline = env.deadline();
    let ticks_per_frame = config.rate.map(|r| (tsc::khz() * 1000 / r).max(1));
    let baseline = COUNTERS.snapshot();
    let mut progress = Progress::new("tx", config.quiet);
    let start = tsc::now();
    let mut sent: u64 = 0;
    let mut ring_full_waits: u64 = 0;
    while sent < count && !deadline.passed() {
        let mut budget = (count - sent).min(config.burst as u64);
        if let Some(tpf) = ticks_per_frame {
            let due = start + sent * tpf;
            wait_until(due);
            budget = budget.min((tsc::now() - start) / tpf + 1 - sent);
        }
        let token = irq::idle_token();
        let queued = with_driver(|d| {
            d.service_tx();
            let free = d.tx.free() as u64;
            // With the CSB, publish whole bursts: wait for room rather than
            // trickle out the few descriptors each completion frees.
            if csb && free < budget {
                return 0;
            }
            let n = budget.min(free);
            for i in 0..n {
                template.stamp(d.tx.next_buffer(), sent + i, tsc::now_ns());
                d.queue_frame(len);
            }
            d.flush_tx();
            n
        });
        sent += queued;
        if queued == 0 {
            ring_full_waits += 1;
            wait_for_tx(token, budget as u32);
        }
        progress.tick(sent);
    }
    // Wait until every frame is completed (in combine mode the last batch is
    // published by the TX interrupt, or by the watchdog).
    let drain_start = tsc::now();
    let drain = Deadline::after_ms(DRAIN_MS);
    let end = loop {
        let token = irq::idle_token();
        let in_flight = with_driver(|d| {
            d.service_tx();
            d.tx.in_flight()
        });
        if in_flight == 0 {
            break tsc::now();
        }
        if drain.passed() {
            break drain_start;
        }
        wait_for_tx(token, u32::MAX);
    };
    let not_completed = with_driver(|d| d.tx.in_flight()) as u64;
    let frames = sent - not_completed;
    let ticks = end - start;
    let ok = not_completed == 0 && frames > 0;
    print_result(env, &baseline, |o| {
        o.u64("frames", frames)
            .u64("bytes", frames * len as u64)
            .f64("seconds", tsc::ticks_to_secs(ticks), 6)
            .f64("pps", rate(frames, ticks), 1)
            .u64("size", len as u64)
            .u64("ring_full_waits", ring_full_waits)
            .object("errors", |e| {
                e.u64("not_completed", not_completed);
            });
    });
    if ok {
        EXIT_OK
    } else {
        EXIT_WORKLOAD
    }
}
