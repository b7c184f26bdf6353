//! The forwarding core as ports and addresses grow: one source port sends
//! to `addresses` destination hosts, spread over `destinations` ports and
//! all learned beforehand, in a pseudo-random order, through a learning
//! table of a fixed size (as the daemon's `--fdb-size`).
//!
//! The source's frames keep their buffers; before a slot is handed to the
//! switch again the benchmark writes the next destination address into it,
//! so the destinations seen are those of the whole sequence, not only of the
//! ring's 1024 frames. That write is part of the time measured (as the
//! client's share), so is draining the destination rings; a destination
//! port is drained once every few batches when the traffic is spread over
//! many ports, so the benchmark's own per-port work stays small.

use std::time::{Duration, Instant};

use anyhow::Result;
use switch_port::mac::MacAddr;
use switch_port::names::SwitchName;
use switch_user::bridge::forward::{forward_batch, Scratch};
use switch_user::bridge::learning::LearningTable;
use switch_user::bridge::lookup::EthHeader;
use switch_user::bridge::switch::Switch;

use crate::cpu_cost::CpuWindow;
use crate::switch_core::{
    dest_host, drain, fill_tx, make_port, source_host, BenchPort, CoreResult, Mix,
};

/// The frame sizes of a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frames {
    /// Every frame of this size.
    Fixed(usize),
    /// The simple IMIX: 64, 576 and 1500 bytes in the proportion 7:4:1.
    Imix,
}

impl Frames {
    /// Name in case names and file names (`64`, `1514`, `imix`).
    pub fn name(&self) -> String {
        match self {
            Frames::Fixed(size) => size.to_string(),
            Frames::Imix => "imix".to_owned(),
        }
    }

    /// Mean frame size in bytes.
    pub fn mean_size(&self) -> usize {
        match self {
            Frames::Fixed(size) => *size,
            Frames::Imix => (7 * 64 + 4 * 576 + 1500) / 12,
        }
    }

    /// The size of the next frame.
    fn pick(&self, mix: &mut Mix) -> usize {
        match self {
            Frames::Fixed(size) => *size,
            Frames::Imix => match mix.next(12) {
                0..=6 => 64,
                7..=10 => 576,
                _ => 1500,
            },
        }
    }
}

/// One point of the sweep.
#[derive(Clone, Copy, Debug)]
pub struct ScaleCase {
    /// Destination ports.
    pub destinations: usize,
    /// Destination hosts (learned addresses), host j behind port j mod
    /// `destinations`.
    pub addresses: usize,
    /// The learning table's size.
    pub fdb_size: usize,
    /// Frame sizes.
    pub frames: Frames,
}

/// What one point measured.
#[derive(Clone, Debug)]
pub struct ScaleResult {
    /// Rates, as the other core cases.
    pub core: CoreResult,
    /// Addresses the table refused while being taught (flooded meanwhile).
    pub refused: u64,
    /// Frames flooded (to an unknown destination) during the measurement.
    pub flooded: u64,
    /// Frames per second of the forwarding thread's own CPU time, millions:
    /// the rate of one core that has nothing else to do (the wall-clock rate
    /// falls when other work shares the machine; this one much less).
    pub mpps_per_core: f64,
}

/// CPU seconds the calling thread has used.
fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// How many destination addresses the benchmark cycles through: at least
/// twice the hosts (so each is seen), rounded to a power of two.
fn sequence_len(addresses: usize) -> usize {
    (addresses.max(1) * 2)
        .next_power_of_two()
        .clamp(1 << 16, 1 << 22)
}

/// Writes the next destination of `sequence` into every slot the switch
/// has returned, then publishes them.
#[inline]
fn refill_with(port: &BenchPort, sequence: &[[u8; 6]], next: &mut usize) {
    let tx = port.tx();
    let region = port.shm.region();
    let head = tx.head().load(std::sync::atomic::Ordering::Relaxed);
    let tail = tx.tail().load(std::sync::atomic::Ordering::Acquire);
    let mut i = head;
    while i != tail {
        let buf = tx.read_slot(i).buf;
        if let Some(ptr) = region.buffer(buf) {
            // SAFETY: the buffer lies inside the region and holds at least
            // 6 bytes; the switch has returned the slot, so nothing reads it.
            unsafe { std::ptr::copy_nonoverlapping(sequence[*next].as_ptr(), ptr.as_ptr(), 6) };
        }
        *next = (*next + 1) & (sequence.len() - 1);
        i = tx.advance(i, 1);
    }
    if head != tail {
        tx.head().store(tail, std::sync::atomic::Ordering::Release);
    }
}

