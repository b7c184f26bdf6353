//! Register offsets, bit names and the plain register file of the 82540EM.
//!
//! Offsets are byte offsets into BAR0 (Intel 8254x Software Developer's Manual,
//! chapter 13). Registers with side effects (ICR, EECD, MDIC, TDT, ...) are
//! handled by the device; the [`RegisterFile`] only stores values of the
//! registers that behave like memory.

/// Device Control.
pub const CTRL: u32 = 0x0000;
/// Device Status (read only).
pub const STATUS: u32 = 0x0008;
/// EEPROM/Flash Control and Data (bit-banged EEPROM access).
pub const EECD: u32 = 0x0010;
/// EEPROM Read (word reads done by the device).
pub const EERD: u32 = 0x0014;
/// Extended Device Control.
pub const CTRL_EXT: u32 = 0x0018;
/// Flash Access.
pub const FLA: u32 = 0x001C;
/// MDI Control (PHY register access).
pub const MDIC: u32 = 0x0020;
/// Flow Control Address Low.
pub const FCAL: u32 = 0x0028;
/// Flow Control Address High.
pub const FCAH: u32 = 0x002C;
/// Flow Control Type.
pub const FCT: u32 = 0x0030;
/// VLAN EtherType.
pub const VET: u32 = 0x0038;
/// Interrupt Cause Read (clear on read).
pub const ICR: u32 = 0x00C0;
/// Interrupt Throttling (minimum inter-interrupt interval, 256 ns units).
pub const ITR: u32 = 0x00C4;
/// Interrupt Cause Set (write only).
pub const ICS: u32 = 0x00C8;
/// Interrupt Mask Set/Read.
pub const IMS: u32 = 0x00D0;
/// Interrupt Mask Clear (write only).
pub const IMC: u32 = 0x00D8;
/// Receive Control.
pub const RCTL: u32 = 0x0100;
/// Flow Control Transmit Timer Value.
pub const FCTTV: u32 = 0x0170;
/// Transmit Configuration Word.
pub const TXCW: u32 = 0x0178;
/// Receive Configuration Word.
pub const RXCW: u32 = 0x0180;
/// Transmit Control.
pub const TCTL: u32 = 0x0400;
/// Transmit Inter Packet Gap.
pub const TIPG: u32 = 0x0410;
/// Adaptive IFS Throttle.
pub const AIFS: u32 = 0x0458;
/// LED Control.
pub const LEDCTL: u32 = 0x0E00;
/// Packet Buffer Allocation.
pub const PBA: u32 = 0x1000;
/// Flow Control Receive Threshold Low.
pub const FCRTL: u32 = 0x2160;
/// Flow Control Receive Threshold High.
pub const FCRTH: u32 = 0x2168;
/// Receive Descriptor Base Address Low.
pub const RDBAL: u32 = 0x2800;
/// Receive Descriptor Base Address High.
pub const RDBAH: u32 = 0x2804;
/// Receive Descriptor Length (bytes, multiple of 128).
pub const RDLEN: u32 = 0x2808;
/// Receive Descriptor Head.
pub const RDH: u32 = 0x2810;
/// Receive Descriptor Tail.
pub const RDT: u32 = 0x2818;
/// Receive Delay Timer (packet timer, 1.024 us units).
pub const RDTR: u32 = 0x2820;
/// Receive Descriptor Control.
pub const RXDCTL: u32 = 0x2828;
/// Receive Interrupt Absolute Delay Timer (1.024 us units).
pub const RADV: u32 = 0x282C;
/// Receive Small Packet Detect Interrupt.
pub const RSRPD: u32 = 0x2C00;
/// Transmit DMA Control.
pub const TXDMAC: u32 = 0x3000;
/// Transmit Descriptor Base Address Low.
pub const TDBAL: u32 = 0x3800;
/// Transmit Descriptor Base Address High.
pub const TDBAH: u32 = 0x3804;
/// Transmit Descriptor Length (bytes, multiple of 128).
pub const TDLEN: u32 = 0x3808;
/// Transmit Descriptor Head.
pub const TDH: u32 = 0x3810;
/// Transmit Descriptor Tail.
pub const TDT: u32 = 0x3818;
/// Transmit Interrupt Delay Value (1.024 us units).
pub const TIDV: u32 = 0x3820;
/// Transmit Descriptor Control.
pub const TXDCTL: u32 = 0x3828;
/// Transmit Absolute Interrupt Delay Value (1.024 us units).
pub const TADV: u32 = 0x382C;
/// TCP Segmentation Pad and Minimum Threshold.
pub const TSPMT: u32 = 0x3830;
/// First statistics register (CRCERRS).
pub const STATS_START: u32 = 0x4000;
/// One past the last statistics register.
pub const STATS_END: u32 = 0x4100;
/// Receive Checksum Control.
pub const RXCSUM: u32 = 0x5000;
/// Multicast Table Array, 128 words.
pub const MTA: u32 = 0x5200;
/// Number of MTA words.
pub const MTA_LEN: u32 = 128;
/// Receive Address Low of entry 0 (RAL n at `RA + 8n`, RAH n at `RA + 8n + 4`).
pub const RA: u32 = 0x5400;
/// Number of receive address entries.
pub const RA_ENTRIES: u32 = 16;
/// VLAN Filter Table Array, 128 words.
pub const VFTA: u32 = 0x5600;
/// Number of VFTA words.
pub const VFTA_LEN: u32 = 128;
/// Wakeup Control.
pub const WUC: u32 = 0x5800;
/// Wakeup Filter Control.
pub const WUFC: u32 = 0x5808;
/// Wakeup Status.
pub const WUS: u32 = 0x5810;
/// Management Control.
pub const MANC: u32 = 0x5820;
/// IP Address Valid.
pub const IPAV: u32 = 0x5838;
/// IPv4 Address Table (4 entries, stride 8).
pub const IP4AT: u32 = 0x5840;
/// IPv6 Address Table (4 words).
pub const IP6AT: u32 = 0x5880;
/// Wakeup Packet Length.
pub const WUPL: u32 = 0x5900;
/// Wakeup Packet Memory (32 words).
pub const WUPM: u32 = 0x5A00;
/// Flexible Filter Length Table (4 entries, stride 8).
pub const FFLT: u32 = 0x5F00;
/// Flexible Filter Mask Table (128 entries, stride 8).
pub const FFMT: u32 = 0x9000;
/// Flexible Filter Value Table (128 entries, stride 8).
pub const FFVT: u32 = 0x9800;
/// Size of BAR0 in bytes (128 KiB).
pub const MMIO_SIZE: u32 = 0x2_0000;
/// Size of BAR1 (I/O) in bytes.
pub const IO_SIZE: u32 = 64;
/// BAR1 offset of IOADDR (selects the register IODATA accesses).
pub const IOADDR: u32 = 0x00;
/// BAR1 offset of IODATA.
pub const IODATA: u32 = 0x04;
/// CSB paravirtual extension: CSB address low; writing it (re)maps the CSB
/// (see `csb`).
pub const CSBAL: u32 = 0x2830;
/// CSB paravirtual extension: CSB address high, written before CSBAL.
pub const CSBAH: u32 = 0x2834;

