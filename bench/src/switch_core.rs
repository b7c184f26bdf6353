//! The forwarding core alone, in process: source rings are kept full and
//! destination rings drained by index moves only, so the time measured is
//! the bridge's (receive, lookup, group, copy, publish, release).
//!
//! Traffic is [`Traffic::Mixed`] by default: many source hosts behind the
//! source ports and many destination hosts spread over the destination
//! ports, in a pseudo-random order, so nearly every frame's header differs
//! from the one before and is looked up. [`Traffic::OneFlow`] (one address
//! pair per source port) is the best case: every frame of a batch after the
//! first reuses the previous frame's lookup.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;
use switch_port::eventfd::EventFd;
use switch_port::layout::{Layout, DEFAULT_BUF_SIZE, DEFAULT_RING_SIZE};
use switch_port::mac::MacAddr;
use switch_port::names::{PortName, SwitchName};
use switch_port::protocol::PortKind;
use switch_port::region::Region;
use switch_port::ring::{RingView, Slot};
use switch_user::bridge::forward::{forward_batch, Scratch};
use switch_user::bridge::learning::LearningTable;
use switch_user::bridge::port::Port;
use switch_user::bridge::shm_port::ShmPort;
use switch_user::bridge::switch::Switch;

use crate::cpu_cost::CpuWindow;

/// Which ports send and receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pattern {
    /// One source port, one destination port, learned unicast.
    Unicast1to1,
    /// One source port, broadcast to four destination ports.
    Broadcast1to4,
    /// Four source ports, one destination port, learned unicast.
    Unicast4to1,
    /// Four source ports, four destination ports, learned unicast.
    Unicast4to4,
}

impl Pattern {
    /// Case name fragment.
    pub fn name(&self) -> &'static str {
        match self {
            Pattern::Unicast1to1 => "unicast 1->1",
            Pattern::Broadcast1to4 => "broadcast 1->4",
            Pattern::Unicast4to1 => "unicast 4->1",
            Pattern::Unicast4to4 => "unicast 4->4",
        }
    }

    /// Source and destination ports.
    fn ports(&self) -> (usize, usize) {
        match self {
            Pattern::Unicast1to1 => (1, 1),
            Pattern::Broadcast1to4 => (1, 4),
            Pattern::Unicast4to1 => (4, 1),
            Pattern::Unicast4to4 => (4, 4),
        }
    }
}

/// Which addresses the frames carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Traffic {
    /// One source host per source port, sending to one destination host
    /// (source port k to the host of destination port k modulo their count).
    OneFlow,
    /// `hosts` source hosts spread over the source ports and `hosts`
    /// destination hosts spread over the destination ports; each frame takes
    /// a pseudo-random source of its port and destination.
    Mixed {
        /// Source hosts, and destination hosts.
        hosts: usize,
    },
}

impl Traffic {
    /// Case name fragment.
    pub fn name(&self) -> String {
        match self {
            Traffic::OneFlow => "one flow (best case)".to_owned(),
            Traffic::Mixed { hosts } => format!("{hosts} x {hosts} hosts mixed"),
        }
    }
}

/// What one core case measured.
#[derive(Clone, Debug, Serialize)]
pub struct CoreResult {
    /// Frames read from sources per second, millions.
    pub input_mpps: f64,
    /// Frames delivered to destinations per second, millions.
    pub output_mpps: f64,
    /// Nanoseconds per input frame.
    pub ns_per_pkt: f64,
    /// Busy CPU nanoseconds of the machine per input frame.
    pub cpu_ns_per_packet: Option<f64>,
    /// Seconds measured.
    pub seconds: f64,
}

/// A port of the benchmark's switch, whose client the benchmark plays.
pub(crate) struct BenchPort {
    pub(crate) port: Arc<Port>,
    pub(crate) shm: Arc<ShmPort>,
}

