//! The raw AF_XDP ceiling of a NIC port on a veth: the steering program and
//! one [`XskQueue`] with nothing behind them, driven by a minimal loop.
//!
//! - [`spawn_receiver`]: XDP steering + one socket on queue 0, a loop that
//!   only counts frames (no copy, no switch); it spins briefly when idle,
//!   then sleeps in `poll`, like the daemon's forwarding threads.
//! - [`transmit_in`]: one socket on queue 0 sending test frames as fast as
//!   its TX ring takes them, for the peer's AF_PACKET receiver to verify.
//!
//! Both run on a thread that entered the namespace holding the interface.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use switch_xdp::{SteeringConfig, XdpSteering, XskConfig, XskQueue};
use testbed::{Mac, Netns};
use testframe::{FrameTemplate, Kind};

/// Frames taken from the RX ring per call: the daemon's batch.
const RX_BATCH: usize = switch_user::bridge::forward::MAX_BATCH;
/// Frames handed to the TX ring per call.
const TX_BATCH: usize = 64;
/// How long an idle receive loop polls before sleeping.
const SPIN: Duration = Duration::from_micros(50);
/// Longest sleep of the receive loop, so that it notices a stop request.
const SLEEP: Duration = Duration::from_millis(10);
/// How long the receiver may take to attach and open its socket.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// What the receive loop counted, and the kernel's view of its socket.
#[derive(Clone, Copy, Debug, Default)]
pub struct XskRxStats {
    /// Frames received.
    pub packets: u64,
    /// Frames the kernel dropped because the fill ring was empty.
    pub fill_ring_empty: u64,
    /// Frames the kernel dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Frames the XDP program redirected to the socket.
    pub redirected: u64,
}

/// A receive loop running on its own thread; stopped by [`XskReceiver::finish`].
pub struct XskReceiver {
    stop: Arc<AtomicBool>,
    packets: Arc<AtomicU64>,
    handle: Option<JoinHandle<testbed::Result<Result<XskRxStats>>>>,
}

impl XskReceiver {
    /// Frames received so far.
    pub fn packets(&self) -> u64 {
        self.packets.load(Ordering::Relaxed)
    }

    /// Stops the loop, detaches the program and returns the counts.
    pub fn finish(mut self) -> Result<XskRxStats> {
        self.stop.store(true, Ordering::Release);
        let handle = self.handle.take().context("joined once")?;
        handle
            .join()
            .map_err(|_| anyhow!("the AF_XDP receive thread panicked"))??
    }
}

impl Drop for XskReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// Attaches the steering program to `iface` in `ns`, opens a socket on
/// queue 0 and starts counting what arrives; returns once frames are being
/// received.
pub fn spawn_receiver(ns: &Netns, iface: &str) -> Result<XskReceiver> {
    let stop = Arc::new(AtomicBool::new(false));
    let packets = Arc::new(AtomicU64::new(0));
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    let iface = iface.to_owned();
    let handle = {
        let (stop, packets) = (stop.clone(), packets.clone());
        ns.spawn_thread("xsk-rx", move || -> Result<XskRxStats> {
            let opened = open_receiver(&iface);
            let (steering, xsk) = match opened {
                Ok(pair) => {
                    let _ = ready_tx.send(Ok(()));
                    pair
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("{e:#}")));
                    return Err(e);
                }
            };
            receive_loop(steering, xsk, &stop, &packets)
        })?
    };
    let receiver = XskReceiver {
        stop,
        packets,
        handle: Some(handle),
    };
    match ready_rx.recv_timeout(READY_TIMEOUT) {
        Ok(Ok(())) => Ok(receiver),
        Ok(Err(e)) => Err(anyhow!("AF_XDP receiver: {e}")),
        Err(_) => Err(anyhow!("AF_XDP receiver did not start")),
    }
}