/// CTRL bits.
pub mod ctrl {
    /// Full duplex.
    pub const FD: u32 = 1 << 0;
    /// Link reset.
    pub const LRST: u32 = 1 << 3;
    /// Auto-speed detection enable.
    pub const ASDE: u32 = 1 << 5;
    /// Set link up.
    pub const SLU: u32 = 1 << 6;
    /// Device reset (self clearing).
    pub const RST: u32 = 1 << 26;
    /// VLAN mode enable (tag insertion and stripping).
    pub const VME: u32 = 1 << 30;
    /// PHY reset.
    pub const PHY_RST: u32 = 1 << 31;
}

/// CTRL_EXT bits.
pub mod ctrl_ext {
    /// EEPROM reset: reload from the EEPROM (self clearing).
    pub const EE_RST: u32 = 1 << 13;
}

/// STATUS bits.
pub mod status {
    /// Full duplex.
    pub const FD: u32 = 1 << 0;
    /// Link up.
    pub const LU: u32 = 1 << 1;
    /// Speed field value for 1000 Mb/s (bits 7:6 = 10b).
    pub const SPEED_1000: u32 = 1 << 7;
    /// Auto-speed detection value 1000 Mb/s (bits 9:8 = 10b).
    pub const ASDV_1000: u32 = 1 << 9;
}

