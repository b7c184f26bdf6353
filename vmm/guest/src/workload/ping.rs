//! `ping`: after a warm-up exchange, sends `count` pings (one at a time, at
//! `rate` per second if given) and waits for each pong; reports round-trip
//! percentiles from the TSC. A ping unanswered after [`PING_TIMEOUT_MS`] is
//! lost. While the link is down (the switch daemon went away) no ping is
//! sent: each waits up to its timeout for the link and counts as
//! `link_down` if it stays down.
//!
//! The warm-up (sequence numbers from [`WARMUP_SEQ_BASE`], not counted)
//! keeps first-packet effects out of the statistics: address learning in a
//! switch, first touches of pages in a VMM, and under QEMU the second during
//! which its e1000 refuses to receive after RCTL is written.

use super::{print_result, wait_for_rx, wait_until, Env};
use crate::cell::TakeOnce;
use crate::counters::COUNTERS;
use crate::irq::with_driver;
use crate::println;
use crate::stats::percentiles;
use crate::tsc::{self, Deadline};
use crate::{EXIT_OK, EXIT_WORKLOAD};
use testframe::{FrameTemplate, Kind};

/// Pings sent when `count=` is not given.
pub const DEFAULT_COUNT: u64 = 10;
/// A ping unanswered for this long is lost.
pub const PING_TIMEOUT_MS: u64 = 1000;
/// How often a ping waiting for the link looks at it again.
const LINK_POLL_MS: u64 = 20;
/// Sequence numbers of warm-up pings start here (`pong` does not count them).
pub const WARMUP_SEQ_BASE: u64 = 1 << 63;
/// Warm-up pings tried before giving up on a warm-up answer.
const WARMUP_TRIES: u64 = 3;
/// How long each warm-up ping waits.
const WARMUP_TIMEOUT_MS: u64 = 2000;
/// RTT samples kept for the percentiles (later pings still count in min,
/// max and the mean).
const MAX_SAMPLES: usize = 1 << 18;
static SAMPLES: TakeOnce<[u32; MAX_SAMPLES]> = TakeOnce::new([0; MAX_SAMPLES]);

/// The outcome of one ping.
enum Exchange {
    /// Answered after this many nanoseconds.
    Answered(u64),
    /// No answer before the timeout.
    Lost,
    /// The TX ring was full: not sent.
    NotSent,
    /// The link stayed down for the whole timeout: not sent.
    LinkDown,
}

/// Frames that were not the awaited pong.
#[derive(Default)]
struct Strays {
    /// Pongs to us with another sequence number (answers after a timeout).
    late: u64,
    /// Anything else.
    other: u64,
}

/// Sends ping `seq` and waits up to `timeout_ms` for its pong.
fn exchange(
    env: &Env,
    template: &FrameTemplate,
    seq: u64,
    timeout_ms: u64,
    strays: &mut Strays,
) -> Exchange {
    let len = template.len() as u16;
    if !with_driver(|d| d.link_up) {
        let link_wait = Deadline::after_ms(timeout_ms);
        while !with_driver(|d| d.link_up) {
            if link_wait.passed() {
                return Exchange::LinkDown;
            }
            // Frames that still arrive are stale answers: take them out.
            // Short waits: the LSC interrupt that brings the link back
            // does not end a wait for frames.
            let step = Deadline::after_ms(LINK_POLL_MS);
            let until = if step.tsc() < link_wait.tsc() {
                step
            } else {
                link_wait
            };
            if wait_for_rx(until) {
                with_driver(|d| {
                    while d.rx.poll().is_some() {
                        strays.other += 1;
                        d.rx_consumed();
                    }
                });
            }
        }
    }
    let sent_at = tsc::now();
    let queued = with_driver(|d| {
        d.service_tx();
        if d.tx.free() == 0 {
            return false;
        }
        template.write(d.tx.next_buffer(), seq, tsc::ticks_to_ns(sent_at));
        d.queue_frame(len);
        d.flush_tx();
        true
    });
    if !queued {
        return Exchange::NotSent;
    }
    let timeout = Deadline::after_ms(timeout_ms);
    loop {
        let answered = with_driver(|d| {
            while let Some(completion) = d.rx.poll() {
                let answered = match testframe::parse(d.rx.frame(&completion)) {
                    Ok(h) if h.kind == Kind::Pong && h.dst == env.mac && h.seq == seq => true,
                    Ok(h) if h.kind == Kind::Pong && h.dst == env.mac => {
                        strays.late += 1;
                        false
                    }
                    _ => {
                        strays.other += 1;
                        false
                    }
                };
                d.rx_consumed();
                if answered {
                    return true;
                }
            }
            false
        });
        if answered {
            return Exchange::Answered(tsc::ticks_to_ns(tsc::now() - sent_at));
        }
        if timeout.passed() || !wait_for_rx(timeout) {
            return Exchange::Lost;
        }
    }
}

