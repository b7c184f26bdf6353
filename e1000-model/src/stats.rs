//! Statistics registers (clear on read, saturating; offsets from
//! [`e1000_spec::stats`]) and the model's own counters of guest errors.

use e1000_spec::stats::{self as reg, END, RESERVED, START, WIDE_LOW};

const WORDS: usize = ((END - START) / 4) as usize;

/// The statistics registers.
#[derive(Clone, Debug)]
pub struct Statistics {
    words: [u32; WORDS],
}

impl Default for Statistics {
    fn default() -> Self {
        Self { words: [0; WORDS] }
    }
}

fn index(offset: u32) -> Option<usize> {
    if (START..END).contains(&offset) && offset.is_multiple_of(4) && !RESERVED.contains(&offset) {
        Some(((offset - START) / 4) as usize)
    } else {
        None
    }
}

impl Statistics {
    /// Whether `offset` is a statistics register.
    pub fn is_register(offset: u32) -> bool {
        index(offset).is_some()
    }

    /// Clears every counter.
    pub fn reset(&mut self) {
        self.words = [0; WORDS];
    }

    /// Software reads a statistics register: it resets on read; a 64-bit
    /// counter resets as a whole when its high half is read. `None` when
    /// `offset` is not a statistics register.
    pub fn read(&mut self, offset: u32) -> Option<u32> {
        let i = index(offset)?;
        let value = self.words[i];
        if WIDE_LOW.contains(&offset) {
            return Some(value);
        }
        self.words[i] = 0;
        if WIDE_LOW.contains(&offset.wrapping_sub(4)) {
            self.words[i - 1] = 0;
        }
        Some(value)
    }

    /// Current value without the clear-on-read side effect (for the VMM).
    pub fn peek(&self, offset: u32) -> u32 {
        index(offset).map_or(0, |i| self.words[i])
    }

    /// Current value of the 64-bit counter whose low half is at `low`.
    pub fn peek_wide(&self, low: u32) -> u64 {
        u64::from(self.peek(low)) | (u64::from(self.peek(low + 4)) << 32)
    }

    /// Every counter word, in register order (for handing counts over).
    pub fn words(&self) -> &[u32] {
        &self.words
    }

    /// Adds counts handed over as [`Statistics::words`] of another counter
    /// set (64-bit counters as a whole, every counter saturating). Extra
    /// words are ignored, missing ones count 0.
    pub fn merge(&mut self, words: &[u32]) {
        let mut other = Statistics::default();
        for (mine, theirs) in other.words.iter_mut().zip(words) {
            *mine = *theirs;
        }
        let mut offset = START;
        while offset < END {
            if WIDE_LOW.contains(&offset) {
                self.add_wide(offset, other.peek_wide(offset));
                offset += 8;
            } else {
                self.add(offset, other.peek(offset));
                offset += 4;
            }
        }
    }

    /// Adds `n` to a 32-bit counter, sticking at its maximum.
    pub fn add(&mut self, offset: u32, n: u32) {
        if let Some(i) = index(offset) {
            self.words[i] = self.words[i].saturating_add(n);
        }
    }

    /// Adds `n` to the 64-bit counter whose low half is at `low`.
    pub fn add_wide(&mut self, low: u32, n: u64) {
        if let (Some(lo), Some(hi)) = (index(low), index(low + 4)) {
            let value =
                (u64::from(self.words[hi]) << 32 | u64::from(self.words[lo])).saturating_add(n);
            self.words[lo] = value as u32;
            self.words[hi] = (value >> 32) as u32;
        }
    }

    /// Counts a received frame of `wire_len` bytes (CRC included) that passed
    /// the filters and reached guest memory.
    pub fn count_rx_good(&mut self, wire_len: usize, destination: &[u8]) {
        let len = wire_len as u64;
        self.add(reg::GPRC, 1);
        self.add_wide(reg::GORCL, len);
        self.add(size_bin(wire_len, RX_BINS), 1);
        match cast_kind(destination) {
            CastKind::Broadcast => self.add(reg::BPRC, 1),
            CastKind::Multicast => self.add(reg::MPRC, 1),
            CastKind::Unicast => {}
        }
    }

    /// Counts a frame seen by the receiver, accepted or not.
    pub fn count_rx_total(&mut self, wire_len: usize) {
        self.add(reg::TPR, 1);
        self.add_wide(reg::TORL, wire_len as u64);
    }

    /// Counts a transmitted frame of `wire_len` bytes (CRC included).
    pub fn count_tx(&mut self, wire_len: usize, destination: &[u8]) {
        let len = wire_len as u64;
        self.add(reg::TPT, 1);
        self.add(reg::GPTC, 1);
        self.add_wide(reg::GOTCL, len);
        self.add_wide(reg::TOTL, len);
        self.add(size_bin(wire_len, TX_BINS), 1);
        match cast_kind(destination) {
            CastKind::Broadcast => self.add(reg::BPTC, 1),
            CastKind::Multicast => self.add(reg::MPTC, 1),
            CastKind::Unicast => {}
        }
    }
}

const RX_BINS: [u32; 6] = [
    reg::PRC64,
    reg::PRC127,
    reg::PRC255,
    reg::PRC511,
    reg::PRC1023,
    reg::PRC1522,
];
const TX_BINS: [u32; 6] = [
    reg::PTC64,
    reg::PTC127,
    reg::PTC255,
    reg::PTC511,
    reg::PTC1023,
    reg::PTC1522,
];