/// Interrupt cause bits (ICR, ICS, IMS, IMC).
pub mod icr {
    /// Transmit descriptor written back.
    pub const TXDW: u32 = 1 << 0;
    /// Transmit queue empty.
    pub const TXQE: u32 = 1 << 1;
    /// Link status change.
    pub const LSC: u32 = 1 << 2;
    /// Receive sequence error.
    pub const RXSEQ: u32 = 1 << 3;
    /// Receive descriptor minimum threshold reached.
    pub const RXDMT0: u32 = 1 << 4;
    /// Receiver overrun.
    pub const RXO: u32 = 1 << 6;
    /// Receiver timer interrupt (packet received).
    pub const RXT0: u32 = 1 << 7;
    /// MDI access complete.
    pub const MDAC: u32 = 1 << 9;
    /// Receiving /C/ ordered sets.
    pub const RXCFG: u32 = 1 << 10;
    /// Transmit descriptor low threshold.
    pub const TXD_LOW: u32 = 1 << 15;
    /// Small receive packet detected.
    pub const SRPD: u32 = 1 << 16;
    /// Every cause bit the 82540EM implements.
    pub const VALID: u32 = 0x0001_F6DF;
}

/// RCTL bits and fields.
pub mod rctl {
    /// Receiver enable.
    pub const EN: u32 = 1 << 1;
    /// Store bad packets.
    pub const SBP: u32 = 1 << 2;
    /// Unicast promiscuous.
    pub const UPE: u32 = 1 << 3;
    /// Multicast promiscuous.
    pub const MPE: u32 = 1 << 4;
    /// Long packet enable.
    pub const LPE: u32 = 1 << 5;
    /// Receive descriptor minimum threshold size (bits 9:8).
    pub const RDMTS_SHIFT: u32 = 8;
    /// Multicast offset (bits 13:12).
    pub const MO_SHIFT: u32 = 12;
    /// Broadcast accept mode.
    pub const BAM: u32 = 1 << 15;
    /// Receive buffer size (bits 17:16).
    pub const BSIZE_SHIFT: u32 = 16;
    /// VLAN filter enable.
    pub const VFE: u32 = 1 << 18;
    /// Buffer size extension.
    pub const BSEX: u32 = 1 << 25;
    /// Strip Ethernet CRC.
    pub const SECRC: u32 = 1 << 26;
}

/// TCTL bits.
pub mod tctl {
    /// Transmit enable.
    pub const EN: u32 = 1 << 1;
    /// Pad short packets.
    pub const PSP: u32 = 1 << 3;
}

/// RAH bits.
pub mod rah {
    /// Address valid.
    pub const AV: u32 = 1 << 31;
    /// Writable bits: address high 16 bits, address select, AV.
    pub const WRITABLE: u32 = 0x8003_FFFF;
    /// Address select field (bits 17:16); 00b means destination address.
    pub const ASEL_MASK: u32 = 0x3_0000;
}

/// RDTR bits.
pub mod rdtr {
    /// Flush partial descriptor block: fire the receive timer now.
    pub const FPD: u32 = 1 << 31;
}

/// Mask of the descriptor ring length registers (bits 19:7).
pub const RING_LEN_MASK: u32 = 0x000F_FF80;
/// Mask of the descriptor ring base low registers (16-byte alignment).
pub const RING_BASE_LOW_MASK: u32 = !0xF;
/// Mask of head and tail registers (bits 15:0).
pub const RING_INDEX_MASK: u32 = 0xFFFF;

