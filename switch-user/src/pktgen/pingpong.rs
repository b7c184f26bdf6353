//! pktgen `ping` and `pong`: round-trip latency through the switch.

use std::time::{Duration, Instant};

use switch_port::client::{Interest, PortClient};
use testframe::{FrameTemplate, Kind};

use super::report::{RateLine, RttSummary, Summary};
use super::stop::{self, Watch};
use super::{should_stop, Config, Pacer, PktgenError};
use crate::clock::monotonic_ns;

/// How long a ping waits for its pong.
const PING_TIMEOUT: Duration = Duration::from_secs(1);

/// Sends `count` pings (default 10,000) one at a time and times each pong.
pub fn ping(port: &mut PortClient, config: &Config) -> Result<Summary, PktgenError> {
    let template = FrameTemplate::new(config.dst_mac.0, config.src_mac.0, Kind::Ping, config.size)
        .ok_or(PktgenError::Size {
            size: config.size,
            min: testframe::MIN_FRAME_LEN,
            max: testframe::MAX_FRAME_LEN,
            buf: port.max_frame(),
        })?;
    let count = config.count.unwrap_or(10_000);
    let pacer = Pacer::new(config.rate);
    let start = Instant::now();
    let deadline = config.duration.map(|d| start + d);
    let mut rtts = Vec::with_capacity(count.min(10_000_000) as usize);
    let mut summary = Summary::default();
    let mut rate_line = RateLine::new("ping", Duration::from_secs(1), config.progress);
    let mut seq = 0u64;
    let mut watch = Watch::default();
    'pings: while seq < count && deadline.is_none_or(|d| Instant::now() < d) {
        if should_stop(&mut watch, port, &mut summary, seq)? {
            break;
        }
        if pacer.allowance(seq, 1) == 0 {
            pacer.wait_turn(seq);
            continue;
        }
        while port.reserve().is_none() {
            if should_stop(&mut watch, port, &mut summary, seq)? {
                break 'pings;
            }
            port.wait(Interest::TX, config.spin, Some(Duration::from_millis(100)))?;
        }
        let sent_at = monotonic_ns();
        if let Some(buf) = port.reserve() {
            template.write(buf, seq, sent_at);
            port.commit(template.len());
        }
        port.publish();
        summary.packets += 1;
        summary.bytes += config.size as u64;
        let waited = Instant::now();
        let mut answered = false;
        // The ring is read once more after the last wait, however long the
        // wait took: a ping process the machine left without CPU past the
        // timeout still finds the pong waiting there (its RTT shows the
        // delay) instead of counting it lost.
        loop {
            if stop::caught().is_some() {
                // Not a timeout: the outer check records the signal.
                continue 'pings;
            }
            let (mut corrupt, mut foreign) = (0u64, 0u64);
            port.recv(config.burst.max(1), |frame| match testframe::parse(frame) {
                Ok(h) if h.kind == Kind::Pong && h.seq == seq && h.timestamp_ns == sent_at => {
                    rtts.push(monotonic_ns().saturating_sub(sent_at));
                    answered = true;
                }
                Ok(_) => {}
                Err(testframe::FrameError::Foreign) => foreign += 1,
                Err(_) => corrupt += 1,
            });
            summary.corrupt += corrupt;
            summary.foreign += foreign;
            if answered || waited.elapsed() >= PING_TIMEOUT {
                break;
            }
            port.wait(Interest::RX, config.spin, Some(Duration::from_millis(10)))?;
        }
        if !answered {
            summary.ping_timeouts += 1;
        }
        seq += 1;
        rate_line.tick(seq, seq * config.size as u64, "");
    }
    summary.seconds = start.elapsed().as_secs_f64();
    summary.rtt_us = RttSummary::from_ns(&mut rtts);
    summary.lost = summary.ping_timeouts;
    Ok(summary)
}

/// Answers pings addressed to this port's MAC (or to a group address) until
/// the count, the duration or the idle timeout.
pub fn pong(port: &mut PortClient, config: &Config) -> Result<Summary, PktgenError> {
    let me = config.src_mac.0;
    let total = config.count.unwrap_or(u64::MAX);
    let opened = Instant::now();
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    let mut summary = Summary::default();
    let mut batch: Vec<Vec<u8>> = Vec::new();
    let mut rate_line = RateLine::new("pong", Duration::from_secs(1), config.progress);
    let mut watch = Watch::default();
    'frames: loop {
        let counted = summary.packets;
        if should_stop(&mut watch, port, &mut summary, counted)? {
            break;
        }
        let now = Instant::now();
        if summary.packets >= total
            || config
                .duration
                .is_some_and(|d| now >= first.unwrap_or(opened) + d)
            || (first.is_some() && now.duration_since(last) >= config.idle_timeout)
        {
            break;
        }
        batch.clear();
        let (mut corrupt, mut foreign) = (0u64, 0u64);
        let n = port.recv(config.burst.max(1), |frame| {
            let for_me = frame.len() >= 6 && (frame[0..6] == me || frame[0] & 1 == 1);
            if !for_me {
                return;
            }
            let mut copy = frame.to_vec();
            match testframe::make_pong(&mut copy) {
                Ok(h) if h.kind == Kind::Pong => {
                    // Answer from our own address (the ping may have gone to a group).
                    copy[6..12].copy_from_slice(&me);
                    copy[20..24].fill(0);
                    let sum = testframe::checksum(&copy);
                    copy[20..24].copy_from_slice(&sum.to_le_bytes());
                    batch.push(copy)
                }
                Ok(_) => {}
                Err(testframe::FrameError::Foreign) => foreign += 1,
                Err(_) => corrupt += 1,
            }
        });
        summary.corrupt += corrupt;
        summary.foreign += foreign;
        if n == 0 {
            port.wait(Interest::RX, config.spin, Some(Duration::from_millis(100)))?;
            continue;
        }
        last = Instant::now();
        first.get_or_insert(last);
        let mut pending: &[Vec<u8>] = &batch;
        while !pending.is_empty() {
            let sent = port.send(pending.iter().map(Vec::as_slice));
            summary.packets += sent as u64;
            summary.bytes += pending[..sent].iter().map(|f| f.len() as u64).sum::<u64>();
            pending = &pending[sent..];
            if !pending.is_empty() {
                let counted = summary.packets;
                if should_stop(&mut watch, port, &mut summary, counted)? {
                    break 'frames;
                }
                port.wait(Interest::TX, config.spin, Some(Duration::from_millis(100)))?;
            }
        }
        rate_line.tick(summary.packets, summary.bytes, "");
    }
    summary.seconds = match first {
        Some(f) => last.duration_since(f).as_secs_f64(),
        None => 0.0,
    };
    Ok(summary)
}
