//! BAR0 register offsets and their bits and fields (manual chapter 13), the
//! I/O BAR window, and the units of the interrupt moderation registers.
//!
//! Offsets are byte offsets into BAR0; every register is 32 bits wide. The
//! statistics registers are in [`crate::stats`], the CSB extension's
//! registers in [`crate::csb`].

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
/// Receive Checksum Control.
pub const RXCSUM: u32 = 0x5000;
/// Multicast Table Array, [`MTA_LEN`] words.
pub const MTA: u32 = 0x5200;
/// Number of MTA words.
pub const MTA_LEN: u32 = 128;
/// Receive Address Low of entry 0; entry `n` is at [`ra_low`]`(n)` and
/// [`ra_high`]`(n)`.
pub const RA: u32 = 0x5400;
/// Bytes between two receive address entries (RAL n, RAH n).
pub const RA_STRIDE: u32 = 8;
/// Number of receive address entries.
pub const RA_ENTRIES: u32 = 16;
/// VLAN Filter Table Array, [`VFTA_LEN`] words.
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
/// IPv4 Address Table ([`IP4AT_ENTRIES`] entries, [`WAKEUP_TABLE_STRIDE`]
/// apart).
pub const IP4AT: u32 = 0x5840;
/// Number of IP4AT entries.
pub const IP4AT_ENTRIES: u32 = 4;
/// IPv6 Address Table ([`IP6AT_WORDS`] words).
pub const IP6AT: u32 = 0x5880;
/// Number of IP6AT words.
pub const IP6AT_WORDS: u32 = 4;
/// Wakeup Packet Length.
pub const WUPL: u32 = 0x5900;
/// Wakeup Packet Memory ([`WUPM_WORDS`] words).
pub const WUPM: u32 = 0x5A00;
/// Number of WUPM words.
pub const WUPM_WORDS: u32 = 32;
/// Flexible Filter Length Table ([`FFLT_ENTRIES`] entries,
/// [`WAKEUP_TABLE_STRIDE`] apart).
pub const FFLT: u32 = 0x5F00;
/// Number of FFLT entries.
pub const FFLT_ENTRIES: u32 = 4;
/// Flexible Filter Mask Table ([`FFMT_ENTRIES`] entries,
/// [`WAKEUP_TABLE_STRIDE`] apart).
pub const FFMT: u32 = 0x9000;
/// Number of FFMT entries.
pub const FFMT_ENTRIES: u32 = 128;
/// Flexible Filter Value Table ([`FFVT_ENTRIES`] entries,
/// [`WAKEUP_TABLE_STRIDE`] apart).
pub const FFVT: u32 = 0x9800;
/// Number of FFVT entries.
pub const FFVT_ENTRIES: u32 = 128;
/// Bytes between two entries of IP4AT, FFLT, FFMT and FFVT.
pub const WAKEUP_TABLE_STRIDE: u32 = 8;

/// Size of BAR0 (memory) in bytes: 128 KiB.
pub const MMIO_SIZE: u32 = 0x2_0000;
/// Size of BAR1 (I/O) in bytes.
pub const IO_SIZE: u32 = 64;
/// BAR1 offset of IOADDR (selects the register IODATA accesses).
pub const IOADDR: u32 = 0x00;
/// BAR1 offset of IODATA.
pub const IODATA: u32 = 0x04;

/// Offset of RAL `n` (receive address low, entry `n`).
pub const fn ra_low(n: u32) -> u32 {
    RA + RA_STRIDE * n
}

/// Offset of RAH `n` (receive address high, entry `n`).
pub const fn ra_high(n: u32) -> u32 {
    RA + RA_STRIDE * n + 4
}

/// Mask of the descriptor ring length registers TDLEN/RDLEN (bits 19:7: a
/// multiple of 128 bytes, i.e. of 8 descriptors).
pub const RING_LEN_MASK: u32 = 0x000F_FF80;
/// Mask of the descriptor ring base low registers TDBAL/RDBAL (16-byte
/// alignment).
pub const RING_BASE_LOW_MASK: u32 = !0xF;
/// Mask of the head and tail registers TDH/TDT/RDH/RDT (bits 15:0).
pub const RING_INDEX_MASK: u32 = 0xFFFF;