/// Number of 32-bit words in BAR0.
const WORDS: usize = (MMIO_SIZE / 4) as usize;

/// Value of every storage register after reset, other than 0.
const RESET_VALUES: &[(u32, u32)] = &[
    // Full duplex, auto-speed detection, link up (as loaded from the EEPROM).
    (CTRL, ctrl::FD | ctrl::ASDE | ctrl::SLU),
    (VET, 0x8100),
    // 48 KiB receive, 16 KiB transmit packet buffer.
    (PBA, 0x0030),
];

/// Whether `offset` (4-byte aligned) names a register that simply stores what
/// is written to it.
pub fn is_storage_register(offset: u32) -> bool {
    matches!(
        offset,
        CTRL_EXT
            | FLA
            | FCAL
            | FCAH
            | FCT
            | VET
            | RCTL
            | FCTTV
            | TXCW
            | RXCW
            | TCTL
            | TIPG
            | AIFS
            | LEDCTL
            | PBA
            | FCRTL
            | FCRTH
            | RDBAL
            | RDBAH
            | RDLEN
            | RDH
            | RDT
            | RXDCTL
            | RSRPD
            | TXDMAC
            | TDBAL
            | TDBAH
            | TDLEN
            | TDH
            | TDT
            | TXDCTL
            | TSPMT
            | RXCSUM
            | WUC
            | WUFC
            | WUS
            | MANC
            | IPAV
            | WUPL
    ) || in_table(offset, MTA, MTA_LEN, 4)
        || in_table(offset, RA, RA_ENTRIES * 2, 4)
        || in_table(offset, VFTA, VFTA_LEN, 4)
        || in_table(offset, IP4AT, 4, 8)
        || in_table(offset, IP6AT, 4, 4)
        || in_table(offset, WUPM, 32, 4)
        || in_table(offset, FFLT, 4, 8)
        || in_table(offset, FFMT, 128, 8)
        || in_table(offset, FFVT, 128, 8)
}

/// Whether `offset` is one of `count` entries of `stride` bytes from `base`.
fn in_table(offset: u32, base: u32, count: u32, stride: u32) -> bool {
    offset >= base && offset < base + count * stride && (offset - base).is_multiple_of(stride)
}

/// The storage registers of BAR0, one 32-bit word per 4-byte offset.
#[derive(Clone)]
pub struct RegisterFile {
    words: Box<[u32]>,
}

impl Default for RegisterFile {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for RegisterFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisterFile").finish_non_exhaustive()
    }
}

impl RegisterFile {
    /// A register file holding the reset values.
    pub fn new() -> Self {
        let mut file = Self {
            words: vec![0; WORDS].into_boxed_slice(),
        };
        file.reset();
        file
    }

    /// Restores every register to its reset value.
    pub fn reset(&mut self) {
        self.words.fill(0);
        for &(offset, value) in RESET_VALUES {
            self.set(offset, value);
        }
    }

    /// The value at `offset` (0 for offsets outside BAR0).
    #[inline]
    pub fn get(&self, offset: u32) -> u32 {
        self.words.get((offset / 4) as usize).copied().unwrap_or(0)
    }

    /// Stores `value` at `offset` (ignored outside BAR0).
    #[inline]
    pub fn set(&mut self, offset: u32, value: u32) {
        if let Some(word) = self.words.get_mut((offset / 4) as usize) {
            *word = value;
        }
    }

    /// Receive address entry `n` as (RAL, RAH).
    #[inline]
    pub fn receive_address(&self, n: u32) -> (u32, u32) {
        (self.get(RA + 8 * n), self.get(RA + 8 * n + 4))
    }

    /// 64-bit descriptor ring base from a low/high register pair.
    #[inline]
    pub fn ring_base(&self, low: u32, high: u32) -> u64 {
        (u64::from(self.get(high)) << 32) | u64::from(self.get(low) & RING_BASE_LOW_MASK)
    }
}
