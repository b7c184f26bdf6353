//! pktgen `tx`: fill the TX ring with test frames in bursts, publish each
//! burst once, wait (never drop) when the ring is full.

use std::time::{Duration, Instant};

use switch_port::client::{Interest, PortClient};
use testframe::{FrameTemplate, Kind};

use super::report::{RateLine, Summary};
use super::stop::Watch;
use super::{should_stop, Config, Pacer, PktgenError};
use crate::clock::monotonic_ns;

/// Sends frames until the count or duration is reached.
pub fn run(port: &mut PortClient, config: &Config) -> Result<Summary, PktgenError> {
    let template = FrameTemplate::new(config.dst_mac.0, config.src_mac.0, Kind::Data, config.size)
        .ok_or(PktgenError::Size {
            size: config.size,
            min: testframe::MIN_FRAME_LEN,
            max: testframe::MAX_FRAME_LEN,
            buf: port.max_frame(),
        })?;
    let total = config.count.unwrap_or(u64::MAX);
    let burst = config.burst.max(1) as u64;
    let pacer = Pacer::new(config.rate);
    let mut rate_line = RateLine::new("tx", Duration::from_secs(1), config.progress);
    let mut summary = Summary::default();
    let start = Instant::now();
    let deadline = config.duration.map(|d| start + d);
    let mut seq = 0u64;
    let mut watch = Watch::default();
    while seq < total {
        if should_stop(&mut watch, port, &mut summary, seq)? {
            break;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let want = pacer.allowance(seq, burst.min(total - seq));
        if want == 0 {
            pacer.wait_turn(seq);
            continue;
        }
        let stamp = monotonic_ns();
        let mut sent = 0;
        while sent < want {
            let Some(buf) = port.reserve() else { break };
            template.write(buf, seq, stamp);
            port.commit(template.len());
            seq += 1;
            sent += 1;
        }
        port.publish();
        if sent < want {
            summary.ring_full_waits += 1;
            port.wait(Interest::TX, config.spin, Some(Duration::from_millis(100)))?;
        }
        rate_line.tick(seq, seq * config.size as u64, "");
    }
    summary.seconds = start.elapsed().as_secs_f64();
    summary.packets = seq;
    summary.bytes = seq * config.size as u64;
    Ok(summary)
}
