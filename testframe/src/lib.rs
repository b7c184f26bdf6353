//! The test frame format shared by `vswitch pktgen`, the guest image and the
//! benchmarks, so that any of them can generate traffic the others verify.
//!
//! A test frame is an Ethernet II frame with the local experimental EtherType
//! `0x88B5`. Every multi-byte field after the EtherType is little-endian:
//!
//! ```text
//! offset size field
//!  0      6   destination MAC
//!  6      6   source MAC
//! 12      2   EtherType 0x88B5 (big-endian, as on the wire)
//! 14      4   magic "VSPG"
//! 18      1   kind: 1 data, 2 ping, 3 pong
//! 19      1   reserved, 0
//! 20      4   checksum (computed with this field set to 0)
//! 24      8   sequence number
//! 32      8   timestamp in nanoseconds (sender's clock; echoed by pong)
//! 40      2   total frame length in bytes (without FCS)
//! 42    ...   filler: byte at offset i is `filler_byte(i)`
//! ```
//!
//! The checksum covers the whole frame (with the checksum field as zero): the
//! frame is read as little-endian 64-bit words (the last one zero-padded),
//! word `j` goes to lane `j % 4`, each lane keeps Fletcher sums `a += w`,
//! `b += a` (wrapping), and the lanes are folded into 32 bits. It catches
//! corrupted, shifted, truncated and reordered words, and because it is linear
//! in each word a sender can precompute it for a size and only add the
//! sequence number and timestamp per frame ([`FrameTemplate`]).
#![no_std]
#![forbid(unsafe_code)]

/// The EtherType of test frames (IEEE 802 local experimental EtherType 1).
pub const ETHERTYPE: u16 = 0x88B5;
/// The magic bytes after the EtherType.
pub const MAGIC: [u8; 4] = *b"VSPG";
/// Length of the fixed header; the filler starts here.
pub const HEADER_LEN: usize = 42;
/// Smallest test frame: the Ethernet minimum without FCS.
pub const MIN_FRAME_LEN: usize = 60;
/// Largest test frame: a 9216-byte jumbo buffer.
pub const MAX_FRAME_LEN: usize = 9216;

const OFF_ETHERTYPE: usize = 12;
const OFF_MAGIC: usize = 14;
const OFF_KIND: usize = 18;
const OFF_CHECKSUM: usize = 20;
const OFF_SEQ: usize = 24;
const OFF_TIMESTAMP: usize = 32;
const OFF_LENGTH: usize = 40;
const LANES: usize = 4;

/// What a test frame is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// One-way traffic (`tx` to `rx`).
    Data = 1,
    /// A request that a `pong` side answers.
    Ping = 2,
    /// The answer to a ping: same sequence number and timestamp.
    Pong = 3,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Kind> {
        match byte {
            1 => Some(Kind::Data),
            2 => Some(Kind::Ping),
            3 => Some(Kind::Pong),
            _ => None,
        }
    }
}

/// Why a frame is not a valid test frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Not a test frame at all (other EtherType or magic): other traffic.
    Foreign,
    /// Shorter than the header, or than the minimum frame.
    Truncated,
    /// The length field disagrees with the frame's length.
    LengthMismatch,
    /// The kind byte is unknown.
    BadKind,
    /// The checksum does not match: the frame was corrupted.
    BadChecksum,
}

/// The fields of a verified test frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Destination MAC.
    pub dst: [u8; 6],
    /// Source MAC.
    pub src: [u8; 6],
    /// What the frame is for.
    pub kind: Kind,
    /// Sequence number.
    pub seq: u64,
    /// Sender's timestamp in nanoseconds.
    pub timestamp_ns: u64,
    /// Total frame length.
    pub len: usize,
}

/// The filler byte at offset `offset` of a frame.
#[inline]
pub fn filler_byte(offset: usize) -> u8 {
    (offset as u8).wrapping_mul(31) ^ 0xA5
}

/// Fletcher lanes over the frame's 64-bit words.
#[derive(Clone, Copy, Debug, Default)]
struct Lanes {
    a: [u64; LANES],
    b: [u64; LANES],
}

