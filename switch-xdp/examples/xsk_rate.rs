//! Measures what one `XskQueue` receives from, and sends to, a veth peer in
//! another network namespace, with 60-byte frames (64 on the wire):
//!
//! `cargo run --release -p switch-xdp --example xsk_rate -- [seconds]`
//!
//! RX: an AF_PACKET sender (sendmmsg, 64 a call, qdisc bypass) in the peer
//! namespace, the socket polled in batches of 256. TX: `transmit` in batches
//! of 256 towards the peer, whose kernel counts what arrives. Root only; the
//! namespaces are created and deleted by the run.
#[path = "../tests/common/mod.rs"]
mod common;

use common::{inside, test_frame, udp_frame, PacketSocket, Protocol, VethPair, PEER_IF, XDP_IF};
use std::error::Error;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use switch_xdp::{SteeringConfig, XdpSteering, XskConfig, XskQueue};

fn main() -> Result<(), Box<dyn Error>> {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let duration = Duration::from_secs(seconds.clamp(1, 60));
    let pair = VethPair::new();
    receive_rate(&pair, duration)?;
    transmit_rate(&pair, duration)
}

fn receive_rate(pair: &VethPair, duration: Duration) -> Result<(), Box<dyn Error>> {
    let (dst, src) = (pair.xdp_mac(), pair.peer_mac());
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let receiver = scope.spawn(|| {
            inside(&pair.xdp, || {
                let setup = || -> Result<_, Box<dyn Error>> {
                    let mut steering = XdpSteering::attach(XDP_IF, &SteeringConfig::default())?;
                    let xsk = XskQueue::open(XDP_IF, 0, &XskConfig::default())?;
                    steering.register_socket(&xsk)?;
                    Ok((steering, xsk))
                };
                let (steering, mut xsk) = match setup() {
                    Ok(ready) => ready,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return None;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let started = Instant::now();
                let mut received = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let got = xsk.receive(256, |_| {});
                    if got == 0 {
                        let _ = xsk.wait_readable(Duration::from_millis(1));
                    }
                    received += got as u64;
                }
                let elapsed = started.elapsed();
                Some((
                    received,
                    elapsed,
                    xsk.stats().ok()?,
                    steering.counters(0).ok()?,
                ))
            })
        });
        // The sender starts only once the receiver is set up.
        ready_rx.recv().map_err(|_| "the receiver thread died")??;
        let sender = scope.spawn(|| {
            inside(&pair.peer, || {
                let socket =
                    PacketSocket::open(PEER_IF, Protocol::All).expect("opening the sender");
                let batch: Vec<Vec<u8>> = (0..64)
                    .map(|i| udp_frame(dst, src, 10_000 + i, &[0; 18]))
                    .collect();
                let started = Instant::now();
                let mut sent = 0u64;
                while started.elapsed() < duration {
                    sent += socket.send_batch(&batch).expect("sending") as u64;
                }
                (sent, started.elapsed())
            })
        });
        let (sent, send_time) = sender.join().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        stop.store(true, Ordering::Relaxed);
        let (received, receive_time, stats, counters) = receiver
            .join()
            .unwrap()
            .ok_or("reading the receiver's counters")?;
        println!(
            "RX: sent {sent} in {:.2} s ({:.0} pps); received {received} ({:.0} pps over the send time)",
            send_time.as_secs_f64(),
            sent as f64 / send_time.as_secs_f64(),
            received as f64 / send_time.as_secs_f64()
        );
        println!(
            "    receiver ran {:.2} s; XDP redirected {}; kernel drops: fill ring empty {}, RX ring full {}, other {}",
            receive_time.as_secs_f64(),
            counters.redirected,
            stats.rx_fill_ring_empty,
            stats.rx_ring_full,
            stats.rx_dropped
        );
        Ok(())
    })
}

fn transmit_rate(pair: &VethPair, duration: Duration) -> Result<(), Box<dyn Error>> {
    let (dst, src) = (pair.peer_mac(), pair.xdp_mac());
    let peer_rx_before = peer_rx_packets(pair);
    let (queued, completed, elapsed) = inside(&pair.xdp, || -> Result<_, String> {
        let mut xsk =
            XskQueue::open(XDP_IF, 0, &XskConfig::default()).map_err(|e| e.to_string())?;
        let frames: Vec<Vec<u8>> = (0..256).map(|seq| test_frame(dst, src, seq, 60)).collect();
        let started = Instant::now();
        while started.elapsed() < duration {
            if xsk.transmit(frames.iter().map(Vec::as_slice)) == 0 {
                std::thread::yield_now();
            }
        }
        let elapsed = started.elapsed();
        std::thread::sleep(Duration::from_millis(100));
        xsk.reclaim();
        let stats = xsk.stats().map_err(|e| e.to_string())?;
        Ok((stats.tx_packets, stats.tx_completed, elapsed))
    })?;
    let arrived = peer_rx_packets(pair) - peer_rx_before;
    println!(
        "TX: queued {queued}, completed {completed}, the peer counted {arrived} in {:.2} s ({:.0} pps)",
        elapsed.as_secs_f64(),
        arrived as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

/// The RX packet counter of the peer's interface.
fn peer_rx_packets(pair: &VethPair) -> u64 {
    let text = pair
        .peer
        .ip(["-s", "link", "show", "dev", PEER_IF])
        .unwrap_or_default();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim_start().starts_with("RX:") {
            let numbers = lines.next().unwrap_or_default();
            return numbers
                .split_whitespace()
                .nth(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        }
    }
    0
}