/// Runs the workload; returns the exit code.
pub fn run(env: &Env) -> u8 {
    let config = env.config;
    let count = config.count.unwrap_or(DEFAULT_COUNT);
    let Some(template) = FrameTemplate::new(config.dst, env.mac, Kind::Ping, config.size) else {
        return EXIT_WORKLOAD;
    };
    let len = template.len() as u64;
    let samples = SAMPLES.take().expect("ping runs once");
    let deadline = env.deadline();
    let mut strays = Strays::default();

    let mut warmup_tries = 0;
    let mut warmup_rtt = None;
    while warmup_tries < WARMUP_TRIES && warmup_rtt.is_none() && !deadline.passed() {
        let seq = WARMUP_SEQ_BASE + warmup_tries;
        warmup_tries += 1;
        match exchange(env, &template, seq, WARMUP_TIMEOUT_MS, &mut strays) {
            Exchange::Answered(ns) => warmup_rtt = Some(ns),
            Exchange::Lost | Exchange::NotSent | Exchange::LinkDown => {}
        }
    }
    if !config.quiet {
        match warmup_rtt {
            Some(ns) => println!("ping: warm-up answered after {:.1} us", ns as f64 / 1000.0),
            None => println!("ping: no answer to {warmup_tries} warm-up pings"),
        }
    }
    strays = Strays::default();

    let period = config.rate.map(|r| (tsc::khz() * 1000 / r).max(1));
    let baseline = COUNTERS.snapshot();
    let start = tsc::now();
    let (mut sent, mut received, mut not_sent, mut link_down) = (0u64, 0u64, 0u64, 0u64);
    let mut kept = 0usize;
    let (mut sum_ns, mut min_ns, mut max_ns) = (0u64, u64::MAX, 0u64);
    for seq in 0..count {
        if deadline.passed() {
            break;
        }
        if let Some(period) = period {
            wait_until(start + seq * period);
        }
        match exchange(env, &template, seq, PING_TIMEOUT_MS, &mut strays) {
            Exchange::Answered(rtt) => {
                sent += 1;
                received += 1;
                sum_ns += rtt;
                min_ns = min_ns.min(rtt);
                max_ns = max_ns.max(rtt);
                if kept < MAX_SAMPLES {
                    samples[kept] = rtt.min(u32::MAX as u64) as u32;
                    kept += 1;
                }
                if !config.quiet && (seq < 10 || seq % 1000 == 0) {
                    println!("ping: seq {} rtt {:.1} us", seq, rtt as f64 / 1000.0);
                }
            }
            Exchange::Lost => {
                sent += 1;
                if !config.quiet {
                    println!("ping: seq {seq} lost");
                }
            }
            Exchange::NotSent => not_sent += 1,
            Exchange::LinkDown => {
                link_down += 1;
                if !config.quiet {
                    println!("ping: seq {seq} not sent: link down");
                }
            }
        }
    }
    let ticks = tsc::now() - start;
    with_driver(|d| d.rx_return_all());
    let p = percentiles(&mut samples[..kept]);
    let us = |ns: u64| ns as f64 / 1000.0;
    print_result(env, &baseline, |o| {
        o.u64("frames", received)
            .u64("bytes", received * len)
            .f64("seconds", tsc::ticks_to_secs(ticks), 6)
            .f64("pps", super::rate(received, ticks), 1)
            .u64("size", len)
            .u64("sent", sent)
            .u64("lost", sent - received);
        o.object("rtt_us", |r| {
            if let Some(p) = p {
                r.f64("min", us(min_ns), 1)
                    .f64("p50", us(p.p50 as u64), 1)
                    .f64("p99", us(p.p99 as u64), 1)
                    .f64("max", us(max_ns), 1)
                    .f64("mean", us(sum_ns) / received as f64, 1);
            }
        });
        match warmup_rtt {
            Some(ns) => o.f64("warmup_rtt_us", us(ns), 1),
            None => o.str("warmup_rtt_us", "none"),
        };
        o.u64("warmup_pings", warmup_tries).object("errors", |e| {
            e.u64("late", strays.late)
                .u64("other_frames", strays.other)
                .u64("tx_full", not_sent)
                .u64("link_down", link_down);
        });
    });
    if received > 0 {
        EXIT_OK
    } else {
        EXIT_WORKLOAD
    }
}