impl Lanes {
    fn over(frame: &[u8]) -> Lanes {
        let mut lanes = Lanes::default();
        let mut chunks = frame.chunks_exact(8 * LANES);
        for chunk in &mut chunks {
            for lane in 0..LANES {
                let word = read_u64(chunk, lane * 8);
                lanes.a[lane] = lanes.a[lane].wrapping_add(word);
                lanes.b[lane] = lanes.b[lane].wrapping_add(lanes.a[lane]);
            }
        }
        let rest = chunks.remainder();
        let mut words = rest.chunks_exact(8);
        let mut lane = 0;
        for word in &mut words {
            let word = read_u64(word, 0);
            lanes.a[lane] = lanes.a[lane].wrapping_add(word);
            lanes.b[lane] = lanes.b[lane].wrapping_add(lanes.a[lane]);
            lane += 1;
        }
        let tail = words.remainder();
        if !tail.is_empty() {
            let mut word = 0u64;
            for (i, byte) in tail.iter().enumerate() {
                word |= (*byte as u64) << (8 * i);
            }
            lanes.a[lane] = lanes.a[lane].wrapping_add(word);
            lanes.b[lane] = lanes.b[lane].wrapping_add(lanes.a[lane]);
        }
        lanes
    }

    /// Adds `delta` to the word with index `word` of a frame with `words` words.
    fn add_word(&mut self, word: usize, words: usize, delta: u64) {
        let lane = word % LANES;
        let index_in_lane = word / LANES;
        let words_in_lane = (words + LANES - 1 - lane) / LANES;
        let weight = (words_in_lane - index_in_lane) as u64;
        self.a[lane] = self.a[lane].wrapping_add(delta);
        self.b[lane] = self.b[lane].wrapping_add(delta.wrapping_mul(weight));
    }

