//! Receive path: address and VLAN filtering, the descriptor ring, buffer
//! writes (with VLAN tag stripping, padding and the optional CRC) and
//! descriptor write-back.
//!
//! A frame leaves the backend only when it is delivered or dropped by the
//! rules of the device; without free descriptors it waits in the backend.

use e1000_spec::desc::{self, rx as layout, rx::errors, rx::status};
use e1000_spec::regs::{
    ctrl, rah, rctl, CTRL, MTA, RA_ENTRIES, RCTL, RDBAH, RDBAL, RDLEN, VET, VFTA,
};
use e1000_spec::stats as stat;

use super::backend::NetBackend;
use super::dma::{Dma, DmaError};
use super::registers::RegisterFile;
use super::ring::{DescriptorCache, Ring, RingError};
use super::stats::{ErrorCounters, Statistics};

/// Frames shorter than this are padded with zeros (as on the wire).
pub const MIN_FRAME_LEN: usize = 60;
/// Ethernet CRC length.
const CRC_LEN: usize = 4;
/// Longest frame on the wire (CRC included) without RCTL.LPE.
const MAX_WIRE_LEN: usize = 1522;
/// Longest frame on the wire (CRC included) with RCTL.LPE.
const MAX_WIRE_LEN_LPE: usize = 16384;
/// Frames handled per call at most, to bound the time in one call.
pub const RX_BUDGET: u32 = 256;
/// Smallest frame the model accepts from the backend (an Ethernet header).
const ETHERNET_HEADER: usize = 14;

/// Receive buffer size selected by RCTL.BSIZE and RCTL.BSEX.
pub fn buffer_size(rctl_value: u32) -> usize {
    use rctl::bsize;
    match rctl_value & (rctl::BSIZE_MASK | rctl::BSEX) {
        bsize::B1024 => 1024,
        bsize::B512 => 512,
        bsize::B256 => 256,
        bsize::B16384 => 16384,
        bsize::B8192 => 8192,
        bsize::B4096 => 4096,
        // B2048, and BSEX with BSIZE 00b (reserved: the default size).
        _ => 2048,
    }
}

/// The 12-bit multicast table index of `mac` for RCTL.MO `offset`.
pub fn multicast_hash(mac: &[u8; 6], offset: u32) -> u32 {
    let (b4, b5) = (u32::from(mac[4]), u32::from(mac[5]));
    let hash = match offset & 3 {
        0 => (b4 >> 4) | (b5 << 4),
        1 => (b4 >> 3) | (b5 << 5),
        2 => (b4 >> 2) | (b5 << 6),
        _ => b4 | (b5 << 8),
    };
    hash & 0xFFF
}

fn vlan_tag(frame: &[u8], ethertype: u16) -> Option<u16> {
    if frame.len() >= 18 && u16::from_be_bytes([frame[12], frame[13]]) == ethertype {
        Some(u16::from_be_bytes([frame[14], frame[15]]))
    } else {
        None
    }
}

/// Whether the receive filters accept `frame` (at least 14 bytes): VLAN
/// filter (RCTL.VFE, VFTA), exact addresses (RAL/RAH with AV), broadcast
/// (BAM), multicast (MPE or the MTA hash), unicast promiscuous (UPE).
pub fn accept(regs: &RegisterFile, rctl_value: u32, vlan_ethertype: u16, frame: &[u8]) -> bool {
    let Some(destination) = frame.get(..6) else {
        return false;
    };
    let mut mac = [0u8; 6];
    mac.copy_from_slice(destination);
    if rctl_value & rctl::VFE != 0 {
        if let Some(tci) = vlan_tag(frame, vlan_ethertype) {
            let vid = u32::from(tci & 0x0FFF);
            if regs.get(VFTA + 4 * (vid >> 5)) & (1 << (vid & 31)) == 0 {
                return false;
            }
        }
    }
    let low = u32::from_le_bytes([mac[0], mac[1], mac[2], mac[3]]);
    let high = u32::from(u16::from_le_bytes([mac[4], mac[5]]));
    for n in 0..RA_ENTRIES {
        let (ral, rah_value) = regs.receive_address(n);
        if rah_value & rah::AV != 0
            && rah_value & rah::ASEL_MASK == 0
            && ral == low
            && rah_value & rah::ADDRESS_HIGH_MASK == high
        {
            return true;
        }
    }
    if mac == [0xFF; 6] && rctl_value & rctl::BAM != 0 {
        return true;
    }
    if mac[0] & 1 != 0 {
        if rctl_value & rctl::MPE != 0 {
            return true;
        }
        let hash = multicast_hash(&mac, rctl_value >> rctl::MO_SHIFT);
        return regs.get(MTA + 4 * (hash >> 5)) & (1 << (hash & 31)) != 0;
    }
    rctl_value & rctl::UPE != 0
}

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

