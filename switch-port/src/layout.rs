//! The memory layout of a port: one memfd holding both rings and all buffers.
//! The normative description, with every field's width and byte order (all
//! little-endian: u32 indices and flags, u64 slots), is §4 of the
//! repository's `docs/port-protocol.md`; a test checks its tables against the
//! constants here.
//!
//! The daemon creates the memfd when a port is created and passes it to the
//! client over the control socket; both map it shared. Nothing else is shared
//! between a client and the daemon. Every block starts on a 64-byte cache line,
//! the buffers on a 4 KiB page.
//!
//! Buffers follow each other at `buf_stride` bytes: `buf_size` when that is
//! an odd number of cache lines, one line more when it is even. Buffers of a
//! power-of-two size would otherwise all start at the same few offsets of a
//! page (2048-byte buffers at two of its 64 lines), so their first lines,
//! the ones every frame's header is written to, would share 1/32 of the
//! cache's sets and evict each other; with an odd stride they cover them all.
//!
//! ```text
//!  offset 0        +--------------------------------------------------+
//!                  | RegionHeader (4 KiB): magic "VSWPORT1", version, |
//!                  | ring_size, buf_size, num_bufs, offsets, length,  |
//!                  | buf_stride                                       |
//!  tx_ring_offset  +--------------------------------------------------+
//!                  | TX ring (client -> switch)                       |
//!                  |   line 0: head        (written by the client)    |
//!                  |   line 1: cur         (written by the client)    |
//!                  |   line 2: tail        (written by the switch)    |
//!                  |   line 3: consumer_needs_kick                    |
//!                  |   line 4: producer_needs_kick                    |
//!                  |   slots[ring_size]: { buf u32, len u16, flags u16 }
//!  rx_ring_offset  +--------------------------------------------------+
//!                  | RX ring (switch -> client), same shape           |
//!  buffers_offset  +--------------------------------------------------+
//!                  | num_bufs buffers of buf_size bytes, buf_stride   |
//!                  | bytes apart                                      |
//!                  +--------------------------------------------------+
//! ```
//!
//! Ring semantics follow netmap. Indices are in `0..ring_size`; the client
//! owns the slots `[head, tail)` (cyclically), the switch owns `[tail, head)`.
//! - TX: the client fills free slots starting at `head` and publishes them by
//!   advancing `head` (release store). The switch forwards slots up to `head`
//!   and returns them by advancing `tail`, which stays one slot behind the
//!   next slot the switch will read (so `tail == head - 1` means all
//!   `ring_size - 1` slots are free for the client).
//! - RX: the switch writes frames starting at `tail` and publishes them by
//!   advancing `tail`; it never fills the slot just before `head`. The client
//!   consumes slots `[head, tail)` and returns them by advancing `head`.
//! - `cur` is the client's own cursor (netmap's `cur`): slots in
//!   `[head, cur)` are being worked on and not yet published. The switch never
//!   reads it; it is there for tools that inspect a ring.
//!
//! A slot's `buf` is a buffer index in `0..num_bufs`. The client may swap
//! buffers between slots (netmap zero-copy style); the switch validates every
//! index and length before use. Initially TX slot `i` holds buffer `i` and RX
//! slot `i` holds buffer `ring_size + i`; TX `head` and `cur` are 0 and `tail`
//! is `ring_size - 1` (every usable slot free), RX `head`, `cur` and `tail`
//! are 0 (nothing received), and the flags are 0.
//!
//! Kicks: each ring has a `consumer_needs_kick` flag (set by the side that
//! waits for frames: the switch on TX, the client on RX) and a
//! `producer_needs_kick` flag (set by the side that waits for free slots: the
//! client on TX; the switch never waits on RX, it drops). A side that publishes
//! work checks the other side's flag after a full barrier and writes the
//! peer's eventfd only when it is set; a side about to sleep sets its flag,
//! issues a full barrier and re-checks the ring before sleeping.

use thiserror::Error;

/// Magic at the start of every port region.
pub const REGION_MAGIC: [u8; 8] = *b"VSWPORT1";
/// Version of this layout.
pub const LAYOUT_VERSION: u32 = 2;
/// Size of one cache line; every block is aligned to it.
pub const CACHE_LINE: usize = 64;
/// Size of the region header block.
pub const REGION_HEADER_SIZE: usize = 4096;
/// Bytes of a ring header before its slots (five cache lines).
pub const RING_HEADER_SIZE: usize = 5 * CACHE_LINE;
/// Bytes of one slot.
pub const SLOT_SIZE: usize = 8;
/// Default number of slots per ring.
pub const DEFAULT_RING_SIZE: u32 = 1024;
/// Default buffer size in bytes.
pub const DEFAULT_BUF_SIZE: u32 = 2048;
/// Smallest ring accepted.
pub const MIN_RING_SIZE: u32 = 64;
/// Largest ring accepted.
pub const MAX_RING_SIZE: u32 = 16384;
/// Smallest buffer accepted.
pub const MIN_BUF_SIZE: u32 = 128;
/// Largest buffer accepted (jumbo frames up to 9216 bytes fit).
pub const MAX_BUF_SIZE: u32 = 16384;