    fn fold(&self) -> u32 {
        let mut x = 0u64;
        for lane in 0..LANES {
            x = x.rotate_left(13) ^ self.a[lane];
            x = x.rotate_left(29) ^ self.b[lane].wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
        (x ^ (x >> 32)) as u32
    }
}

#[inline(always)]
fn read_u64(bytes: &[u8], at: usize) -> u64 {
    match bytes[at..at + 8].try_into() {
        Ok(word) => u64::from_le_bytes(word),
        Err(_) => 0,
    }
}

/// Computes the checksum of `frame` as if its checksum field were zero.
///
/// `frame` must be at least [`HEADER_LEN`] bytes long.
pub fn checksum(frame: &[u8]) -> u32 {
    let mut lanes = Lanes::over(frame);
    // Remove the stored checksum's contribution (it sits in word 2, bytes 4..8).
    let stored = u32::from_le_bytes([
        frame[OFF_CHECKSUM],
        frame[OFF_CHECKSUM + 1],
        frame[OFF_CHECKSUM + 2],
        frame[OFF_CHECKSUM + 3],
    ]);
    let words = frame.len().div_ceil(8);
    lanes.add_word(2, words, ((stored as u64) << 32).wrapping_neg());
    lanes.fold()
}

/// Writes a complete test frame of `frame.len()` bytes into `frame`.
///
/// Returns `None` when the length is outside
/// [`MIN_FRAME_LEN`]..=[`MAX_FRAME_LEN`].
pub fn write_frame(frame: &mut [u8], header: &Header) -> Option<()> {
    let template = FrameTemplate::new(header.dst, header.src, header.kind, frame.len())?;
    template.write(frame, header.seq, header.timestamp_ns);
    Some(())
}

/// Checks a received frame and returns its fields.
pub fn parse(frame: &[u8]) -> Result<Header, FrameError> {
    if frame.len() < OFF_MAGIC + MAGIC.len() {
        return Err(
            if frame.len() >= OFF_ETHERTYPE + 2 && ethertype(frame) != ETHERTYPE {
                FrameError::Foreign
            } else {
                FrameError::Truncated
            },
        );
    }
    if ethertype(frame) != ETHERTYPE || frame[OFF_MAGIC..OFF_MAGIC + 4] != MAGIC {
        return Err(FrameError::Foreign);
    }
    if frame.len() < MIN_FRAME_LEN {
        return Err(FrameError::Truncated);
    }
    let len = u16::from_le_bytes([frame[OFF_LENGTH], frame[OFF_LENGTH + 1]]) as usize;
    if len != frame.len() {
        return Err(FrameError::LengthMismatch);
    }
    let kind = Kind::from_byte(frame[OFF_KIND]).ok_or(FrameError::BadKind)?;
    let stored = u32::from_le_bytes([
        frame[OFF_CHECKSUM],
        frame[OFF_CHECKSUM + 1],
        frame[OFF_CHECKSUM + 2],
        frame[OFF_CHECKSUM + 3],
    ]);
    if stored != checksum(frame) {
        return Err(FrameError::BadChecksum);
    }
    let mut dst = [0u8; 6];
    let mut src = [0u8; 6];
    dst.copy_from_slice(&frame[0..6]);
    src.copy_from_slice(&frame[6..12]);
    Ok(Header {
        dst,
        src,
        kind,
        seq: read_u64(frame, OFF_SEQ),
        timestamp_ns: read_u64(frame, OFF_TIMESTAMP),
        len,
    })
}

/// Turns a verified ping into its pong in place: swaps the MACs, sets the
/// kind and recomputes the checksum; the sequence number and timestamp stay.
pub fn make_pong(frame: &mut [u8]) -> Result<Header, FrameError> {
    let ping = parse(frame)?;
    for i in 0..6 {
        frame.swap(i, 6 + i);
    }
    frame[OFF_KIND] = Kind::Pong as u8;
    frame[OFF_CHECKSUM..OFF_CHECKSUM + 4].fill(0);
    let sum = checksum(frame);
    frame[OFF_CHECKSUM..OFF_CHECKSUM + 4].copy_from_slice(&sum.to_le_bytes());
    Ok(Header {
        dst: ping.src,
        src: ping.dst,
        kind: Kind::Pong,
        ..ping
    })
}

fn ethertype(frame: &[u8]) -> u16 {
    u16::from_be_bytes([frame[OFF_ETHERTYPE], frame[OFF_ETHERTYPE + 1]])
}

/// A precomputed frame of one size and kind: writing a frame costs a copy of
/// the template plus a constant-time checksum update for the sequence number
/// and timestamp.
#[derive(Clone, Debug)]
pub struct FrameTemplate {
    bytes: [u8; MAX_FRAME_LEN],
    len: usize,
    base: Lanes,
}

impl FrameTemplate {
    /// Builds the template; `None` if `len` is not a valid test frame length.
    pub fn new(dst: [u8; 6], src: [u8; 6], kind: Kind, len: usize) -> Option<FrameTemplate> {
        if !(MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&len) {
            return None;
        }
        let mut bytes = [0u8; MAX_FRAME_LEN];
        bytes[0..6].copy_from_slice(&dst);
        bytes[6..12].copy_from_slice(&src);
        bytes[OFF_ETHERTYPE..OFF_ETHERTYPE + 2].copy_from_slice(&ETHERTYPE.to_be_bytes());
        bytes[OFF_MAGIC..OFF_MAGIC + 4].copy_from_slice(&MAGIC);
        bytes[OFF_KIND] = kind as u8;
        bytes[OFF_LENGTH..OFF_LENGTH + 2].copy_from_slice(&(len as u16).to_le_bytes());
        for (i, byte) in bytes.iter_mut().enumerate().take(len).skip(HEADER_LEN) {
            *byte = filler_byte(i);
        }
        let base = Lanes::over(&bytes[..len]);
        Some(FrameTemplate { bytes, len, base })
    }

    /// The frame length this template writes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a template holds at least [`MIN_FRAME_LEN`] bytes.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the frame with `seq` and `timestamp_ns` into `out`, which must
    /// be at least [`FrameTemplate::len`] bytes; returns the length written.
    pub fn write(&self, out: &mut [u8], seq: u64, timestamp_ns: u64) -> usize {
        let out = &mut out[..self.len];
        out.copy_from_slice(&self.bytes[..self.len]);
        self.stamp(out, seq, timestamp_ns);
        self.len
    }