/// Reset values (other than 0) of registers that store what is written.
pub mod reset {
    /// VET: the 802.1Q EtherType.
    pub const VET: u32 = 0x8100;
    /// PBA: 48 KiB receive, 16 KiB transmit packet buffer.
    pub const PBA: u32 = 0x0030;
}

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

/// STATUS bits and fields.
pub mod status {
    /// Full duplex.
    pub const FD: u32 = 1 << 0;
    /// Link up.
    pub const LU: u32 = 1 << 1;
    /// The speed field (bits 7:6).
    pub const SPEED_MASK: u32 = 3 << 6;
    /// Speed field value for 1000 Mb/s (bits 7:6 = 10b).
    pub const SPEED_1000: u32 = 2 << 6;
    /// Auto-speed detection value 1000 Mb/s (bits 9:8 = 10b).
    pub const ASDV_1000: u32 = 2 << 8;
}

/// EECD bits (the EEPROM's pins, bit-banged by software; see
/// [`crate::eeprom`] for the Microwire protocol).
pub mod eecd {
    /// Clock input to the EEPROM.
    pub const SK: u32 = 1 << 0;
    /// Chip select.
    pub const CS: u32 = 1 << 1;
    /// Data input to the EEPROM.
    pub const DI: u32 = 1 << 2;
    /// Data output from the EEPROM.
    pub const DO: u32 = 1 << 3;
    /// Flash write enable control (bits 5:4).
    pub const FWE_MASK: u32 = 3 << 4;
    /// Request direct EEPROM access.
    pub const REQ: u32 = 1 << 6;
    /// Direct access granted.
    pub const GNT: u32 = 1 << 7;
    /// EEPROM present.
    pub const PRES: u32 = 1 << 8;
    /// EEPROM size: 0 for a 64-word part with 6 address bits.
    pub const EE_SIZE: u32 = 1 << 9;
}

/// EERD bits and fields (82540 layout).
pub mod eerd {
    /// Start a read.
    pub const START: u32 = 1 << 0;
    /// Read done.
    pub const DONE: u32 = 1 << 4;
    /// Word address field shift (bits 15:8).
    pub const ADDR_SHIFT: u32 = 8;
    /// Word address field mask, after the shift.
    pub const ADDR_MASK: u32 = 0xFF;
    /// Data field shift (bits 31:16).
    pub const DATA_SHIFT: u32 = 16;
}

