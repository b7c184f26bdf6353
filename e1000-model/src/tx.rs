//! Transmit path: the descriptor ring walk, TCP/IP contexts, checksum
//! offload, TCP segmentation (TSO) and VLAN tag insertion.
//!
//! Frames are gathered from guest memory straight into backend slots. A chain
//! of descriptors is consumed only once its EOP descriptor is there: a chain
//! that ends at TDT without EOP stays in the ring (TDH stops at its first
//! descriptor) until the guest adds the rest, unless it fills the whole ring,
//! in which case it is dropped.

use e1000_spec::desc::context::{self, tucmd};
use e1000_spec::desc::data::{self, popts};
use e1000_spec::desc::tx::{self as legacy, cmd};
use e1000_spec::desc::{ext, SIZE as DESCRIPTOR_SIZE};
use e1000_spec::regs::{ctrl, tctl, CTRL, TCTL, TDBAH, TDBAL, TDLEN, VET};
use e1000_spec::stats as stat;

use super::backend::NetBackend;
use super::checksum;
use super::dma::{Dma, DmaError};
use super::registers::RegisterFile;
use super::ring::{DescriptorCache, Ring, RingError};
use super::stats::{ErrorCounters, Statistics};

/// Largest frame (before segmentation) the model gathers: 64 KiB.
pub const MAX_TX_PACKET: usize = 64 * 1024;
/// Most descriptors one packet may span, from its first data descriptor
/// (context and invalid descriptors inside it included). A driver needs
/// about 40 for a 64 KiB TSO frame in 4 KiB pieces. A packet that reaches
/// this many without EOP is dropped: every walk reads an unfinished packet
/// again from its first descriptor, and without the limit a guest could
/// make each walk read a whole 65,536-descriptor ring.
pub const MAX_PACKET_DESCRIPTORS: u32 = 256;
/// Short frames are padded to this length when TCTL.PSP is set.
const MIN_FRAME_LEN: usize = 60;
/// Ethernet CRC length, counted in the octet statistics.
const CRC_LEN: usize = 4;
/// Frames committed between two backend flushes at most.
const FLUSH_EVERY: u32 = 256;
/// TCP flags cleared in all but the last TSO segment.
const TCP_FIN_PSH: u8 = 0x01 | 0x08;

/// A TCP/IP context: checksum offsets and segmentation parameters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TxContext {
    /// IP checksum start.
    pub ipcss: u8,
    /// IP checksum offset.
    pub ipcso: u8,
    /// IP checksum end (inclusive; 0 = end of frame).
    pub ipcse: u16,
    /// TCP/UDP checksum start.
    pub tucss: u8,
    /// TCP/UDP checksum offset.
    pub tucso: u8,
    /// TCP/UDP checksum end (inclusive; 0 = end of frame).
    pub tucse: u16,
    /// TSO payload length (informational; the data descriptors decide).
    pub paylen: u32,
    /// TUCMD bits.
    pub tucmd: u8,
    /// TSO header length.
    pub hdrlen: u8,
    /// TSO maximum segment size.
    pub mss: u16,
}

enum Descriptor {
    Context {
        context: TxContext,
        cmd: u8,
    },
    Data {
        addr: u64,
        len: u32,
        cmd: u8,
        popts: u8,
        special: u16,
        /// Legacy descriptors: (CSS, CSO).
        legacy: Option<(u8, u8)>,
    },
    Invalid {
        cmd: u8,
    },
}

fn le16(raw: &[u8; DESCRIPTOR_SIZE], at: usize) -> u16 {
    u16::from_le_bytes([raw[at], raw[at + 1]])
}

fn le32(raw: &[u8; DESCRIPTOR_SIZE], at: usize) -> u32 {
    u32::from_le_bytes([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]])
}

fn le64(raw: &[u8; DESCRIPTOR_SIZE], at: usize) -> u64 {
    u64::from(le32(raw, at)) | u64::from(le32(raw, at + 4)) << 32
}