    /// Updates only the sequence number, timestamp and checksum of a frame
    /// that was written from this template before (the filler is unchanged).
    pub fn stamp(&self, out: &mut [u8], seq: u64, timestamp_ns: u64) {
        let words = self.len.div_ceil(8);
        let mut lanes = self.base;
        lanes.add_word(OFF_SEQ / 8, words, seq);
        lanes.add_word(OFF_TIMESTAMP / 8, words, timestamp_ns);
        out[OFF_SEQ..OFF_SEQ + 8].copy_from_slice(&seq.to_le_bytes());
        out[OFF_TIMESTAMP..OFF_TIMESTAMP + 8].copy_from_slice(&timestamp_ns.to_le_bytes());
        out[OFF_CHECKSUM..OFF_CHECKSUM + 4].copy_from_slice(&lanes.fold().to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 2];

    #[test]
    fn template_checksum_matches_full_computation() {
        for len in [60, 61, 63, 64, 65, 71, 72, 100, 1514, 9216] {
            let template = FrameTemplate::new(B, A, Kind::Data, len).unwrap();
            let mut frame = [0u8; MAX_FRAME_LEN];
            for seq in [0u64, 1, 0xFFFF_FFFF_FFFF_FFFF, 123_456_789] {
                let n = template.write(&mut frame, seq, seq.wrapping_mul(7));
                let header = parse(&frame[..n]).unwrap();
                assert_eq!(header.seq, seq);
                assert_eq!(header.timestamp_ns, seq.wrapping_mul(7));
                assert_eq!(header.len, len);
                assert_eq!(header.kind, Kind::Data);
                assert_eq!(header.src, A);
            }
        }
    }

    #[test]
    fn every_single_byte_corruption_is_caught() {
        let template = FrameTemplate::new(B, A, Kind::Data, 128).unwrap();
        let mut frame = [0u8; 128];
        template.write(&mut frame, 42, 99);
        for i in 0..128 {
            let mut bad = frame;
            bad[i] ^= 0x10;
            assert!(parse(&bad).is_err(), "corruption at {i} not caught");
        }
    }

    #[test]
    fn swapped_words_are_caught() {
        let template = FrameTemplate::new(B, A, Kind::Data, 128).unwrap();
        let mut frame = [0u8; 128];
        template.write(&mut frame, 42, 99);
        let mut bad = frame;
        bad.copy_within(48..56, 120);
        bad[48..56].copy_from_slice(&frame[120..128]);
        assert_eq!(parse(&bad), Err(FrameError::BadChecksum));
    }

    #[test]
    fn truncated_and_foreign_frames() {
        let template = FrameTemplate::new(B, A, Kind::Data, 100).unwrap();
        let mut frame = [0u8; 100];
        template.write(&mut frame, 1, 2);
        assert_eq!(parse(&frame[..99]), Err(FrameError::LengthMismatch));
        assert_eq!(parse(&frame[..50]), Err(FrameError::Truncated));
        assert_eq!(parse(&frame[..10]), Err(FrameError::Truncated));
        let mut ip = frame;
        ip[12] = 0x08;
        ip[13] = 0x00;
        assert_eq!(parse(&ip), Err(FrameError::Foreign));
    }

    #[test]
    fn pong_keeps_seq_and_timestamp() {
        let template = FrameTemplate::new(B, A, Kind::Ping, 60).unwrap();
        let mut frame = [0u8; 60];
        template.write(&mut frame, 7, 1234);
        let pong = make_pong(&mut frame).unwrap();
        assert_eq!(pong.kind, Kind::Pong);
        let parsed = parse(&frame).unwrap();
        assert_eq!(parsed, pong);
        assert_eq!(parsed.dst, A);
        assert_eq!(parsed.src, B);
        assert_eq!(parsed.seq, 7);
        assert_eq!(parsed.timestamp_ns, 1234);
    }

    #[test]
    fn bad_lengths_are_refused() {
        assert!(FrameTemplate::new(B, A, Kind::Data, 59).is_none());
        assert!(FrameTemplate::new(B, A, Kind::Data, MAX_FRAME_LEN + 1).is_none());
    }
}