/// Touches every RX buffer of `port` once, so the measurement does not
/// count the first-touch page faults (a VM's memory is faulted in long
/// before traffic of this rate).
fn prefault_rx(port: &BenchPort) {
    let rx = port.shm.region().rx_ring();
    for i in 0..rx.size() {
        if let Some(buffer) = port.shm.region().buffer(rx.read_slot(i).buf) {
            // SAFETY: the buffer lies inside the region; nothing else uses
            // the port yet.
            unsafe { buffer.as_ptr().write_volatile(0) };
        }
    }
}

/// Runs one point for about `duration`.
pub fn run(case: ScaleCase, duration: Duration) -> Result<ScaleResult> {
    let dests = case.destinations.max(1);
    let addresses = case.addresses.max(1);
    let table = LearningTable::new(case.fdb_size, 300);
    let switch = Switch::new(SwitchName::parse("vale0")?, Box::new(table), dests + 1);
    let source = make_port(&switch, "vale0:src")?;
    let mut ports = Vec::with_capacity(dests);
    for i in 0..dests {
        let port = make_port(&switch, &format!("vale0:d{i}"))?;
        prefault_rx(&port);
        ports.push(port);
    }
    for j in 0..addresses {
        let header = EthHeader {
            dst: MacAddr::BROADCAST,
            src: dest_host(j),
            ethertype: 0x88b5,
            vlan: 0,
        };
        switch.lookup().lookup(&header, ports[j % dests].port.id, 0);
    }
    let refused = switch.lookup().stats().refused;
    let mut mix = Mix(0x5eed);
    let sequence: Vec<[u8; 6]> = (0..sequence_len(addresses))
        .map(|_| dest_host(mix.next(addresses)).0)
        .collect();
    fill_tx(
        &source,
        |_| case.frames.pick(&mut mix),
        |i| (MacAddr(sequence[i as usize]), source_host(0)),
    );
    let mut next = source.tx().size() as usize % sequence.len();
    // Drain a port every `every` batches: about 64 frames each time when
    // the traffic is spread, every batch when it goes to few ports.
    let every = (dests.min(addresses) / 8).max(1) as u64;
    let mut scratch = Scratch::new();
    let before: u64 = ports
        .iter()
        .map(|p| p.port.counters.snapshot().tx_packets)
        .sum();
    let mut input = 0u64;
    let cpu = CpuWindow::start();
    let thread_start = thread_cpu_seconds();
    let start = Instant::now();
    let mut rounds = 0u64;
    loop {
        refill_with(&source, &sequence, &mut next);
        input += forward_batch(&switch, &source.port, &mut scratch, 0) as u64;
        rounds += 1;
        if rounds.is_multiple_of(every) {
            for d in &ports {
                drain(d);
            }
        }
        if rounds.is_multiple_of(64) && start.elapsed() >= duration {
            break;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let thread_seconds = (thread_cpu_seconds() - thread_start).max(1e-9);
    let cpu_ns_per_packet = cpu.ns_per_packet(input);
    let snapshots: Vec<_> = ports.iter().map(|p| p.port.counters.snapshot()).collect();
    let after: u64 = snapshots.iter().map(|c| c.tx_packets).sum();
    let drops: u64 =
        snapshots.iter().map(|c| c.drops()).sum::<u64>() + source.port.counters.snapshot().drops();
    anyhow::ensure!(
        drops == 0,
        "the scaling benchmark dropped {drops} frames ({} destinations, {addresses} addresses)",
        dests
    );
    let delivered = after - before;
    anyhow::ensure!(
        delivered >= input,
        "the scaling benchmark delivered {delivered} of {input} frames"
    );
    let flooded = if dests > 1 {
        (delivered - input) / (dests as u64 - 1)
    } else {
        0
    };
    Ok(ScaleResult {
        core: CoreResult {
            input_mpps: input as f64 / seconds / 1e6,
            output_mpps: delivered as f64 / seconds / 1e6,
            ns_per_pkt: seconds * 1e9 / input.max(1) as f64,
            cpu_ns_per_packet,
            seconds,
        },
        refused,
        flooded,
        mpps_per_core: input as f64 / thread_seconds / 1e6,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_frame_is_delivered_once_at_every_scale() {
        for (destinations, addresses) in [(1, 1), (8, 1000), (254, 1000), (64, 4095)] {
            for frames in [Frames::Fixed(64), Frames::Imix] {
                let case = ScaleCase {
                    destinations,
                    addresses,
                    fdb_size: 4096,
                    frames,
                };
                let r = run(case, Duration::from_millis(20)).unwrap();
                assert!(r.core.input_mpps > 0.0, "{case:?}");
                assert_eq!((r.refused, r.flooded), (0, 0), "{case:?}");
            }
        }
    }
}