/// MDIC fields (the PHY's registers are in [`crate::phy`]).
pub mod mdic {
    /// Data (bits 15:0).
    pub const DATA_MASK: u32 = 0xFFFF;
    /// PHY register address shift (bits 20:16).
    pub const REG_SHIFT: u32 = 16;
    /// PHY register address mask, after the shift.
    pub const REG_MASK: u32 = 0x1F;
    /// PHY address shift (bits 25:21).
    pub const PHY_SHIFT: u32 = 21;
    /// PHY address mask, after the shift.
    pub const PHY_MASK: u32 = 0x1F;
    /// The opcode field (bits 27:26).
    pub const OP_MASK: u32 = 3 << 26;
    /// Opcode write (bits 27:26 = 01b).
    pub const OP_WRITE: u32 = 1 << 26;
    /// Opcode read (bits 27:26 = 10b).
    pub const OP_READ: u32 = 2 << 26;
    /// Ready: the operation completed.
    pub const READY: u32 = 1 << 28;
    /// Raise ICR.MDAC on completion.
    pub const INTERRUPT: u32 = 1 << 29;
    /// Error: no PHY answered.
    pub const ERROR: u32 = 1 << 30;
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
    /// Receiver overrun (no free descriptors).
    pub const RXO: u32 = 1 << 6;
    /// Receiver timer interrupt (a frame was received).
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
    /// Receive descriptor minimum threshold size field shift (bits 9:8).
    pub const RDMTS_SHIFT: u32 = 8;
    /// Receive descriptor minimum threshold size field.
    pub const RDMTS_MASK: u32 = 3 << RDMTS_SHIFT;
    /// RDMTS: threshold at 1/2 of the ring.
    pub const RDMTS_HALF: u32 = 0 << RDMTS_SHIFT;
    /// RDMTS: threshold at 1/4 of the ring.
    pub const RDMTS_QUARTER: u32 = 1 << RDMTS_SHIFT;
    /// RDMTS: threshold at 1/8 of the ring.
    pub const RDMTS_EIGHTH: u32 = 2 << RDMTS_SHIFT;
    /// Multicast offset field shift (bits 13:12).
    pub const MO_SHIFT: u32 = 12;
    /// Broadcast accept mode.
    pub const BAM: u32 = 1 << 15;
    /// Receive buffer size field shift (bits 17:16).
    pub const BSIZE_SHIFT: u32 = 16;
    /// Receive buffer size field.
    pub const BSIZE_MASK: u32 = 3 << BSIZE_SHIFT;
    /// VLAN filter enable.
    pub const VFE: u32 = 1 << 18;
    /// Buffer size extension (multiplies BSIZE by 16).
    pub const BSEX: u32 = 1 << 25;
    /// Strip Ethernet CRC.
    pub const SECRC: u32 = 1 << 26;
    /// Buffer size encodings (BSIZE and BSEX together, i.e. the value of
    /// `rctl & (BSIZE_MASK | BSEX)`); `BSEX` with BSIZE 00b is reserved.
    pub mod bsize {
        use super::{BSEX, BSIZE_SHIFT};
        /// 2048-byte buffers (BSIZE 00b).
        pub const B2048: u32 = 0;
        /// 1024-byte buffers (BSIZE 01b).
        pub const B1024: u32 = 1 << BSIZE_SHIFT;
        /// 512-byte buffers (BSIZE 10b).
        pub const B512: u32 = 2 << BSIZE_SHIFT;
        /// 256-byte buffers (BSIZE 11b).
        pub const B256: u32 = 3 << BSIZE_SHIFT;
        /// 16384-byte buffers (BSEX, BSIZE 01b).
        pub const B16384: u32 = BSEX | 1 << BSIZE_SHIFT;
        /// 8192-byte buffers (BSEX, BSIZE 10b).
        pub const B8192: u32 = BSEX | 2 << BSIZE_SHIFT;
        /// 4096-byte buffers (BSEX, BSIZE 11b).
        pub const B4096: u32 = BSEX | 3 << BSIZE_SHIFT;
    }
}

/// TCTL bits and fields.
pub mod tctl {
    /// Transmit enable.
    pub const EN: u32 = 1 << 1;
    /// Pad short packets.
    pub const PSP: u32 = 1 << 3;
    /// Collision threshold field shift (bits 11:4).
    pub const CT_SHIFT: u32 = 4;
    /// Collision distance field shift (bits 21:12).
    pub const COLD_SHIFT: u32 = 12;
}

/// TIPG fields (inter-packet gap, in byte times).
pub mod tipg {
    /// IPG transmit time field shift (bits 9:0).
    pub const IPGT_SHIFT: u32 = 0;
    /// IPG receive time 1 field shift (bits 19:10).
    pub const IPGR1_SHIFT: u32 = 10;
    /// IPG receive time 2 field shift (bits 29:20).
    pub const IPGR2_SHIFT: u32 = 20;
    /// The three fields; bits 31:30 are reserved (read as 0).
    pub const WRITABLE: u32 = 0x3FFF_FFFF;
}

/// RAH bits.
pub mod rah {
    /// Address valid.
    pub const AV: u32 = 1 << 31;
    /// Address select field (bits 17:16); 00b means destination address.
    pub const ASEL_MASK: u32 = 0x3_0000;
    /// Writable bits: address high 16 bits, address select, AV.
    pub const WRITABLE: u32 = 0x8003_FFFF;
    /// The address's high 16 bits (bytes 4 and 5 of the MAC).
    pub const ADDRESS_HIGH_MASK: u32 = 0xFFFF;
}

/// RDTR bits.
pub mod rdtr {
    /// Flush partial descriptor block: fire the receive timer now.
    pub const FPD: u32 = 1 << 31;
}

/// Units and fields of the interrupt moderation registers ITR, TIDV, TADV,
/// RDTR and RADV (manual 3.4 and 13.4).
pub mod moderation {
    /// ITR unit in nanoseconds.
    pub const ITR_UNIT_NS: u64 = 256;
    /// TIDV/TADV/RDTR/RADV unit in nanoseconds (1.024 us).
    pub const DELAY_UNIT_NS: u64 = 1024;
    /// The 16-bit interval field of every moderation register.
    pub const INTERVAL_MASK: u32 = 0xFFFF;
}
