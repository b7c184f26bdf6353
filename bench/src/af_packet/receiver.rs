//! The receiver: a TPACKET_V3 block ring; every frame is verified and
//! counted.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use testbed::{Mac, Netns};
use testframe::FrameError;

use testbed::{PacketSocket, Protocol};

use super::socket::{last_error, RingMap};
use super::{AfPacketError, Result};

/// Receive ring geometry: 64 blocks of 1 MiB. A block holds about 8000
/// 64-byte or 640 1514-byte frames; the ring covers about 100 ms of 1514-byte
/// frames at 0.4 Mpps, so a receiver that loses its CPU for a while to other
/// work on the machine does not drop.
const RX_BLOCK_SIZE: usize = 1 << 20;
const RX_BLOCK_COUNT: usize = 64;
const RX_NOMINAL_FRAME: usize = 2048;
/// A block that is not full is handed to the reader after this long.
pub(super) const RX_BLOCK_TIMEOUT_MS: u32 = 10;
/// Longest sleep of the receiver in one poll, so it notices a stop request.
const RX_POLL_MS: i32 = 20;
/// How long a receiver thread may take to open its socket.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and how long to receive.
#[derive(Clone, Debug)]
pub struct ReceiverConfig {
    /// Interface to receive on (in the receiver's namespace).
    pub ifname: String,
    /// Count only test frames from this source; others are foreign.
    pub expect_src: Option<Mac>,
    /// Hard limit on the receive loop, whatever the stop flag says.
    pub max_duration: Duration,
}

/// What a receiver saw.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReceiverStats {
    /// Valid test frames from the expected source.
    pub packets: u64,
    /// Their bytes (without FCS).
    pub bytes: u64,
    /// Time the receive loop ran.
    pub seconds: f64,
    /// Time from the first to the last valid frame.
    pub active_seconds: f64,
    /// Highest sequence number seen, plus one (0 if none).
    pub next_seq: u64,
    /// Frames missing between sequence numbers seen.
    pub seq_gaps: u64,
    /// Frames that arrived with a lower sequence number than one before.
    pub reordered: u64,
    /// Test frames that failed verification (checksum, length, kind).
    pub corrupt: u64,
    /// Frames that are not test frames, or come from another source.
    pub foreign: u64,
    /// Frames the kernel dropped because the ring was full.
    pub kernel_drops: u64,
    /// Ring blocks consumed.
    pub blocks: u64,
}

/// An open receive socket with its ring, ready for [`Receiver::run`].
pub struct Receiver {
    socket: PacketSocket,
    ring: RingMap,
    ifname: String,
    expect_src: Option<Mac>,
    max_duration: Duration,
}