/// Decodes a descriptor by its layout: legacy (DEXT clear), or by DTYP a
/// TCP/IP context or data descriptor.
fn parse(raw: &[u8; DESCRIPTOR_SIZE]) -> Descriptor {
    // The command byte is at the same offset in the three layouts.
    let cmd = raw[legacy::CMD];
    if cmd & cmd::DEXT == 0 {
        return Descriptor::Data {
            addr: le64(raw, legacy::ADDR),
            len: u32::from(le16(raw, legacy::LENGTH)),
            cmd,
            popts: 0,
            special: le16(raw, legacy::SPECIAL),
            legacy: Some((raw[legacy::CSS], raw[legacy::CSO])),
        };
    }
    let dword = le32(raw, ext::DWORD);
    let len = dword & ext::LEN_MASK;
    match (dword >> ext::DTYP_SHIFT) & ext::DTYP_MASK {
        ext::DTYP_CONTEXT => Descriptor::Context {
            context: TxContext {
                ipcss: raw[context::IPCSS],
                ipcso: raw[context::IPCSO],
                ipcse: le16(raw, context::IPCSE),
                tucss: raw[context::TUCSS],
                tucso: raw[context::TUCSO],
                tucse: le16(raw, context::TUCSE),
                paylen: len,
                tucmd: cmd,
                hdrlen: raw[context::HDRLEN],
                mss: le16(raw, context::MSS),
            },
            cmd,
        },
        ext::DTYP_DATA => Descriptor::Data {
            addr: le64(raw, data::ADDR),
            len,
            cmd,
            popts: raw[data::POPTS],
            special: le16(raw, data::SPECIAL),
            legacy: None,
        },
        _ => Descriptor::Invalid { cmd },
    }
}

/// What the ring walk needs to know about the device configuration.
#[derive(Clone, Copy, Debug)]
pub struct TxEnv {
    /// The validated ring.
    pub ring: Ring,
    /// First descriptor the device owns (TDH).
    pub head: u32,
    /// First descriptor the device does not own (TDT).
    pub tail: u32,
    /// VLAN EtherType when CTRL.VME enables tag insertion.
    pub vlan_ethertype: Option<u16>,
    /// TCTL.PSP: pad short frames to 60 bytes.
    pub pad_short: bool,
}

impl TxEnv {
    /// The walk of the ring the registers describe, from `head` to `tail`;
    /// `None` (counted in `errors`) when the ring is not in guest memory or
    /// an index is past its end.
    pub fn from_registers(
        regs: &RegisterFile,
        dma: &impl Dma,
        head: u32,
        tail: u32,
        errors: &mut ErrorCounters,
    ) -> Option<TxEnv> {
        let base = regs.ring_base(TDBAL, TDBAH);
        let ring = match Ring::validate(dma, base, regs.get(TDLEN), head, tail) {
            Ok(ring) => ring,
            Err(RingError::Invalid) => {
                errors.tx_ring_invalid += 1;
                return None;
            }
            Err(RingError::IndexOutOfRange) => {
                errors.tx_index_out_of_range += 1;
                return None;
            }
        };
        Some(TxEnv {
            ring,
            head,
            tail,
            vlan_ethertype: (regs.get(CTRL) & ctrl::VME != 0).then(|| regs.get(VET) as u16),
            pad_short: regs.get(TCTL) & tctl::PSP != 0,
        })
    }
}

/// Result of one ring walk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxRun {
    /// New TDH.
    pub head: u32,
    /// Frames handed to the backend (TSO segments count one each).
    pub frames: u32,
    /// Descriptors consumed.
    pub descriptors: u32,
    /// Processing stopped because the backend had no free slot.
    pub backend_full: bool,
    /// A descriptor with RS and no IDE was written back: TXDW now.
    pub report_now: bool,
    /// A descriptor with RS and IDE was written back: TXDW after TIDV/TADV.
    pub report_delayed: bool,
}

/// Per-packet facts collected while walking its descriptors.
#[derive(Clone, Debug, Default)]
struct Packet {
    /// Index of the first descriptor not yet consumed for this packet.
    start: u32,
    /// Data descriptors seen.
    data_descriptors: u32,
    /// Bytes gathered so far (saturating).
    len: usize,
    /// POPTS of the first data descriptor.
    popts: u8,
    /// TSE of the first data descriptor.
    tso: bool,
    /// (CSS, CSO, IC) of the first legacy descriptor.
    legacy: Option<(u8, u8, bool)>,
    /// CMD and special field of the EOP descriptor.
    last_cmd: u8,
    special: u16,
    /// Descriptors to write back, with their IDE bit.
    reports: Vec<(u32, bool)>,
}