static CRC_TABLE: [u32; 256] = crc_table();

/// The Ethernet FCS (CRC-32, IEEE 802.3) of the concatenated `parts`.
pub fn ethernet_crc(parts: &[&[u8]]) -> u32 {
    let mut crc = !0u32;
    for part in parts {
        for &byte in *part {
            crc = CRC_TABLE[((crc ^ u32::from(byte)) & 0xFF) as usize] ^ (crc >> 8);
        }
    }
    !crc
}

/// A frame as the guest sees it, in up to three pieces: the header before a
/// stripped tag, the rest, and padding plus CRC.
struct FrameParts<'a> {
    parts: [&'a [u8]; 3],
}

impl FrameParts<'_> {
    fn len(&self) -> usize {
        self.parts.iter().map(|p| p.len()).sum()
    }

    /// Writes bytes `start..start + len` of the frame to guest `gpa`.
    fn write(&self, dma: &impl Dma, gpa: u64, start: usize, len: usize) -> Result<(), DmaError> {
        let end = start + len;
        let mut position = 0;
        let mut target = gpa;
        for part in self.parts {
            let part_start = position;
            position += part.len();
            let from = start.max(part_start);
            let to = end.min(position);
            if from < to {
                dma.write(target, &part[from - part_start..to - part_start])?;
                target = target.checked_add((to - from) as u64).ok_or(DmaError {
                    gpa: target,
                    len: to - from,
                })?;
            }
        }
        Ok(())
    }
}

/// What the receive walk needs to know about the device configuration.
#[derive(Clone, Copy, Debug)]
pub struct RxEnv {
    /// The validated ring.
    pub ring: Ring,
    /// First descriptor the device owns (RDH).
    pub head: u32,
    /// First descriptor the device does not own (RDT).
    pub tail: u32,
    /// RCTL.
    pub rctl: u32,
    /// VET.
    pub vlan_ethertype: u16,
    /// CTRL.VME: strip VLAN tags into the descriptor.
    pub strip_vlan: bool,
    /// Frames handled (delivered or dropped) at most in this walk.
    pub budget: u32,
}

impl RxEnv {
    /// The walk of the ring the registers describe, from `head` to `tail`,
    /// of at most `budget` frames; `None` when the ring is not in guest
    /// memory or an index is past its end, which is counted in `errors`
    /// only when `frames_waiting` (a bad ring with nothing to receive is no
    /// error yet).
    pub fn from_registers(
        regs: &RegisterFile,
        dma: &impl Dma,
        head: u32,
        tail: u32,
        budget: u32,
        frames_waiting: bool,
        errors: &mut ErrorCounters,
    ) -> Option<RxEnv> {
        let base = regs.ring_base(RDBAL, RDBAH);
        let ring = match Ring::validate(dma, base, regs.get(RDLEN), head, tail) {
            Ok(ring) => ring,
            Err(error) => {
                if frames_waiting {
                    match error {
                        RingError::Invalid => errors.rx_ring_invalid += 1,
                        RingError::IndexOutOfRange => errors.rx_index_out_of_range += 1,
                    }
                }
                return None;
            }
        };
        Some(RxEnv {
            ring,
            head,
            tail,
            rctl: regs.get(RCTL),
            vlan_ethertype: regs.get(VET) as u16,
            strip_vlan: regs.get(CTRL) & ctrl::VME != 0,
            budget,
        })
    }
}

