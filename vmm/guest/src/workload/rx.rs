//! `rx`: receives test frames and verifies each one (checksum, length, kind)
//! and the stream (lost, reordered, duplicate by sequence number). Stops
//! when `count` distinct frames arrived, at the deadline, or after
//! [`IDLE_STOP_MS`] of silence once traffic began.

use super::{print_result, rate, wait_for_rx, Env, Progress, IDLE_STOP_MS};
use crate::cell::TakeOnce;
use crate::counters::COUNTERS;
use crate::e1000::rx::RxCompletion;
use crate::irq::with_driver;
use crate::stats::SeqTracker;
use crate::tsc::{self, Deadline};
use crate::{EXIT_OK, EXIT_WORKLOAD};
use e1000_spec::desc::rx::status as rx_status;
use testframe::{FrameError, Kind};

/// Sequence window: 2^20 numbers (128 KiB of bitmap).
static SEQ_WINDOW: TakeOnce<[u64; 1 << 14]> = TakeOnce::new([0; 1 << 14]);
/// Frames handled per pass before the loop checks its clock.
const RX_BUDGET: u32 = 256;

/// Receive-side counts.
#[derive(Default)]
struct RxCounts {
    frames: u64,
    bytes: u64,
    foreign: u64,
    bad_checksum: u64,
    truncated: u64,
    length_mismatch: u64,
    bad_kind: u64,
    unexpected_kind: u64,
    desc_errors: u64,
    no_eop: u64,
    first: u64,
    last: u64,
}

impl RxCounts {
    fn corrupt(&self) -> u64 {
        self.bad_checksum + self.truncated + self.length_mismatch + self.bad_kind
    }

    fn account(&mut self, tracker: &mut SeqTracker, completion: &RxCompletion, frame: &[u8]) {
        if completion.status & rx_status::EOP == 0 {
            self.no_eop += 1;
            return;
        }
        if completion.errors != 0 {
            self.desc_errors += 1;
            return;
        }
        match testframe::parse(frame) {
            Ok(header) if header.kind == Kind::Data => {
                let now = tsc::now();
                if self.frames == 0 {
                    self.first = now;
                }
                self.last = now;
                self.frames += 1;
                self.bytes += frame.len() as u64;
                tracker.record(header.seq);
            }
            Ok(_) => self.unexpected_kind += 1,
            Err(FrameError::Foreign) => self.foreign += 1,
            Err(FrameError::BadChecksum) => self.bad_checksum += 1,
            Err(FrameError::Truncated) => self.truncated += 1,
            Err(FrameError::LengthMismatch) => self.length_mismatch += 1,
            Err(FrameError::BadKind) => self.bad_kind += 1,
        }
    }
}

/// Runs the workload; returns the exit code.
pub fn run(env: &Env) -> u8 {
    let config = env.config;
    let window = SEQ_WINDOW.take().expect("rx runs once");
    let mut tracker = SeqTracker::new(window);
    let mut counts = RxCounts::default();
    let deadline = env.deadline();
    let baseline = COUNTERS.snapshot();
    let mut progress = Progress::new("rx", config.quiet);
    let done = |tracker: &SeqTracker| config.count.is_some_and(|n| tracker.unique >= n);
    loop {
        let handled = with_driver(|d| {
            let mut n = 0;
            while n < RX_BUDGET {
                let Some(completion) = d.rx.poll() else { break };
                counts.account(&mut tracker, &completion, d.rx.frame(&completion));
                d.rx_consumed();
                n += 1;
            }
            n
        });
        progress.tick(counts.frames);
        if done(&tracker) || deadline.passed() {
            break;
        }
        if handled == 0 {
            let wait = if counts.frames == 0 {
                deadline
            } else {
                let silence = tsc::now().saturating_sub(counts.last);
                let left = tsc::ms_to_ticks(config.idle_ms.unwrap_or(IDLE_STOP_MS))
                    .saturating_sub(silence);
                if left == 0 {
                    break;
                }
                Deadline::after_ticks(left.min(deadline.tsc().saturating_sub(tsc::now())))
            };
            wait_for_rx(wait);
        }
    }
    with_driver(|d| d.rx_return_all());
    let ticks = counts.last - counts.first;
    let lost = tracker.lost(config.count);
    let ok = counts.frames > 0 && counts.corrupt() == 0;
    print_result(env, &baseline, |o| {
        o.u64("frames", counts.frames)
            .u64("bytes", counts.bytes)
            .f64("seconds", tsc::ticks_to_secs(ticks), 6)
            .f64("pps", rate(counts.frames.saturating_sub(1), ticks), 1)
            .u64("unique", tracker.unique)
            .u64("expected", tracker.expected(config.count))
            .u64("lost", lost)
            .u64("reordered", tracker.reordered)
            .u64("corrupt", counts.corrupt())
            .u64("duplicates", tracker.duplicates)
            .object("errors", |e| {
                e.u64("foreign", counts.foreign)
                    .u64("bad_checksum", counts.bad_checksum)
                    .u64("truncated", counts.truncated)
                    .u64("length_mismatch", counts.length_mismatch)
                    .u64("bad_kind", counts.bad_kind)
                    .u64("unexpected_kind", counts.unexpected_kind)
                    .u64("desc_errors", counts.desc_errors)
                    .u64("no_eop", counts.no_eop)
                    .u64("too_old", tracker.too_old);
            });
    });
    if ok {
        EXIT_OK
    } else {
        EXIT_WORKLOAD
    }
}