impl Packet {
    fn restart(&mut self, start: u32) {
        self.start = start;
        self.data_descriptors = 0;
        self.len = 0;
        self.popts = 0;
        self.tso = false;
        self.legacy = None;
        self.last_cmd = 0;
        self.special = 0;
        self.reports.clear();
    }
}

/// The transmit state that outlives a ring walk, as handed between the VMM
/// and an offloaded data path ([`TxEngine::state`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TxState {
    /// The TCP/IP checksum context.
    pub checksum: TxContext,
    /// The TSO context.
    pub tso: TxContext,
    /// A TSO frame that stalled on a full backend: the index of its first
    /// descriptor and the segments already sent.
    pub tso_resume: Option<(u32, u32)>,
}

/// A TSO frame whose segments did not all fit in the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TsoResume {
    start: u32,
    segments_sent: u32,
}

/// Transmit state kept between ring walks: the two contexts and TSO progress.
#[derive(Debug, Default)]
pub struct TxEngine {
    checksum_context: TxContext,
    tso_context: TxContext,
    fragments: Vec<(u64, u32)>,
    packet: Packet,
    tso_resume: Option<TsoResume>,
}

enum Emitted {
    Sent(u32),
    Dropped,
    Stalled,
}

/// Everything a frame emission writes to.
struct Sink<'a, D: Dma, B: NetBackend> {
    dma: &'a D,
    backend: &'a mut B,
    stats: &'a mut Statistics,
    errors: &'a mut ErrorCounters,
    env: TxEnv,
    since_flush: u32,
}

impl<D: Dma, B: NetBackend> Sink<'_, D, B> {
    fn committed(&mut self) {
        self.since_flush += 1;
        if self.since_flush >= FLUSH_EVERY {
            self.backend.tx_flush();
            self.since_flush = 0;
        }
    }
}

impl TxEngine {
    /// Forgets the contexts and any partial progress (device reset).
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// Forgets partial progress (the ring was reprogrammed or disabled).
    pub fn ring_changed(&mut self) {
        self.tso_resume = None;
    }

    /// The TCP/IP checksum context currently loaded.
    pub fn checksum_context(&self) -> TxContext {
        self.checksum_context
    }

    /// The TSO context currently loaded.
    pub fn tso_context(&self) -> TxContext {
        self.tso_context
    }

    /// What carries over to another ring walker (an offloaded data path):
    /// both contexts and the progress of a TSO frame that stalled.
    pub fn state(&self) -> TxState {
        TxState {
            checksum: self.checksum_context,
            tso: self.tso_context,
            tso_resume: self.tso_resume.map(|r| (r.start, r.segments_sent)),
        }
    }

    /// Takes over `state` (from [`TxEngine::state`] of another walker). Any
    /// value is safe: contexts are checked at use, as a guest's are, and a
    /// TSO resume applies only to the frame starting at its index.
    pub fn restore(&mut self, state: &TxState) {
        self.checksum_context = state.checksum;
        self.tso_context = state.tso;
        self.tso_resume = state.tso_resume.map(|(start, segments_sent)| TsoResume {
            start,
            segments_sent,
        });
    }