/// Result of one receive walk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxRun {
    /// New RDH.
    pub head: u32,
    /// Frames written to guest memory.
    pub frames: u32,
    /// Frames taken from the backend and dropped.
    pub dropped: u32,
    /// A frame waits for the guest to give buffers (RDT write).
    pub waiting_for_buffers: bool,
    /// The budget ran out while frames may remain: call again.
    pub more: bool,
    /// Free descriptors fell to the RCTL.RDMTS threshold: RXDMT0.
    pub threshold_reached: bool,
}

/// Receive state kept between walks.
#[derive(Debug, Default)]
pub struct RxEngine {
    /// Descriptors (index, buffer address) picked for the current frame.
    picked: Vec<(u32, u64)>,
    /// RNBC was counted for the frame at the head of the backend.
    starved_counted: bool,
}

impl RxEngine {
    /// Forgets per-frame state (device reset).
    pub fn reset(&mut self) {
        self.starved_counted = false;
        self.picked.clear();
    }

    /// Delivers frames from `backend` into the ring until the backend is
    /// empty, the ring has no room for the next frame, or the budget is spent.
    pub fn run<D: Dma, B: NetBackend>(
        &mut self,
        env: RxEnv,
        regs: &RegisterFile,
        dma: &D,
        backend: &mut B,
        stats: &mut Statistics,
        errors: &mut ErrorCounters,
    ) -> RxRun {
        let ring = env.ring;
        let buffer = buffer_size(env.rctl);
        let threshold = ring.size >> (((env.rctl & rctl::RDMTS_MASK) >> rctl::RDMTS_SHIFT) + 1);
        let mut cache = DescriptorCache::default();
        let mut run = RxRun {
            head: env.head,
            ..RxRun::default()
        };
        let mut handled = 0;

        while handled < env.budget {
            let Some(frame) = backend.rx_peek() else {
                break;
            };
            let wire_len = frame.len().max(MIN_FRAME_LEN) + CRC_LEN;
            if frame.len() < ETHERNET_HEADER {
                errors.rx_runt_drops += 1;
                stats.add(stat::RUC, 1);
                drop_frame(backend, stats, &mut run, wire_len);
                handled += 1;
                continue;
            }
            if !accept(regs, env.rctl, env.vlan_ethertype, frame) {
                errors.rx_filtered += 1;
                drop_frame(backend, stats, &mut run, wire_len);
                handled += 1;
                continue;
            }
            let limit = if env.rctl & rctl::LPE != 0 {
                MAX_WIRE_LEN_LPE
            } else {
                MAX_WIRE_LEN
            };
            if wire_len > limit {
                errors.rx_oversize_drops += 1;
                stats.add(stat::ROC, 1);
                drop_frame(backend, stats, &mut run, wire_len);
                handled += 1;
                continue;
            }

            let tag = if env.strip_vlan {
                vlan_tag(frame, env.vlan_ethertype)
            } else {
                None
            };
            let (first, second): (&[u8], &[u8]) = match tag {
                Some(_) => (&frame[..12], &frame[16..]),
                None => (frame, &[]),
            };
            let body = first.len() + second.len();
            let padding = MIN_FRAME_LEN.saturating_sub(body);
            let mut trailer = [0u8; MIN_FRAME_LEN + CRC_LEN];
            let mut trailer_len = padding;
            if env.rctl & rctl::SECRC == 0 {
                let crc = ethernet_crc(&[first, second, &trailer[..padding]]);
                trailer[padding..padding + CRC_LEN].copy_from_slice(&crc.to_le_bytes());
                trailer_len += CRC_LEN;
            }
            let parts = FrameParts {
                parts: [first, second, &trailer[..trailer_len]],
            };
            let total = parts.len();
            let needed = total.div_ceil(buffer) as u32;
            if needed > ring.size - 1 {
                errors.rx_frame_exceeds_ring += 1;
                stats.add(stat::MPC, 1);
                drop_frame(backend, stats, &mut run, wire_len);
                handled += 1;
                continue;
            }

            match self.pick_descriptors(dma, &ring, &mut cache, run.head, env.tail, needed) {
                Err(_) => {
                    errors.rx_descriptor_dma_errors += 1;
                    run.waiting_for_buffers = true;
                    break;
                }
                Ok(false) => {
                    if !self.starved_counted {
                        stats.add(stat::RNBC, 1);
                        self.starved_counted = true;
                    }
                    run.waiting_for_buffers = true;
                    break;
                }
                Ok(true) => {}
            }

            let mut rx_error = 0u8;
            let mut offset = 0;
            let count = self.picked.len();
            for (k, &(index, addr)) in self.picked.iter().enumerate() {
                // The descriptor from LENGTH on (the address stays).
                let mut written = [0u8; desc::SIZE];
                if addr == 0 {
                    errors.rx_null_descriptors += 1;
                    written[layout::STATUS] = status::DD;
                } else {
                    let chunk = buffer.min(total - offset);
                    if parts.write(dma, addr, offset, chunk).is_err() {
                        errors.rx_buffer_dma_errors += 1;
                        rx_error |= errors::RXE;
                    }
                    offset += chunk;
                    written[layout::LENGTH..layout::LENGTH + 2]
                        .copy_from_slice(&(chunk as u16).to_le_bytes());
                    written[layout::STATUS] = status::DD;
                    if k + 1 == count {
                        written[layout::STATUS] |= status::EOP | status::IXSM;
                        if let Some(tci) = tag {
                            written[layout::STATUS] |= status::VP;
                            written[layout::SPECIAL..layout::SPECIAL + 2]
                                .copy_from_slice(&tci.to_le_bytes());
                        }
                    }
                    written[layout::ERRORS] = rx_error;
                }
                let at = ring.address(index).saturating_add(layout::LENGTH as u64);
                if dma.write(at, &written[layout::LENGTH..]).is_err() {
                    errors.rx_writeback_dma_errors += 1;
                }
            }
            let mut destination = [0u8; 6];
            destination.copy_from_slice(&frame[..6]);
            let free_before = ring.distance(run.head, env.tail);
            run.head = self
                .picked
                .last()
                .map_or(run.head, |&(index, _)| ring.next(index));
            let free_after = ring.distance(run.head, env.tail);
            if free_before > threshold && free_after <= threshold {
                run.threshold_reached = true;
            }
            backend.rx_consume();
            stats.count_rx_total(wire_len);
            stats.count_rx_good(wire_len, &destination);
            self.starved_counted = false;
            run.frames += 1;
            handled += 1;
        }
        run.more = handled >= env.budget;
        backend.rx_flush();
        run
    }

    /// Picks descriptors from `head` holding `needed` non-null buffers.
    /// Returns false when the device does not own enough descriptors.
    fn pick_descriptors(
        &mut self,
        dma: &impl Dma,
        ring: &Ring,
        cache: &mut DescriptorCache,
        head: u32,
        tail: u32,
        needed: u32,
    ) -> Result<bool, DmaError> {
        self.picked.clear();
        let owned = ring.distance(head, tail);
        let mut index = head;
        let mut buffers = 0;
        for _ in 0..owned {
            if buffers == needed {
                break;
            }
            let raw = cache.get(dma, ring, index, tail)?;
            let mut addr = [0u8; 8];
            addr.copy_from_slice(&raw[layout::ADDR..layout::ADDR + 8]);
            let addr = u64::from_le_bytes(addr);
            self.picked.push((index, addr));
            if addr != 0 {
                buffers += 1;
            }
            index = ring.next(index);
        }
        Ok(buffers == needed)
    }
}

fn drop_frame<B: NetBackend>(
    backend: &mut B,
    stats: &mut Statistics,
    run: &mut RxRun,
    wire_len: usize,
) {
    backend.rx_consume();
    stats.count_rx_total(wire_len);
    run.dropped += 1;
}