impl Receiver {
    /// Opens a TPACKET_V3 receive ring on `config.ifname` in the calling
    /// thread's namespace. Frames arrive from the moment this returns.
    pub fn open(config: &ReceiverConfig) -> Result<Receiver> {
        let socket = PacketSocket::unbound(Protocol::All)?;
        let version = libc::tpacket_versions::TPACKET_V3 as libc::c_int;
        socket.set_option(libc::PACKET_VERSION, &version, "PACKET_VERSION")?;
        let request = libc::tpacket_req3 {
            tp_block_size: RX_BLOCK_SIZE as u32,
            tp_block_nr: RX_BLOCK_COUNT as u32,
            tp_frame_size: RX_NOMINAL_FRAME as u32,
            tp_frame_nr: (RX_BLOCK_SIZE / RX_NOMINAL_FRAME * RX_BLOCK_COUNT) as u32,
            tp_retire_blk_tov: RX_BLOCK_TIMEOUT_MS,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        socket.set_option(libc::PACKET_RX_RING, &request, "PACKET_RX_RING")?;
        let ring = RingMap::new(socket.as_raw_fd(), RX_BLOCK_SIZE * RX_BLOCK_COUNT)?;
        socket.bind(&config.ifname)?;
        let receiver = Receiver {
            socket,
            ring,
            ifname: config.ifname.clone(),
            expect_src: config.expect_src,
            max_duration: config.max_duration,
        };
        // Reading the statistics resets them: start from zero.
        receiver.kernel_stats()?;
        Ok(receiver)
    }

    /// Receives and verifies frames until `stop` is set (then takes what
    /// is already in the ring) or the configured maximum duration passes.
    /// `progress` follows the count of valid frames, block by block.
    pub fn run(&mut self, stop: &AtomicBool, progress: &AtomicU64) -> Result<ReceiverStats> {
        let mut stats = ReceiverStats::default();
        let mut tracker = SeqTracker::default();
        let mut first_frame: Option<Instant> = None;
        let mut last_frame = Instant::now();
        let start = Instant::now();
        let deadline = start + self.max_duration;
        let mut block = 0usize;
        loop {
            let offset = block * RX_BLOCK_SIZE;
            // block_status is the first field of the block header, after
            // `version` and `offset_to_priv`.
            let status = self.ring.status(offset + 8);
            if status.load(Ordering::Acquire) & libc::TP_STATUS_USER != 0 {
                let before = stats.packets;
                self.read_block(offset, &mut stats, &mut tracker);
                status.store(libc::TP_STATUS_KERNEL, Ordering::Release);
                stats.blocks += 1;
                block = (block + 1) % RX_BLOCK_COUNT;
                if stats.packets > before {
                    let now = Instant::now();
                    first_frame.get_or_insert(now);
                    last_frame = now;
                    progress.store(stats.packets, Ordering::Relaxed);
                }
                if Instant::now() >= deadline {
                    break;
                }
                continue;
            }
            if stop.load(Ordering::Acquire) || Instant::now() >= deadline {
                break;
            }
            let mut pfd = libc::pollfd {
                fd: self.socket.as_raw_fd(),
                events: libc::POLLIN | libc::POLLERR,
                revents: 0,
            };
            // SAFETY: one valid pollfd; the call only writes `revents`.
            let rc = unsafe { libc::poll(&mut pfd, 1, RX_POLL_MS) };
            if rc < 0 {
                let error = std::io::Error::last_os_error();
                if error.raw_os_error() != Some(libc::EINTR) {
                    return Err(AfPacketError::Io {
                        what: format!("poll on {}", self.ifname),
                        source: error,
                    });
                }
            }
        }
        stats.seconds = start.elapsed().as_secs_f64();
        stats.active_seconds = first_frame
            .map(|first| last_frame.duration_since(first).as_secs_f64())
            .unwrap_or(0.0);
        stats.next_seq = tracker.next;
        stats.seq_gaps = tracker.gaps;
        stats.reordered = tracker.reordered;
        stats.kernel_drops = self.kernel_stats()?.tp_drops as u64;
        progress.store(stats.packets, Ordering::Relaxed);
        Ok(stats)
    }

    /// Verifies the frames of the block at `offset`, which user space owns.
    fn read_block(&self, offset: usize, stats: &mut ReceiverStats, tracker: &mut SeqTracker) {
        // SAFETY: the block lies inside the mapping and belongs to user space
        // (TP_STATUS_USER was seen with acquire ordering), so the kernel does
        // not write it until we hand it back.
        let block = unsafe {
            std::slice::from_raw_parts(self.ring.base.add(offset).cast_const(), RX_BLOCK_SIZE)
        };
        let word = |at: usize| -> Option<u32> {
            block
                .get(at..at + 4)
                .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        };
        let half = |at: usize| -> Option<u16> {
            block
                .get(at..at + 2)
                .map(|b| u16::from_ne_bytes([b[0], b[1]]))
        };
        // tpacket_hdr_v1 after version and offset_to_priv: block_status,
        // num_pkts, offset_to_first_pkt.
        let (Some(count), Some(first)) = (word(12), word(16)) else {
            return;
        };
        let mut at = first as usize;
        for _ in 0..count {
            // tpacket3_hdr: tp_next_offset 0, tp_snaplen 12, tp_len 16,
            // tp_mac 24.
            let (Some(next), Some(snaplen), Some(wire_len), Some(mac)) =
                (word(at), word(at + 12), word(at + 16), half(at + 24))
            else {
                stats.corrupt += 1;
                return;
            };
            let data_start = at + mac as usize;
            let Some(frame) = block.get(data_start..data_start + snaplen as usize) else {
                stats.corrupt += 1;
                return;
            };
            if snaplen != wire_len {
                stats.corrupt += 1;
            } else {
                self.verify(frame, stats, tracker);
            }
            if next == 0 {
                break;
            }
            at += next as usize;
        }
    }

    fn verify(&self, frame: &[u8], stats: &mut ReceiverStats, tracker: &mut SeqTracker) {
        match testframe::parse(frame) {
            Ok(header) if self.expect_src.is_none_or(|src| src.0 == header.src) => {
                stats.packets += 1;
                stats.bytes += frame.len() as u64;
                tracker.see(header.seq);
            }
            Ok(_) | Err(FrameError::Foreign) => stats.foreign += 1,
            Err(_) => stats.corrupt += 1,
        }
    }

    /// Reads (and so resets) the kernel's counters of this socket.
    fn kernel_stats(&self) -> Result<libc::tpacket_stats_v3> {
        // SAFETY: plain data; all-zero is valid.
        let mut value: libc::tpacket_stats_v3 = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
        // SAFETY: `value` has room for `len` bytes, which the kernel fills.
        let rc = unsafe {
            libc::getsockopt(
                self.socket.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut value as *mut libc::tpacket_stats_v3).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(last_error("getsockopt(PACKET_STATISTICS)"));
        }
        Ok(value)
    }
}

/// Follows sequence numbers: gaps and reordering.
#[derive(Default)]
struct SeqTracker {
    next: u64,
    gaps: u64,
    reordered: u64,
}

impl SeqTracker {
    fn see(&mut self, seq: u64) {
        if seq >= self.next {
            self.gaps += seq - self.next;
            self.next = seq + 1;
        } else {
            self.reordered += 1;
        }
    }
}

/// A receiver running on its own thread inside a namespace; stopped and
/// joined by [`RunningReceiver::finish`] or on drop.
pub struct RunningReceiver {
    stop: Arc<AtomicBool>,
    progress: Arc<AtomicU64>,
    handle: Option<JoinHandle<testbed::Result<Result<ReceiverStats>>>>,
}

impl RunningReceiver {
    /// Valid frames received so far (updated per ring block).
    pub fn packets(&self) -> u64 {
        self.progress.load(Ordering::Relaxed)
    }