    /// Walks the descriptors from `env.head` to `env.tail`, sending complete
    /// frames to `backend` and writing back DD where RS asks for it.
    pub fn run<D: Dma, B: NetBackend>(
        &mut self,
        env: TxEnv,
        dma: &D,
        backend: &mut B,
        stats: &mut Statistics,
        errors: &mut ErrorCounters,
    ) -> TxRun {
        let ring = env.ring;
        let mut run = TxRun {
            head: env.head,
            ..TxRun::default()
        };
        let mut sink = Sink {
            dma,
            backend,
            stats,
            errors,
            env,
            since_flush: 0,
        };
        let mut cache = DescriptorCache::default();
        let mut index = env.head;
        self.packet.restart(env.head);
        self.fragments.clear();
        if self
            .tso_resume
            .is_some_and(|resume| resume.start != env.head)
        {
            self.tso_resume = None;
        }

        while index != env.tail {
            let raw = match cache.get(dma, &ring, index, env.tail) {
                Ok(raw) => raw,
                Err(_) => {
                    sink.errors.tx_descriptor_dma_errors += 1;
                    break;
                }
            };
            let current = index;
            index = ring.next(index);
            match parse(&raw) {
                Descriptor::Context { context, cmd } => {
                    if context.tucmd & tucmd::TSE != 0 {
                        self.tso_context = context;
                    } else {
                        self.checksum_context = context;
                    }
                    self.note_standalone(current, cmd, index, &mut run, &mut sink);
                }
                Descriptor::Invalid { cmd } => {
                    sink.errors.tx_descriptor_type_invalid += 1;
                    self.note_standalone(current, cmd, index, &mut run, &mut sink);
                }
                Descriptor::Data {
                    addr,
                    len,
                    cmd,
                    popts,
                    special,
                    legacy,
                } => {
                    self.add_data(current, addr, len, cmd, popts, legacy);
                    if cmd & cmd::EOP != 0 {
                        self.packet.last_cmd = cmd;
                        self.packet.special = special;
                        match self.emit(&mut sink) {
                            Emitted::Stalled => {
                                sink.errors.tx_backend_full += 1;
                                run.backend_full = true;
                                break;
                            }
                            Emitted::Sent(frames) => run.frames += frames,
                            Emitted::Dropped => {}
                        }
                        self.finish_packet(index, &mut run, &mut sink);
                    }
                }
            }
            if self.packet.data_descriptors > 0
                && ring.distance(self.packet.start, index) >= MAX_PACKET_DESCRIPTORS
            {
                // A packet as long as one may be and no end (data, context
                // or invalid descriptors alike): consumed and dropped; what
                // follows starts a new packet.
                sink.errors.tx_chain_too_long += 1;
                self.finish_packet(index, &mut run, &mut sink);
            }
        }

        if self.packet.data_descriptors > 0 && !run.backend_full {
            // A chain without EOP. It waits for more descriptors unless it
            // already holds every descriptor the guest can give it.
            if ring.distance(self.packet.start, env.tail) >= ring.size - 1 {
                sink.errors.tx_missing_eop += 1;
                self.finish_packet(env.tail, &mut run, &mut sink);
            }
        }
        if sink.since_flush > 0 {
            sink.backend.tx_flush();
        }
        run.head = self.packet.start;
        run
    }

    /// A context or invalid descriptor: consumed at once outside a packet,
    /// with the packet otherwise.
    fn note_standalone<D: Dma, B: NetBackend>(
        &mut self,
        current: u32,
        cmd: u8,
        next: u32,
        run: &mut TxRun,
        sink: &mut Sink<'_, D, B>,
    ) {
        if cmd & (cmd::RS | cmd::RPS) != 0 {
            self.packet.reports.push((current, cmd & cmd::IDE != 0));
        }
        if self.packet.data_descriptors == 0 {
            self.finish_packet(next, run, sink);
        }
    }

    fn add_data(
        &mut self,
        current: u32,
        addr: u64,
        len: u32,
        cmd: u8,
        popts: u8,
        legacy: Option<(u8, u8)>,
    ) {
        let packet = &mut self.packet;
        if packet.data_descriptors == 0 {
            self.fragments.clear();
            packet.popts = popts;
            packet.tso = legacy.is_none() && cmd & cmd::TSE != 0;
            packet.legacy = legacy.map(|(css, cso)| (css, cso, cmd & cmd::IC != 0));
        }
        packet.data_descriptors += 1;
        if cmd & (cmd::RS | cmd::RPS) != 0 {
            packet.reports.push((current, cmd & cmd::IDE != 0));
        }
        // Null addresses and zero lengths transfer no data.
        if addr != 0 && len != 0 && packet.len <= MAX_TX_PACKET {
            self.fragments.push((addr, len));
        }
        packet.len = packet.len.saturating_add(len as usize);
    }

