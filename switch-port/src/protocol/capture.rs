//! The capture stream: after [`super::Response::CaptureStarted`] the daemon
//! writes records, each a 32-byte header (little-endian) and the captured
//! bytes, until the client closes the connection:
//!
//! ```text
//! offset size field
//!  0      4   kind: 1 a frame, 2 progress (no bytes follow)
//!  4      4   direction of a frame: 1 received from the port, 2 delivered to it
//!  8      8   timestamp, nanoseconds since the Unix epoch
//! 16      4   the frame's length
//! 20      4   bytes captured (at most the snap length; 0 for progress)
//! 24      8   frames dropped by the capture so far (it could not keep up)
//! 32    ...   the captured bytes
//! ```
//!
//! A progress record reports a change of the dropped count while no frame
//! comes.

use thiserror::Error;

/// Bytes of a record header.
pub const RECORD_HEADER: usize = 32;
/// Snap length when none is asked for.
pub const DEFAULT_SNAPLEN: u32 = 65535;
/// Largest snap length.
pub const MAX_SNAPLEN: u32 = 65535;
/// Record kind: a frame.
pub const KIND_FRAME: u32 = 1;
/// Record kind: progress (the dropped count).
pub const KIND_PROGRESS: u32 = 2;
/// Direction of a frame received from the port.
pub const DIR_RX: u32 = 1;
/// Direction of a frame delivered to the port.
pub const DIR_TX: u32 = 2;

/// A decoded record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// [`KIND_FRAME`] or [`KIND_PROGRESS`].
    pub kind: u32,
    /// [`DIR_RX`] or [`DIR_TX`] (frames).
    pub dir: u32,
    /// Nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// The frame's length.
    pub orig_len: u32,
    /// Bytes that follow.
    pub cap_len: u32,
    /// Frames dropped so far.
    pub dropped: u64,
}

/// A record header that is not valid.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// Unknown kind or direction.
    #[error("unknown capture record (kind {kind}, direction {dir})")]
    Unknown {
        /// The kind.
        kind: u32,
        /// The direction.
        dir: u32,
    },
    /// More bytes than a frame, or than the snap length.
    #[error("capture record of {cap_len} bytes for a {orig_len}-byte frame (snap length {MAX_SNAPLEN} at most)")]
    Length {
        /// Bytes announced.
        cap_len: u32,
        /// The frame's length.
        orig_len: u32,
    },
}

impl RecordHeader {
    /// Encodes the header.
    pub fn encode(&self) -> [u8; RECORD_HEADER] {
        let mut b = [0u8; RECORD_HEADER];
        b[0..4].copy_from_slice(&self.kind.to_le_bytes());
        b[4..8].copy_from_slice(&self.dir.to_le_bytes());
        b[8..16].copy_from_slice(&self.ts_ns.to_le_bytes());
        b[16..20].copy_from_slice(&self.orig_len.to_le_bytes());
        b[20..24].copy_from_slice(&self.cap_len.to_le_bytes());
        b[24..32].copy_from_slice(&self.dropped.to_le_bytes());
        b
    }

    /// Decodes and validates a header.
    pub fn decode(b: &[u8; RECORD_HEADER]) -> Result<RecordHeader, RecordError> {
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| u64::from(u32_at(o)) | (u64::from(u32_at(o + 4)) << 32);
        let h = RecordHeader {
            kind: u32_at(0),
            dir: u32_at(4),
            ts_ns: u64_at(8),
            orig_len: u32_at(16),
            cap_len: u32_at(20),
            dropped: u64_at(24),
        };
        let known = match h.kind {
            KIND_FRAME => h.dir == DIR_RX || h.dir == DIR_TX,
            KIND_PROGRESS => h.cap_len == 0,
            _ => false,
        };
        if !known {
            return Err(RecordError::Unknown {
                kind: h.kind,
                dir: h.dir,
            });
        }
        if h.cap_len > h.orig_len.min(MAX_SNAPLEN) && h.kind == KIND_FRAME {
            return Err(RecordError::Length {
                cap_len: h.cap_len,
                orig_len: h.orig_len,
            });
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_bad_ones_are_refused() {
        let h = RecordHeader {
            kind: KIND_FRAME,
            dir: DIR_TX,
            ts_ns: 1_700_000_000_123_456_789,
            orig_len: 1514,
            cap_len: 96,
            dropped: 1 << 40,
        };
        assert_eq!(RecordHeader::decode(&h.encode()), Ok(h));
        let long = RecordHeader { cap_len: 1515, ..h };
        assert!(RecordHeader::decode(&long.encode()).is_err());
        let odd = RecordHeader { dir: 3, ..h };
        assert!(RecordHeader::decode(&odd.encode()).is_err());
        let progress = RecordHeader {
            kind: KIND_PROGRESS,
            cap_len: 0,
            ..h
        };
        assert!(RecordHeader::decode(&progress.encode()).is_ok());
    }
}
