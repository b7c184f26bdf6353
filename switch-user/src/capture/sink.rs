//! The buffer between the forwarding threads and one capture's writer: the
//! forwarding thread appends records (capture stream format,
//! `switch_port::protocol::capture`) to a bounded byte buffer under a lock
//! it only tries to take; the writer swaps the buffer out and sends it.
//! When the buffer is full, or the writer holds the lock for longer than a
//! few spins, frames are dropped and counted: forwarding never waits.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use switch_port::names::PortName;
use switch_port::protocol::capture::{RecordHeader, KIND_FRAME, KIND_PROGRESS, RECORD_HEADER};
use switch_port::protocol::TapDirection;

use crate::bridge::port::FrameRef;

/// Bytes a capture buffers between two turns of its writer.
pub const BUFFER_BYTES: usize = 4 << 20;

/// Times the forwarding thread retries a busy lock before dropping.
const SPINS: u32 = 64;

/// One capture of one port.
pub struct CaptureSink {
    port: PortName,
    dir: TapDirection,
    snaplen: u32,
    buffer: Mutex<Vec<u8>>,
    limit: usize,
    captured: AtomicU64,
    dropped: AtomicU64,
    ended: AtomicBool,
}

impl CaptureSink {
    /// A capture of `port`'s `dir` frames, keeping `snaplen` bytes of each,
    /// buffering up to `limit` bytes.
    pub fn new(port: PortName, dir: TapDirection, snaplen: u32, limit: usize) -> CaptureSink {
        CaptureSink {
            port,
            dir,
            snaplen,
            // Grows up to `limit` only while the writer falls behind.
            buffer: Mutex::new(Vec::new()),
            limit,
            captured: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            ended: AtomicBool::new(false),
        }
    }

    /// The captured port.
    pub fn port(&self) -> &PortName {
        &self.port
    }

    /// Which frames it takes.
    pub fn dir(&self) -> TapDirection {
        self.dir
    }

    /// Bytes kept of each frame.
    pub fn snaplen(&self) -> u32 {
        self.snaplen
    }

    /// Frames buffered so far.
    pub fn captured(&self) -> u64 {
        self.captured.load(Ordering::Relaxed)
    }

    /// Frames dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Ends the capture (its port went away): the writer stops.
    pub fn end(&self) {
        self.ended.store(true, Ordering::Release);
    }

    /// Whether [`CaptureSink::end`] was called.
    pub fn ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// Appends the frames `frames[i]` for `i` in `which`, seen in direction
    /// `dir` (`DIR_RX`/`DIR_TX`) at `ts_ns`; drops and counts what does not
    /// fit. Never waits for the writer.
    pub fn push(&self, dir: u32, ts_ns: u64, frames: &[FrameRef], which: &[u16]) {
        let mut guard = None;
        for _ in 0..SPINS {
            if let Some(g) = self.buffer.try_lock() {
                guard = Some(g);
                break;
            }
            std::hint::spin_loop();
        }
        let Some(mut buf) = guard else {
            self.dropped
                .fetch_add(which.len() as u64, Ordering::Relaxed);
            return;
        };
        let (mut taken, mut dropped) = (0u64, 0u64);
        let mut dropped_so_far = self.dropped.load(Ordering::Relaxed);
        for &i in which {
            let Some(frame) = frames.get(i as usize) else {
                continue;
            };
            let cap = frame.len.min(self.snaplen);
            if buf.len() + RECORD_HEADER + cap as usize > self.limit {
                dropped += 1;
                dropped_so_far += 1;
                continue;
            }
            let header = RecordHeader {
                kind: KIND_FRAME,
                dir,
                ts_ns,
                orig_len: frame.len,
                cap_len: cap,
                dropped: dropped_so_far,
            };
            buf.extend_from_slice(&header.encode());
            // SAFETY: a batch frame is readable for `len >= cap` bytes until
            // the batch ends (FrameRef's contract), which outlives this call.
            buf.extend_from_slice(unsafe { std::slice::from_raw_parts(frame.ptr, cap as usize) });
            taken += 1;
        }
        drop(buf);
        self.captured.fetch_add(taken, Ordering::Relaxed);
        self.dropped.fetch_add(dropped, Ordering::Relaxed);
    }

    /// Moves what is buffered into `out` (which must be empty), leaving
    /// `out`'s allocation to the forwarding threads.
    pub fn take(&self, out: &mut Vec<u8>) {
        out.clear();
        let mut buf = self.buffer.lock();
        std::mem::swap(&mut *buf, out);
    }

    /// A progress record carrying the dropped count.
    pub fn progress(&self) -> [u8; RECORD_HEADER] {
        RecordHeader {
            kind: KIND_PROGRESS,
            dir: 0,
            ts_ns: 0,
            orig_len: 0,
            cap_len: 0,
            dropped: self.dropped(),
        }
        .encode()
    }
}

#[cfg(test)]
mod tests {
    use switch_port::protocol::capture::DIR_RX;

    use super::*;

    fn frame(bytes: &[u8]) -> FrameRef {
        FrameRef {
            ptr: bytes.as_ptr(),
            len: bytes.len() as u32,
            readable: bytes.len() as u32,
        }
    }

    #[test]
    fn keeps_the_snap_length_and_drops_what_does_not_fit() {
        let name = PortName::parse("vale0:a").unwrap();
        let sink = CaptureSink::new(name, TapDirection::Both, 20, 2 * (RECORD_HEADER + 20));
        let data = [7u8; 60];
        let frames = [frame(&data), frame(&data[..14]), frame(&data)];
        sink.push(DIR_RX, 5, &frames, &[0, 1, 2]);
        assert_eq!((sink.captured(), sink.dropped()), (2, 1));
        let mut out = Vec::new();
        sink.take(&mut out);
        assert_eq!(out.len(), 2 * RECORD_HEADER + 20 + 14);
        let h = RecordHeader::decode(out[..RECORD_HEADER].try_into().unwrap()).unwrap();
        assert_eq!((h.orig_len, h.cap_len, h.ts_ns, h.dir), (60, 20, 5, DIR_RX));
        // Room again after the writer took the buffer.
        sink.push(DIR_RX, 6, &frames, &[0]);
        assert_eq!(sink.captured(), 3);
    }
}