    /// Writes back the packet's reported descriptors and starts a new packet
    /// at `next`.
    fn finish_packet<D: Dma, B: NetBackend>(
        &mut self,
        next: u32,
        run: &mut TxRun,
        sink: &mut Sink<'_, D, B>,
    ) {
        let ring = sink.env.ring;
        for &(index, ide) in &self.packet.reports {
            // The status byte is at the same offset in the three layouts.
            let address = ring.address(index).saturating_add(legacy::STATUS as u64);
            if sink.dma.write(address, &[legacy::status::DD]).is_err() {
                sink.errors.tx_writeback_dma_errors += 1;
            }
            if ide {
                run.report_delayed = true;
            } else {
                run.report_now = true;
            }
        }
        run.descriptors += ring.distance(self.packet.start, next);
        self.packet.restart(next);
        self.fragments.clear();
    }

    /// Sends the complete packet: one frame, or TSO segments.
    fn emit<D: Dma, B: NetBackend>(&mut self, sink: &mut Sink<'_, D, B>) -> Emitted {
        let packet = &self.packet;
        if packet.len > MAX_TX_PACKET {
            sink.errors.tx_frame_too_long += 1;
            if packet.tso {
                sink.stats.add(stat::TSCTFC, 1);
            }
            return Emitted::Dropped;
        }
        if packet.len == 0 {
            sink.errors.tx_frame_empty += 1;
            return Emitted::Dropped;
        }
        let vlan = match sink.env.vlan_ethertype {
            Some(ethertype) if packet.last_cmd & cmd::VLE != 0 => Some((ethertype, packet.special)),
            _ => None,
        };
        if !packet.tso {
            return emit_frame(packet, &self.fragments, &self.checksum_context, vlan, sink);
        }
        let skip = self
            .tso_resume
            .take()
            .filter(|resume| resume.start == packet.start)
            .map_or(0, |resume| resume.segments_sent);
        let (emitted, sent) =
            emit_segments(packet, &self.fragments, &self.tso_context, vlan, skip, sink);
        if let Emitted::Stalled = emitted {
            self.tso_resume = Some(TsoResume {
                start: packet.start,
                segments_sent: sent,
            });
        }
        emitted
    }
}

/// Reads consecutive bytes of a packet scattered over guest buffers.
struct Cursor<'a> {
    fragments: &'a [(u64, u32)],
    index: usize,
    offset: u32,
}

impl<'a> Cursor<'a> {
    fn new(fragments: &'a [(u64, u32)]) -> Self {
        Self {
            fragments,
            index: 0,
            offset: 0,
        }
    }

    fn read(&mut self, dma: &impl Dma, mut dest: &mut [u8]) -> Result<(), DmaError> {
        while !dest.is_empty() {
            let &(addr, len) = self.fragments.get(self.index).ok_or(DmaError {
                gpa: 0,
                len: dest.len(),
            })?;
            let available = (len - self.offset) as usize;
            let n = available.min(dest.len());
            let (now, rest) = std::mem::take(&mut dest).split_at_mut(n);
            let gpa = addr
                .checked_add(u64::from(self.offset))
                .ok_or(DmaError { gpa: addr, len: n })?;
            dma.read(gpa, now)?;
            dest = rest;
            self.advance(n);
        }
        Ok(())
    }

    fn skip(&mut self, mut n: usize) {
        while n > 0 {
            let Some(&(_, len)) = self.fragments.get(self.index) else {
                return;
            };
            let step = ((len - self.offset) as usize).min(n);
            self.advance(step);
            n -= step;
        }
    }

    fn advance(&mut self, n: usize) {
        self.offset += n as u32;
        if let Some(&(_, len)) = self.fragments.get(self.index) {
            if self.offset >= len {
                self.index += 1;
                self.offset = 0;
            }
        }
    }
}

/// Offset of the frame inside the slot: room for a VLAN tag to be inserted.
fn frame_offset(vlan: Option<(u16, u16)>) -> usize {
    if vlan.is_some() {
        4
    } else {
        0
    }
}

/// Turns `slot[4..4 + len]` into a tagged frame at `slot[0..len + 4]`, or
/// leaves `slot[..len]` alone without a tag. Returns the frame length.
fn finish_frame(slot: &mut [u8], len: usize, vlan: Option<(u16, u16)>, pad: bool) -> usize {
    let total = match vlan {
        Some((ethertype, tci)) if len >= 12 => {
            slot.copy_within(4..16, 0);
            slot[12..14].copy_from_slice(&ethertype.to_be_bytes());
            slot[14..16].copy_from_slice(&tci.to_be_bytes());
            len + 4
        }
        Some(_) => {
            slot.copy_within(4..4 + len, 0);
            len
        }
        None => len,
    };
    pad_frame(slot, total, pad)
}