/// Byte offsets of the ring header fields.
pub mod ring_field {
    /// Client-written index: start of the client's slots.
    pub const HEAD: usize = 0;
    /// Client-written cursor.
    pub const CUR: usize = 64;
    /// Switch-written index: end of the client's slots.
    pub const TAIL: usize = 128;
    /// Set by the ring's consumer when it sleeps waiting for frames.
    pub const CONSUMER_NEEDS_KICK: usize = 192;
    /// Set by the ring's producer when it sleeps waiting for free slots.
    pub const PRODUCER_NEEDS_KICK: usize = 256;
}

/// Byte offsets of the region header fields.
pub mod header_field {
    /// 8 bytes of magic.
    pub const MAGIC: usize = 0;
    /// u32 layout version.
    pub const VERSION: usize = 8;
    /// u32 slots per ring.
    pub const RING_SIZE: usize = 12;
    /// u32 bytes per buffer.
    pub const BUF_SIZE: usize = 16;
    /// u32 number of buffers.
    pub const NUM_BUFS: usize = 20;
    /// u64 offset of the TX ring.
    pub const TX_RING_OFFSET: usize = 24;
    /// u64 offset of the RX ring.
    pub const RX_RING_OFFSET: usize = 32;
    /// u64 offset of buffer 0.
    pub const BUFFERS_OFFSET: usize = 40;
    /// u64 length of the whole region.
    pub const REGION_LEN: usize = 48;
    /// u32 bytes from the start of one buffer to the next.
    pub const BUF_STRIDE: usize = 56;
}

/// A ring or buffer geometry that is not acceptable.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum LayoutError {
    /// Ring size not a power of two in range.
    #[error("ring size {0} must be a power of two between {MIN_RING_SIZE} and {MAX_RING_SIZE}")]
    RingSize(u32),
    /// Buffer size not a multiple of 64 in range.
    #[error("buffer size {0} must be a multiple of 64 between {MIN_BUF_SIZE} and {MAX_BUF_SIZE}")]
    BufSize(u32),
    /// The region header does not describe this layout.
    #[error("port region header is invalid: {0}")]
    Header(&'static str),
}

/// The geometry of a port region, from which every offset follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Slots per ring (both rings have the same size).
    pub ring_size: u32,
    /// Bytes per buffer: the longest frame it holds.
    pub buf_size: u32,
    /// Bytes from the start of one buffer to the next (see the module
    /// documentation): `buf_size`, or one cache line more.
    pub buf_stride: u32,
    /// Number of buffers (two per slot pair).
    pub num_bufs: u32,
    /// Offset of the TX ring header.
    pub tx_ring_offset: usize,
    /// Offset of the RX ring header.
    pub rx_ring_offset: usize,
    /// Offset of buffer 0.
    pub buffers_offset: usize,
    /// Total length of the region.
    pub region_len: usize,
}

fn round_up(value: usize, align: usize) -> usize {
    value.div_ceil(align) * align
}

/// The distance between buffers of `buf_size` bytes (a multiple of the cache
/// line): an odd number of cache lines, so that consecutive buffers start on
/// every line offset of a page in turn.
pub fn buf_stride_for(buf_size: u32) -> u32 {
    let line = CACHE_LINE as u32;
    if (buf_size / line).is_multiple_of(2) {
        buf_size + line
    } else {
        buf_size
    }
}

impl Layout {
    /// Computes the layout for a ring size and buffer size, validating both.
    pub fn new(ring_size: u32, buf_size: u32) -> Result<Layout, LayoutError> {
        if !ring_size.is_power_of_two() || !(MIN_RING_SIZE..=MAX_RING_SIZE).contains(&ring_size) {
            return Err(LayoutError::RingSize(ring_size));
        }
        if !buf_size.is_multiple_of(CACHE_LINE as u32)
            || !(MIN_BUF_SIZE..=MAX_BUF_SIZE).contains(&buf_size)
        {
            return Err(LayoutError::BufSize(buf_size));
        }
        let ring_bytes = round_up(
            RING_HEADER_SIZE + ring_size as usize * SLOT_SIZE,
            CACHE_LINE,
        );
        let tx_ring_offset = REGION_HEADER_SIZE;
        let rx_ring_offset = tx_ring_offset + ring_bytes;
        let buffers_offset = round_up(rx_ring_offset + ring_bytes, 4096);
        let num_bufs = ring_size * 2;
        let buf_stride = buf_stride_for(buf_size);
        let region_len = buffers_offset + num_bufs as usize * buf_stride as usize;
        Ok(Layout {
            ring_size,
            buf_size,
            buf_stride,
            num_bufs,
            tx_ring_offset,
            rx_ring_offset,
            buffers_offset,
            region_len,
        })
    }

    /// Offset of buffer `index` (which must be `< num_bufs`).
    #[inline]
    pub fn buffer_offset(&self, index: u32) -> usize {
        self.buffers_offset + index as usize * self.buf_stride as usize
    }

