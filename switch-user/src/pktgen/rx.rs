//! pktgen `rx`: receive in batches, verify every test frame (length,
//! checksum) and account for sequence numbers, per sender (source MAC).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use switch_port::client::{Interest, PortClient};
use testframe::FrameError;

use super::report::{RateLine, Summary};
use super::seq::SeqTracker;
use super::stop::Watch;
use super::{should_stop, Config, PktgenError};

/// How long a receiver asked to stop keeps reading the frames already
/// delivered to it (its ring holds at most a few thousand).
const DRAIN_AFTER_STOP: Duration = Duration::from_millis(50);

/// Receives until the count, the duration or the idle timeout is reached.
pub fn run(port: &mut PortClient, config: &Config) -> Result<Summary, PktgenError> {
    let mut senders: HashMap<[u8; 6], SeqTracker> = HashMap::new();
    let mut last_src = [0u8; 6];
    let mut tracker = SeqTracker::default();
    let mut summary = Summary::default();
    let mut rate_line = RateLine::new("rx", Duration::from_secs(1), config.progress);
    let total = config.count.unwrap_or(u64::MAX);
    let opened = Instant::now();
    let mut first: Option<Instant> = None;
    let mut last_frame = Instant::now();
    let (mut good, mut bytes) = (0u64, 0u64);
    let mut watch = Watch::default();
    // When a stop was asked for (a signal, or the daemon gone): the frames
    // already in the ring are still read, for at most DRAIN_AFTER_STOP.
    let mut stopping: Option<Instant> = None;
    loop {
        if stopping.is_none() && should_stop(&mut watch, port, &mut summary, good)? {
            stopping = Some(Instant::now());
        }
        let now = Instant::now();
        if good >= total
            || config
                .duration
                .is_some_and(|d| now >= first.unwrap_or(opened) + d)
            || stopping.is_some_and(|at| now.duration_since(at) >= DRAIN_AFTER_STOP)
        {
            break;
        }
        // Idle only if the ring is empty too: a receiver that was not
        // scheduled for a while finds frames waiting, and reads them.
        let idle = first.is_some() && now.duration_since(last_frame) >= config.idle_timeout;
        let (mut corrupt, mut foreign) = (0u64, 0u64);
        let n = port.recv(config.burst.max(1), |frame| match testframe::parse(frame) {
            Ok(header) => {
                if header.src != last_src {
                    let previous = std::mem::take(&mut tracker);
                    senders.insert(last_src, previous);
                    tracker = senders.remove(&header.src).unwrap_or_default();
                    last_src = header.src;
                }
                tracker.record(header.seq);
                good += 1;
                bytes += frame.len() as u64;
            }
            Err(FrameError::Foreign) => foreign += 1,
            Err(_) => corrupt += 1,
        });
        summary.corrupt += corrupt;
        summary.foreign += foreign;
        if n > 0 {
            last_frame = Instant::now();
            first.get_or_insert(last_frame);
            rate_line.tick(good, bytes, "");
            continue;
        }
        if idle || stopping.is_some() {
            break;
        }
        port.wait(Interest::RX, config.spin, Some(Duration::from_millis(100)))?;
    }
    summary.seconds = match first {
        Some(f) => last_frame.duration_since(f).as_secs_f64(),
        None => 0.0,
    };
    senders.insert(last_src, tracker);
    for t in senders.values() {
        summary.packets += t.received;
        summary.lost += t.lost;
        summary.reordered += t.reordered;
        summary.duplicates += t.duplicates + t.too_old;
    }
    summary.bytes = bytes;
    Ok(summary)
}