impl BenchPort {
    /// The port's TX ring (the bench plays its client).
    #[inline]
    pub(crate) fn tx(&self) -> RingView<'_> {
        self.shm.region().tx_ring()
    }

    /// The port's RX ring.
    #[inline]
    fn rx(&self) -> RingView<'_> {
        self.shm.region().rx_ring()
    }
}

/// Adds a shared-memory port of default layout named `name` to `switch`.
pub(crate) fn make_port(switch: &Switch, name: &str) -> Result<BenchPort> {
    let layout = Layout::new(DEFAULT_RING_SIZE, DEFAULT_BUF_SIZE)?;
    let pname = PortName::parse(name)?;
    let region = Arc::new(Region::create(name, layout)?);
    let shm = Arc::new(ShmPort::new(
        region.clone(),
        EventFd::new()?,
        EventFd::new()?,
    ));
    let port = switch.add_port(|id| Port::new(pname, id, PortKind::Shm, Box::new(shm.clone())))?;
    Ok(BenchPort { port, shm })
}

/// Source host `i`.
pub(crate) fn source_host(i: usize) -> MacAddr {
    MacAddr::local(0x0001_0000 + i as u32)
}

/// Destination host `j`.
pub(crate) fn dest_host(j: usize) -> MacAddr {
    MacAddr::local(0x0002_0000 + j as u32)
}

/// A small deterministic generator (splitmix64), so every run sends the
/// same mixed order.
pub(crate) struct Mix(pub(crate) u64);

impl Mix {
    /// The next number below `below`.
    pub(crate) fn next(&mut self, below: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z % below.max(1) as u64) as usize
    }
}