    /// Stops the receiver after it has taken what is in its ring, and
    /// returns its statistics.
    pub fn finish(mut self) -> Result<ReceiverStats> {
        self.stop.store(true, Ordering::Release);
        let handle = self.handle.take().expect("joined only once");
        handle
            .join()
            .map_err(|_| AfPacketError::Panicked("receiver"))??
    }
}

impl Drop for RunningReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// Starts a receiver on a thread inside `ns` and returns once its socket
/// is open, so no frame sent afterwards is missed.
pub fn spawn_receiver(ns: &Netns, config: ReceiverConfig) -> Result<RunningReceiver> {
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicU64::new(0));
    let (ready_tx, ready_rx) = mpsc::channel::<bool>();
    let ifname = config.ifname.clone();
    let handle = {
        let stop = stop.clone();
        let progress = progress.clone();
        ns.spawn_thread("af-packet-rx", move || -> Result<ReceiverStats> {
            let opened = Receiver::open(&config);
            let _ = ready_tx.send(opened.is_ok());
            opened?.run(&stop, &progress)
        })?
    };
    let running = RunningReceiver {
        stop,
        progress,
        handle: Some(handle),
    };
    match ready_rx.recv_timeout(READY_TIMEOUT) {
        Ok(true) => Ok(running),
        Ok(false) => Err(running
            .finish()
            .err()
            .unwrap_or(AfPacketError::NotReady(ifname))),
        Err(_) => Err(AfPacketError::NotReady(ifname)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_tracker_counts_gaps_and_reordering() {
        let mut tracker = SeqTracker::default();
        for seq in [0, 1, 2, 5, 3, 6, 6, 10] {
            tracker.see(seq);
        }
        assert_eq!(tracker.next, 11);
        assert_eq!(tracker.gaps, 2 + 3);
        assert_eq!(tracker.reordered, 2);
    }

    #[test]
    fn rx_frame_layout_matches_the_kernel() {
        assert_eq!(std::mem::size_of::<libc::tpacket3_hdr>(), 48);
        assert_eq!(std::mem::offset_of!(libc::tpacket3_hdr, tp_next_offset), 0);
        assert_eq!(std::mem::offset_of!(libc::tpacket3_hdr, tp_snaplen), 12);
        assert_eq!(std::mem::offset_of!(libc::tpacket3_hdr, tp_len), 16);
        assert_eq!(std::mem::offset_of!(libc::tpacket3_hdr, tp_mac), 24);
        assert_eq!(std::mem::offset_of!(libc::tpacket_block_desc, hdr), 8);
        assert_eq!(std::mem::offset_of!(libc::tpacket_hdr_v1, num_pkts), 4);
        assert_eq!(
            std::mem::offset_of!(libc::tpacket_hdr_v1, offset_to_first_pkt),
            8
        );
    }
}