fn pad_frame(slot: &mut [u8], len: usize, pad: bool) -> usize {
    if pad && len < MIN_FRAME_LEN && slot.len() >= MIN_FRAME_LEN {
        slot[len..MIN_FRAME_LEN].fill(0);
        MIN_FRAME_LEN
    } else {
        len
    }
}

fn needed_slot(len: usize, vlan: Option<(u16, u16)>, pad: bool) -> usize {
    let len = len + frame_offset(vlan);
    if pad {
        len.max(MIN_FRAME_LEN)
    } else {
        len
    }
}

fn emit_frame<D: Dma, B: NetBackend>(
    packet: &Packet,
    fragments: &[(u64, u32)],
    context: &TxContext,
    vlan: Option<(u16, u16)>,
    sink: &mut Sink<'_, D, B>,
) -> Emitted {
    let len = packet.len;
    let offset = frame_offset(vlan);
    let pad = sink.env.pad_short;
    let Some(slot) = sink.backend.tx_reserve() else {
        return Emitted::Stalled;
    };
    if slot.len() < needed_slot(len, vlan, pad) {
        sink.errors.tx_frame_exceeds_slot += 1;
        return Emitted::Dropped;
    }
    if Cursor::new(fragments)
        .read(sink.dma, &mut slot[offset..offset + len])
        .is_err()
    {
        sink.errors.tx_buffer_dma_errors += 1;
        return Emitted::Dropped;
    }
    let data = &mut slot[offset..offset + len];
    let mut offsets_ok = true;
    if let Some((css, cso, insert)) = packet.legacy {
        if insert {
            offsets_ok &= checksum::insert(data, css.into(), cso.into(), 0);
        }
    } else {
        if packet.popts & popts::TXSM != 0 {
            offsets_ok &= checksum::insert(
                data,
                context.tucss.into(),
                context.tucso.into(),
                context.tucse.into(),
            );
        }
        if packet.popts & popts::IXSM != 0 {
            offsets_ok &= checksum::insert(
                data,
                context.ipcss.into(),
                context.ipcso.into(),
                context.ipcse.into(),
            );
        }
    }
    if !offsets_ok {
        sink.errors.tx_checksum_offsets_invalid += 1;
    }
    let total = finish_frame(slot, len, vlan, pad);
    sink.stats.count_tx(total + CRC_LEN, &slot[..total.min(6)]);
    sink.backend.tx_commit(total);
    sink.committed();
    Emitted::Sent(1)
}

/// Checks a TSO context against the frame; returns (header length, MSS).
fn tso_geometry(context: &TxContext, popts_bits: u8, len: usize) -> Option<(usize, usize)> {
    let hdrlen = usize::from(context.hdrlen);
    let mss = usize::from(context.mss);
    let ipcss = usize::from(context.ipcss);
    let tucss = usize::from(context.tucss);
    let ip_header = if context.tucmd & tucmd::IP != 0 {
        20
    } else {
        40
    };
    let l4_header = if context.tucmd & tucmd::TCP != 0 {
        20
    } else {
        8
    };
    let valid = hdrlen > 0
        && mss > 0
        && hdrlen <= len
        && ipcss + ip_header <= hdrlen
        && ipcss + ip_header <= tucss
        && tucss + l4_header <= hdrlen
        && (popts_bits & popts::TXSM == 0 || usize::from(context.tucso) + 2 <= hdrlen)
        && (popts_bits & popts::IXSM == 0 || usize::from(context.ipcso) + 2 <= hdrlen);
    valid.then_some((hdrlen, mss))
}

fn get16(data: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([data[at], data[at + 1]])
}