    /// Writes the region header describing this layout into `header`
    /// (at least [`REGION_HEADER_SIZE`] bytes).
    pub fn write_header(&self, header: &mut [u8]) {
        header[..REGION_HEADER_SIZE].fill(0);
        let put32 =
            |h: &mut [u8], at: usize, v: u32| h[at..at + 4].copy_from_slice(&v.to_le_bytes());
        let put64 =
            |h: &mut [u8], at: usize, v: u64| h[at..at + 8].copy_from_slice(&v.to_le_bytes());
        header[header_field::MAGIC..header_field::MAGIC + 8].copy_from_slice(&REGION_MAGIC);
        put32(header, header_field::VERSION, LAYOUT_VERSION);
        put32(header, header_field::RING_SIZE, self.ring_size);
        put32(header, header_field::BUF_SIZE, self.buf_size);
        put32(header, header_field::NUM_BUFS, self.num_bufs);
        put64(
            header,
            header_field::TX_RING_OFFSET,
            self.tx_ring_offset as u64,
        );
        put64(
            header,
            header_field::RX_RING_OFFSET,
            self.rx_ring_offset as u64,
        );
        put64(
            header,
            header_field::BUFFERS_OFFSET,
            self.buffers_offset as u64,
        );
        put64(header, header_field::REGION_LEN, self.region_len as u64);
        put32(header, header_field::BUF_STRIDE, self.buf_stride);
    }

    /// Reads a region header and checks that it describes exactly the layout
    /// computed from its ring and buffer sizes, within `mapped_len` bytes.
    pub fn from_header(header: &[u8], mapped_len: usize) -> Result<Layout, LayoutError> {
        if header.len() < REGION_HEADER_SIZE {
            return Err(LayoutError::Header("shorter than its header"));
        }
        let get32 = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().unwrap_or([0; 4]));
        let get64 = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().unwrap_or([0; 8]));
        if header[..8] != REGION_MAGIC {
            return Err(LayoutError::Header("bad magic"));
        }
        if get32(header_field::VERSION) != LAYOUT_VERSION {
            return Err(LayoutError::Header("unsupported layout version"));
        }
        let layout = Layout::new(
            get32(header_field::RING_SIZE),
            get32(header_field::BUF_SIZE),
        )?;
        let matches = get32(header_field::NUM_BUFS) == layout.num_bufs
            && get64(header_field::TX_RING_OFFSET) == layout.tx_ring_offset as u64
            && get64(header_field::RX_RING_OFFSET) == layout.rx_ring_offset as u64
            && get64(header_field::BUFFERS_OFFSET) == layout.buffers_offset as u64
            && get64(header_field::REGION_LEN) == layout.region_len as u64
            && get32(header_field::BUF_STRIDE) == layout.buf_stride;
        if !matches {
            return Err(LayoutError::Header("offsets disagree with the sizes"));
        }
        if layout.region_len > mapped_len {
            return Err(LayoutError::Header("region longer than its memfd"));
        }
        Ok(layout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_layout_is_aligned() {
        let l = Layout::new(DEFAULT_RING_SIZE, DEFAULT_BUF_SIZE).unwrap();
        assert_eq!(l.tx_ring_offset % 64, 0);
        assert_eq!(l.rx_ring_offset % 64, 0);
        assert_eq!(l.buffers_offset % 4096, 0);
        assert!(l.rx_ring_offset >= l.tx_ring_offset + RING_HEADER_SIZE + 1024 * SLOT_SIZE);
        assert_eq!(l.region_len, l.buffer_offset(l.num_bufs));
    }

    #[test]
    fn buffers_start_on_every_line_of_a_page() {
        for buf_size in [128, 192, 1024, 2048, 2112, 4096, 9216, 16384] {
            let l = Layout::new(64, buf_size).unwrap();
            assert!(l.buf_stride >= buf_size);
            assert!(l.buf_stride - buf_size <= CACHE_LINE as u32);
            let mut lines = std::collections::BTreeSet::new();
            for i in 0..l.num_bufs {
                let offset = l.buffer_offset(i);
                assert_eq!(offset % CACHE_LINE, 0);
                lines.insert(offset % 4096 / CACHE_LINE);
            }
            assert_eq!(lines.len(), 4096 / CACHE_LINE, "buf_size {buf_size}");
        }
    }

    #[test]
    fn header_round_trip_and_rejections() {
        let l = Layout::new(256, 9216).unwrap();
        let mut h = vec![0u8; REGION_HEADER_SIZE];
        l.write_header(&mut h);
        assert_eq!(Layout::from_header(&h, l.region_len).unwrap(), l);
        assert!(Layout::from_header(&h, l.region_len - 1).is_err());
        let mut bad = h.clone();
        bad[header_field::BUFFERS_OFFSET] ^= 1;
        assert!(Layout::from_header(&bad, l.region_len).is_err());
        let mut bad = h.clone();
        bad[header_field::BUF_STRIDE] ^= 64;
        assert!(Layout::from_header(&bad, l.region_len).is_err());
        assert!(Layout::new(1000, 2048).is_err());
        assert!(Layout::new(1024, 2000).is_err());
        assert!(Layout::new(32, 2048).is_err());
        assert!(Layout::new(1024, 64).is_err());
    }
}