/// Writes a frame into every TX buffer of `port`, the size of slot i from
/// `sizes(i)`, its addresses from `addresses(i)` (destination, source).
pub(crate) fn fill_tx(
    port: &BenchPort,
    mut sizes: impl FnMut(u32) -> usize,
    mut addresses: impl FnMut(u32) -> (MacAddr, MacAddr),
) {
    let region = port.shm.region();
    let layout = *region.layout();
    for i in 0..layout.ring_size {
        let size = sizes(i);
        let buf = region.buffer(i).expect("in range");
        // SAFETY: buffer i lies inside the region and holds buf_size >= size bytes.
        let frame = unsafe { std::slice::from_raw_parts_mut(buf.as_ptr(), size) };
        let (dst, src) = addresses(i);
        frame.fill(0x5a);
        frame[0..6].copy_from_slice(&dst.0);
        frame[6..12].copy_from_slice(&src.0);
        frame[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
        port.tx().write_slot(
            i,
            Slot {
                buf: i,
                len: size as u16,
                flags: 0,
            },
        );
    }
}

/// Publishes as many TX slots as are free (the buffers already hold frames).
#[inline]
pub(crate) fn refill(port: &BenchPort) {
    let tx = port.tx();
    let head = tx.head().load(Ordering::Relaxed);
    let tail = tx.tail().load(Ordering::Acquire);
    if head != tail {
        tx.head().store(tail, Ordering::Release);
    }
}

/// Returns every received slot.
#[inline]
pub(crate) fn drain(port: &BenchPort) {
    let rx = port.rx();
    let tail = rx.tail().load(Ordering::Acquire);
    rx.head().store(tail, Ordering::Release);
}

/// Runs one pattern with `traffic` of `size`-byte frames for about
/// `duration`.
pub fn run(
    pattern: Pattern,
    traffic: Traffic,
    size: usize,
    duration: Duration,
) -> Result<CoreResult> {
    let (sources, dests) = pattern.ports();
    let (source_hosts, dest_hosts) = match traffic {
        Traffic::OneFlow => (sources, dests),
        Traffic::Mixed { hosts } => (hosts.max(sources), hosts.max(dests)),
    };
    // Room for every host with buckets mostly empty: the table refuses an
    // address whose 4-way bucket is full (buckets come from a random key),
    // and a refused destination host would be flooded for the whole run.
    let table = LearningTable::new((8 * (source_hosts + dest_hosts)).max(4096), 300);
    let switch = Switch::new(SwitchName::parse("vale0")?, Box::new(table), 254);
    let mut ports = Vec::new();
    for i in 0..sources + dests {
        ports.push(make_port(&switch, &format!("vale0:p{i}"))?);
    }
    // Teach the table where every destination host is: host j sits behind
    // destination port j modulo their count. Sources are learned from
    // their frames.
    for j in 0..dest_hosts {
        let header = switch_user::bridge::lookup::EthHeader {
            dst: MacAddr::BROADCAST,
            src: dest_host(j),
            ethertype: 0x88b5,
            vlan: 0,
        };
        let port = &ports[sources + j % dests];
        switch.lookup().lookup(&header, port.port.id, 0);
    }
    let mut mix = Mix(0x5eed);
    for (k, p) in ports.iter().take(sources).enumerate() {
        // Source hosts of port k: k, k + sources, k + 2 * sources, ...
        let own = (source_hosts - k).div_ceil(sources);
        fill_tx(
            p,
            |_| size,
            |_| {
                let (src, dst) = match traffic {
                    Traffic::OneFlow => (k, k % dests),
                    Traffic::Mixed { .. } => (k + sources * mix.next(own), mix.next(dest_hosts)),
                };
                let dst = match pattern {
                    Pattern::Broadcast1to4 => MacAddr::BROADCAST,
                    _ => dest_host(dst),
                };
                (dst, source_host(src))
            },
        );
    }
    let mut scratch = Scratch::new();
    let before: u64 = ports
        .iter()
        .map(|p| p.port.counters.snapshot().tx_packets)
        .sum();
    let mut input = 0u64;
    let cpu = CpuWindow::start();
    let start = Instant::now();
    let mut rounds = 0u64;
    loop {
        for p in ports.iter().take(sources) {
            refill(p);
            input += forward_batch(&switch, &p.port, &mut scratch, 0) as u64;
            for d in ports.iter().skip(sources) {
                drain(d);
            }
        }
        rounds += 1;
        if rounds.is_multiple_of(64) && start.elapsed() >= duration {
            break;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu_ns_per_packet = cpu.ns_per_packet(input);
    let after: u64 = ports
        .iter()
        .map(|p| p.port.counters.snapshot().tx_packets)
        .sum();
    let drops: u64 = ports
        .iter()
        .map(|p| p.port.counters.snapshot().drops())
        .sum();
    if drops != 0 {
        let why: Vec<String> = ports
            .iter()
            .filter(|p| p.port.counters.snapshot().drops() != 0)
            .map(|p| format!("{}: {:?}", p.port.name, p.port.counters.snapshot()))
            .collect();
        anyhow::bail!(
            "the core benchmark dropped {drops} frames: {}",
            why.join("; ")
        );
    }
    let fanout = if pattern == Pattern::Broadcast1to4 {
        dests as u64
    } else {
        1
    };
    anyhow::ensure!(
        after - before == input * fanout,
        "the core benchmark delivered {} of {} frames (flooded?)",
        after - before,
        input * fanout
    );
    Ok(CoreResult {
        input_mpps: input as f64 / seconds / 1e6,
        output_mpps: (after - before) as f64 / seconds / 1e6,
        ns_per_pkt: seconds * 1e9 / input.max(1) as f64,
        cpu_ns_per_packet,
        seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_and_traffic_delivers_every_frame_once() {
        for pattern in [
            Pattern::Unicast1to1,
            Pattern::Broadcast1to4,
            Pattern::Unicast4to1,
            Pattern::Unicast4to4,
        ] {
            for traffic in [
                Traffic::OneFlow,
                Traffic::Mixed { hosts: 64 },
                Traffic::Mixed { hosts: 1024 },
            ] {
                let r = run(pattern, traffic, 64, Duration::from_millis(20)).unwrap();
                assert!(r.input_mpps > 0.0, "{pattern:?} {traffic:?}");
            }
        }
    }
}