fn put16(data: &mut [u8], at: usize, value: u16) {
    data[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

/// Sends a TSO packet as segments, skipping `skip` already sent ones.
/// Returns what happened and how many segments are sent in total.
fn emit_segments<D: Dma, B: NetBackend>(
    packet: &Packet,
    fragments: &[(u64, u32)],
    context: &TxContext,
    vlan: Option<(u16, u16)>,
    skip: u32,
    sink: &mut Sink<'_, D, B>,
) -> (Emitted, u32) {
    let Some((hdrlen, mss)) = tso_geometry(context, packet.popts, packet.len) else {
        sink.errors.tx_tso_invalid += 1;
        sink.stats.add(stat::TSCTFC, 1);
        return (Emitted::Dropped, skip);
    };
    let mut header = [0u8; 256];
    let mut cursor = Cursor::new(fragments);
    if cursor.read(sink.dma, &mut header[..hdrlen]).is_err() {
        sink.errors.tx_buffer_dma_errors += 1;
        sink.stats.add(stat::TSCTFC, 1);
        return (Emitted::Dropped, skip);
    }
    let payload = packet.len - hdrlen;
    let segments = payload.div_ceil(mss).max(1);
    let ipcss = usize::from(context.ipcss);
    let tucss = usize::from(context.tucss);
    let tucso = usize::from(context.tucso);
    let ipv4 = context.tucmd & tucmd::IP != 0;
    let tcp = context.tucmd & tucmd::TCP != 0;
    let ip_id = get16(&header, ipcss + 4);
    let seq = u32::from_be_bytes([
        header[tucss + 4],
        header[tucss + 5],
        header[tucss + 6],
        header[tucss + 7],
    ]);
    let offset = frame_offset(vlan);
    let pad = sink.env.pad_short;
    let mut sent = skip;
    cursor.skip((skip as usize).saturating_mul(mss));

    for segment in skip as usize..segments {
        let done = segment * mss;
        let chunk = mss.min(payload - done);
        let seg_len = hdrlen + chunk;
        let last = segment + 1 == segments;
        let Some(slot) = sink.backend.tx_reserve() else {
            return (Emitted::Stalled, sent);
        };
        if slot.len() < needed_slot(seg_len, vlan, pad) {
            sink.errors.tx_frame_exceeds_slot += 1;
            sink.stats.add(stat::TSCTFC, 1);
            return (Emitted::Dropped, sent);
        }
        let data = &mut slot[offset..offset + seg_len];
        data[..hdrlen].copy_from_slice(&header[..hdrlen]);
        if cursor.read(sink.dma, &mut data[hdrlen..]).is_err() {
            sink.errors.tx_buffer_dma_errors += 1;
            sink.stats.add(stat::TSCTFC, 1);
            return (Emitted::Dropped, sent);
        }
        if ipv4 {
            put16(data, ipcss + 2, (seg_len - ipcss) as u16);
            put16(data, ipcss + 4, ip_id.wrapping_add(segment as u16));
        } else {
            put16(data, ipcss + 4, (seg_len - ipcss - 40) as u16);
        }
        let l4_len = seg_len - tucss;
        if tcp {
            let seq = seq.wrapping_add(done as u32);
            data[tucss + 4..tucss + 8].copy_from_slice(&seq.to_be_bytes());
            if !last {
                data[tucss + 13] &= !TCP_FIN_PSH;
            }
        } else {
            put16(data, tucss + 4, l4_len as u16);
        }
        let mut offsets_ok = true;
        if packet.popts & popts::TXSM != 0 {
            // The guest seeded the field with the pseudo-header sum without
            // the length; add this segment's L4 length, then checksum.
            let seeded = u64::from(get16(data, tucso)) + (l4_len as u64 & 0xFFFF);
            put16(data, tucso, checksum::fold(seeded));
            offsets_ok &= checksum::insert(data, tucss, tucso, context.tucse.into());
        }
        if packet.popts & popts::IXSM != 0 {
            offsets_ok &= checksum::insert(data, ipcss, context.ipcso.into(), context.ipcse.into());
        }
        if !offsets_ok {
            sink.errors.tx_checksum_offsets_invalid += 1;
        }
        let total = finish_frame(slot, seg_len, vlan, pad);
        sink.stats.count_tx(total + CRC_LEN, &slot[..total.min(6)]);
        sink.backend.tx_commit(total);
        sink.committed();
        sent += 1;
    }
    sink.stats.add(stat::TSCTC, 1);
    (Emitted::Sent(sent - skip), sent)
}