fn open_receiver(iface: &str) -> Result<(XdpSteering, XskQueue)> {
    let mut steering = XdpSteering::attach(iface, &SteeringConfig::default())
        .with_context(|| format!("attaching XDP to {iface}"))?;
    // As many receive frames as a NIC port's queue, so that the ceiling
    // and the port fall behind the source the same way.
    let config = XskConfig {
        rx_frames: switch_user::nic::manager::NIC_RX_FRAMES,
        ..XskConfig::default()
    };
    let xsk =
        XskQueue::open(iface, 0, &config).with_context(|| format!("AF_XDP socket on {iface}"))?;
    steering.register_socket(&xsk)?;
    Ok((steering, xsk))
}

fn receive_loop(
    steering: XdpSteering,
    mut xsk: XskQueue,
    stop: &AtomicBool,
    progress: &AtomicU64,
) -> Result<XskRxStats> {
    let mut packets = 0u64;
    let mut last_frame = Instant::now();
    while !stop.load(Ordering::Acquire) {
        let n = xsk.receive(RX_BATCH, |_frame| {});
        if n > 0 {
            packets += n as u64;
            progress.store(packets, Ordering::Relaxed);
            last_frame = Instant::now();
        } else if last_frame.elapsed() < SPIN {
            std::thread::yield_now();
        } else {
            xsk.wait_readable(SLEEP)?;
        }
    }
    let socket = xsk.stats()?;
    let counters = steering.counters(0)?;
    drop(xsk);
    steering.detach();
    Ok(XskRxStats {
        packets,
        fill_ring_empty: socket.rx_fill_ring_empty,
        rx_ring_full: socket.rx_ring_full,
        redirected: counters.redirected,
    })
}

/// What the transmit loop did.
#[derive(Clone, Copy, Debug, Default)]
pub struct XskTxStats {
    /// Frames put on the TX ring (sequence numbers 0..packets).
    pub packets: u64,
    /// Seconds of sending.
    pub seconds: f64,
    /// Frames the kernel had not completed when the loop gave up waiting.
    pub unfinished: u64,
}

/// Sends test frames of `frame_len` bytes from `src` to `dst` through one
/// AF_XDP socket on queue 0 of `iface` in `ns`, for `duration`.
pub fn transmit_in(
    ns: &Netns,
    iface: &str,
    frame_len: usize,
    src: Mac,
    dst: Mac,
    duration: Duration,
) -> Result<XskTxStats> {
    ns.run_in(|| transmit(iface, frame_len, src, dst, duration))?
}

fn transmit(
    iface: &str,
    frame_len: usize,
    src: Mac,
    dst: Mac,
    duration: Duration,
) -> Result<XskTxStats> {
    let template = FrameTemplate::new(dst.0, src.0, Kind::Data, frame_len)
        .with_context(|| format!("no test frame of {frame_len} bytes"))?;
    let mut xsk = XskQueue::open(iface, 0, &XskConfig::default())
        .with_context(|| format!("AF_XDP socket on {iface}"))?;
    let mut frames = vec![vec![0u8; frame_len]; TX_BATCH];
    for frame in &mut frames {
        template.write(frame, 0, 0);
    }
    let mut seq = 0u64;
    let start = Instant::now();
    while start.elapsed() < duration {
        for (i, frame) in frames.iter_mut().enumerate() {
            template.stamp(frame, seq + i as u64, 0);
        }
        // Frames the ring did not take are stamped again, with the same
        // sequence numbers, on the next round.
        let taken = xsk.transmit(frames.iter().map(Vec::as_slice));
        seq += taken as u64;
        if taken == 0 {
            std::thread::yield_now();
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let settle = Instant::now() + Duration::from_secs(1);
    while xsk.tx_in_flight() > 0 && Instant::now() < settle {
        xsk.kick_tx();
        xsk.reclaim();
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(XskTxStats {
        packets: seq,
        seconds,
        unfinished: xsk.tx_in_flight() as u64,
    })
}
