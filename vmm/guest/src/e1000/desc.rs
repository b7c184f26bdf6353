//! Legacy TX and RX descriptors (16 bytes each) and the DMA memory that holds
//! the rings and packet buffers.

use super::csb::CsbPage;
use crate::cell::TakeOnce;
use core::mem::{offset_of, size_of};
use e1000_spec::desc::{self, rx, tx};

/// TX descriptors in the ring (a multiple of 8: TDLEN must be a multiple of
/// [`desc::RING_LEN_ALIGN`] bytes). Large, so that send combining queues
/// large batches and, in CSB mode, one poll-port exit (~100 us on this
/// host) or one wake-up of the device's worker moves thousands of frames:
/// measured VM to VM at 64 bytes, 512-entry rings gave 1.7 Mpps,
/// 2048-entry rings 2.5-2.8 Mpps; 4096 entries halve the exits per frame
/// again when the device has a backlog.
pub const TX_RING_SIZE: usize = 4096;
/// RX descriptors in the ring. Large, to absorb what arrives while the
/// vCPU is descheduled or in an exit (a millisecond or more on a busy
/// 2-core host), and to leave room to return buffers in batches. As large
/// as the VMM's switch port (4096 slots), so that one poll-port exit can
/// take everything the port holds.
pub const RX_RING_SIZE: usize = 4096;
/// Bytes per packet buffer (RCTL.BSIZE = 2048: [`RCTL_BSIZE`]).
pub const BUF_SIZE: usize = 2048;
/// The RCTL buffer size field that matches [`BUF_SIZE`].
pub const RCTL_BSIZE: u32 = e1000_spec::regs::rctl::bsize::B2048;

/// A legacy transmit descriptor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C, align(16))]
pub struct TxDesc {
    /// Buffer physical address.
    pub addr: u64,
    /// Bytes in the buffer.
    pub length: u16,
    /// Checksum offset (unused).
    pub cso: u8,
    /// Command bits ([`tx::cmd`]).
    pub cmd: u8,
    /// Status bits ([`tx::status`]), written back by the device.
    pub status: u8,
    /// Checksum start (unused).
    pub css: u8,
    /// VLAN tag (unused).
    pub special: u16,
}

/// A legacy receive descriptor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C, align(16))]
pub struct RxDesc {
    /// Buffer physical address.
    pub addr: u64,
    /// Bytes received, written back.
    pub length: u16,
    /// Packet checksum, written back.
    pub csum: u16,
    /// Status bits ([`rx::status`]), written back.
    pub status: u8,
    /// Error bits ([`rx::errors`]), written back.
    pub errors: u8,
    /// VLAN tag, written back.
    pub special: u16,
}

// Ring lengths in bytes are what TDLEN/RDLEN accept.
const _: () = assert!((TX_RING_SIZE * desc::SIZE).is_multiple_of(desc::RING_LEN_ALIGN));
const _: () = assert!((RX_RING_SIZE * desc::SIZE).is_multiple_of(desc::RING_LEN_ALIGN));

// The structs are the layouts of e1000_spec::desc, field by field.
const _: () = assert!(size_of::<TxDesc>() == desc::SIZE && size_of::<RxDesc>() == desc::SIZE);
const _: () = assert!(
    offset_of!(TxDesc, addr) == tx::ADDR
        && offset_of!(TxDesc, length) == tx::LENGTH
        && offset_of!(TxDesc, cso) == tx::CSO
        && offset_of!(TxDesc, cmd) == tx::CMD
        && offset_of!(TxDesc, status) == tx::STATUS
        && offset_of!(TxDesc, css) == tx::CSS
        && offset_of!(TxDesc, special) == tx::SPECIAL
);
const _: () = assert!(
    offset_of!(RxDesc, addr) == rx::ADDR
        && offset_of!(RxDesc, length) == rx::LENGTH
        && offset_of!(RxDesc, csum) == rx::CSUM
        && offset_of!(RxDesc, status) == rx::STATUS
        && offset_of!(RxDesc, errors) == rx::ERRORS
        && offset_of!(RxDesc, special) == rx::SPECIAL
);

const TX_ZERO: TxDesc = TxDesc {
    addr: 0,
    length: 0,
    cso: 0,
    cmd: 0,
    status: 0,
    css: 0,
    special: 0,
};
const RX_ZERO: RxDesc = RxDesc {
    addr: 0,
    length: 0,
    csum: 0,
    status: 0,
    errors: 0,
    special: 0,
};

/// Everything the device reads or writes by DMA, page aligned, in `.bss`
/// (identity mapped: a pointer is the physical address).
#[repr(C, align(4096))]
pub struct DmaMemory {
    /// The CSB page (paravirtual extension; used with `txmode=csb`).
    pub csb: CsbPage,
    /// The TX descriptor ring.
    pub tx_desc: [TxDesc; TX_RING_SIZE],
    /// The RX descriptor ring.
    pub rx_desc: [RxDesc; RX_RING_SIZE],
    /// One TX buffer per TX descriptor.
    pub tx_buf: [[u8; BUF_SIZE]; TX_RING_SIZE],
    /// One RX buffer per RX descriptor.
    pub rx_buf: [[u8; BUF_SIZE]; RX_RING_SIZE],
}

/// The guest's only DMA memory.
pub static DMA: TakeOnce<DmaMemory> = TakeOnce::new(DmaMemory {
    csb: CsbPage::new(),
    tx_desc: [TX_ZERO; TX_RING_SIZE],
    rx_desc: [RX_ZERO; RX_RING_SIZE],
    tx_buf: [[0; BUF_SIZE]; TX_RING_SIZE],
    rx_buf: [[0; BUF_SIZE]; RX_RING_SIZE],
});
