//! The forwarding core alone, in process: source rings are kept full and
//! destination rings drained by index moves only, so the time measured is
//! the bridge's (receive, lookup, group, copy, publish, release).

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

/// Which traffic pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pattern {
    /// One source, one learned unicast destination.
    Unicast1to1,
    /// One source, broadcast to four destinations.
    Broadcast1to4,
    /// Four sources, one learned unicast destination.
    Unicast4to1,
}

impl Pattern {
    /// Case name fragment.
    pub fn name(&self) -> &'static str {
        match self {
            Pattern::Unicast1to1 => "unicast 1->1",
            Pattern::Broadcast1to4 => "broadcast 1->4",
            Pattern::Unicast4to1 => "unicast 4->1",
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
    /// Seconds measured.
    pub seconds: f64,
}

struct BenchPort {
    port: Arc<Port>,
    shm: Arc<ShmPort>,
}

impl BenchPort {
    /// The port's TX ring (the bench plays its client).
    #[inline]
    fn tx(&self) -> RingView<'_> {
        self.shm.region().tx_ring()
    }

    /// The port's RX ring.
    #[inline]
    fn rx(&self) -> RingView<'_> {
        self.shm.region().rx_ring()
    }
}

fn make_port(switch: &Switch, name: &str) -> Result<BenchPort> {
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

fn mac(i: usize) -> MacAddr {
    MacAddr::local(0xB000 + i as u32)
}

/// Writes `size`-byte frames from `src` to `dst` into every TX buffer of `port`.
fn fill_tx(port: &BenchPort, size: usize, src: MacAddr, dst: MacAddr) {
    let region = port.shm.region();
    let layout = *region.layout();
    for i in 0..layout.ring_size {
        let buf = region.buffer(i).expect("in range");
        // SAFETY: buffer i lies inside the region and holds buf_size >= size bytes.
        let frame = unsafe { std::slice::from_raw_parts_mut(buf.as_ptr(), size) };
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
fn refill(port: &BenchPort) {
    let tx = port.tx();
    let head = tx.head().load(Ordering::Relaxed);
    let tail = tx.tail().load(Ordering::Acquire);
    if head != tail {
        tx.head().store(tail, Ordering::Release);
    }
}

/// Returns every received slot.
#[inline]
fn drain(port: &BenchPort) {
    let rx = port.rx();
    let tail = rx.tail().load(Ordering::Acquire);
    rx.head().store(tail, Ordering::Release);
}

/// Runs one pattern with `size`-byte frames for about `duration`.
pub fn run(pattern: Pattern, size: usize, duration: Duration) -> Result<CoreResult> {
    let table = LearningTable::new(4096, 300);
    let switch = Switch::new(SwitchName::parse("vale0")?, Box::new(table), 254);
    let (sources, dests) = match pattern {
        Pattern::Unicast1to1 => (1, 1),
        Pattern::Broadcast1to4 => (1, 4),
        Pattern::Unicast4to1 => (4, 1),
    };
    let mut ports = Vec::new();
    for i in 0..sources + dests {
        ports.push(make_port(&switch, &format!("vale0:p{i}"))?);
    }
    // Teach the table where every port's address is.
    for (i, p) in ports.iter().enumerate() {
        let header = switch_user::bridge::lookup::EthHeader {
            dst: MacAddr::BROADCAST,
            src: mac(i),
            ethertype: 0x88b5,
        };
        switch.lookup().lookup(&header, p.port.id, 0);
    }
    for (i, p) in ports.iter().take(sources).enumerate() {
        let dst = match pattern {
            Pattern::Broadcast1to4 => MacAddr::BROADCAST,
            _ => mac(sources),
        };
        fill_tx(p, size, mac(i), dst);
    }
    let mut scratch = Scratch::new();
    let before: u64 = ports
        .iter()
        .map(|p| p.port.counters.snapshot().tx_packets)
        .sum();
    let mut input = 0u64;
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
    let after: u64 = ports
        .iter()
        .map(|p| p.port.counters.snapshot().tx_packets)
        .sum();
    let drops: u64 = ports
        .iter()
        .map(|p| p.port.counters.snapshot().drops())
        .sum();
    anyhow::ensure!(drops == 0, "the core benchmark dropped {drops} frames");
    Ok(CoreResult {
        input_mpps: input as f64 / seconds / 1e6,
        output_mpps: (after - before) as f64 / seconds / 1e6,
        ns_per_pkt: seconds * 1e9 / input.max(1) as f64,
        seconds,
    })
}