/// The size bin register for a frame; frames over 1522 bytes count in none
/// (the 8254x has no bin for them), signalled by an offset that is no register.
fn size_bin(wire_len: usize, bins: [u32; 6]) -> u32 {
    match wire_len {
        0..=64 => bins[0],
        65..=127 => bins[1],
        128..=255 => bins[2],
        256..=511 => bins[3],
        512..=1023 => bins[4],
        1024..=1522 => bins[5],
        _ => 0,
    }
}

enum CastKind {
    Unicast,
    Multicast,
    Broadcast,
}

fn cast_kind(destination: &[u8]) -> CastKind {
    match destination.get(..6) {
        Some(d) if d == [0xFF; 6] => CastKind::Broadcast,
        Some(d) if d[0] & 1 != 0 => CastKind::Multicast,
        _ => CastKind::Unicast,
    }
}

/// Counters of what the guest did wrong or what the model had to refuse.
/// Every one of them means something was dropped or ignored, and the device
/// kept running.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ErrorCounters {
    /// Reads of BAR0 offsets that are no register (read as 0).
    pub unknown_register_reads: u64,
    /// Writes to BAR0 offsets that are no register (ignored).
    pub unknown_register_writes: u64,
    /// MMIO or I/O accesses that are not aligned 32-bit (writes ignored).
    pub bad_access_size: u64,
    /// Ring base writes with bits 3:0 set (masked off).
    pub ring_base_unaligned: u64,
    /// Ring length writes not a multiple of 128 or over 1 MiB (masked).
    pub ring_length_invalid: u64,
    /// Head or tail writes wider than 16 bits (masked).
    pub ring_index_invalid: u64,
    /// EERD reads of a word past the EEPROM.
    pub eeprom_address_invalid: u64,
    /// MDIC accesses to a PHY address other than 1 or with a bad opcode.
    pub mdic_invalid: u64,
    /// TX processing with a zero-length ring or one outside guest memory.
    pub tx_ring_invalid: u64,
    /// TX processing with TDH or TDT past the end of the ring.
    pub tx_index_out_of_range: u64,
    /// TX descriptor fetches that failed (outside guest memory).
    pub tx_descriptor_dma_errors: u64,
    /// TX buffer reads that failed: the frame was dropped.
    pub tx_buffer_dma_errors: u64,
    /// TX status write-backs that failed.
    pub tx_writeback_dma_errors: u64,
    /// Extended descriptors of an unknown type (skipped).
    pub tx_descriptor_type_invalid: u64,
    /// Chains without EOP that filled the whole ring (dropped).
    pub tx_missing_eop: u64,
    /// Packets that reached [`crate::tx::MAX_PACKET_DESCRIPTORS`]
    /// descriptors without EOP (dropped).
    pub tx_chain_too_long: u64,
    /// Frames over 64 KiB (dropped).
    pub tx_frame_too_long: u64,
    /// Frames or segments larger than a backend slot (dropped).
    pub tx_frame_exceeds_slot: u64,
    /// Frames with EOP but no data (dropped).
    pub tx_frame_empty: u64,
    /// TSO frames with an unusable context (HDRLEN, MSS, offsets; dropped).
    pub tx_tso_invalid: u64,
    /// Checksum offloads with offsets outside the frame (not inserted).
    pub tx_checksum_offsets_invalid: u64,
    /// Times processing stopped because the backend had no free slot.
    pub tx_backend_full: u64,
    /// RX processing with a zero-length ring or one outside guest memory.
    pub rx_ring_invalid: u64,
    /// RX processing with RDH or RDT past the end of the ring.
    pub rx_index_out_of_range: u64,
    /// RX descriptor fetches that failed (outside guest memory).
    pub rx_descriptor_dma_errors: u64,
    /// RX buffer writes that failed (descriptor reports RXE).
    pub rx_buffer_dma_errors: u64,
    /// RX descriptor write-backs that failed.
    pub rx_writeback_dma_errors: u64,
    /// RX descriptors with a null buffer address (skipped).
    pub rx_null_descriptors: u64,
    /// Frames dropped because the receiver was disabled.
    pub rx_disabled_drops: u64,
    /// Frames dropped because they need more buffers than the ring has.
    pub rx_frame_exceeds_ring: u64,
    /// Frames dropped as longer than RCTL.LPE allows.
    pub rx_oversize_drops: u64,
    /// Frames from the backend shorter than an Ethernet header (dropped).
    pub rx_runt_drops: u64,
    /// Frames the address or VLAN filters rejected (normal, not an error).
    pub rx_filtered: u64,
    /// CSBAL writes whose address was unaligned or whose page was not in
    /// guest RAM (the CSB stays off).
    pub csb_address_invalid: u64,
    /// guest_tdt or guest_rdt values at or past the ring size (ignored; each
    /// distinct bad value counted once).
    pub csb_index_invalid: u64,
    /// Changes of guest_csb_on seen while the CSB is mapped (one at driver
    /// start and stop is normal; many mean the guest flips it).
    pub csb_guest_on_changes: u64,
    /// Periods with PCI bus mastering off during which TX or RX work was
    /// refused (no DMA until the guest sets the bit again).
    pub dma_refused_bus_master_off: u64,
}
