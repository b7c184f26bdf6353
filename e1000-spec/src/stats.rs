//! The statistics registers (manual chapter 13): 32-bit counters at
//! [`START`]..[`END`], clear on read; the 64-bit octet counters are a low
//! and a high register (the high one follows the low one).

/// First statistics register (CRCERRS).
pub const START: u32 = 0x4000;
/// One past the last statistics register.
pub const END: u32 = 0x4100;
/// Offsets in `START..END` that are no register.
pub const RESERVED: [u32; 6] = [0x4024, 0x402C, 0x4044, 0x4084, 0x4098, 0x409C];
/// Low halves of the 64-bit counters (the high half is at `low + 4`).
pub const WIDE_LOW: [u32; 4] = [GORCL, GOTCL, TORL, TOTL];

/// CRC error count.
pub const CRCERRS: u32 = 0x4000;
/// Alignment error count.
pub const ALGNERRC: u32 = 0x4004;
/// Symbol error count.
pub const SYMERRS: u32 = 0x4008;
/// Receive error count.
pub const RXERRC: u32 = 0x400C;
/// Missed packets count.
pub const MPC: u32 = 0x4010;
/// Single collision count.
pub const SCC: u32 = 0x4014;
/// Excessive collisions count.
pub const ECOL: u32 = 0x4018;
/// Multiple collision count.
pub const MCC: u32 = 0x401C;
/// Late collisions count.
pub const LATECOL: u32 = 0x4020;
/// Collision count.
pub const COLC: u32 = 0x4028;
/// Defer count.
pub const DC: u32 = 0x4030;
/// Transmit with no CRS.
pub const TNCRS: u32 = 0x4034;
/// Sequence error count.
pub const SEC: u32 = 0x4038;
/// Carrier extension error count.
pub const CEXTERR: u32 = 0x403C;
/// Receive length error count.
pub const RLEC: u32 = 0x4040;
/// XON received count.
pub const XONRXC: u32 = 0x4048;
/// XON transmitted count.
pub const XONTXC: u32 = 0x404C;
/// XOFF received count.
pub const XOFFRXC: u32 = 0x4050;
/// XOFF transmitted count.
pub const XOFFTXC: u32 = 0x4054;
/// Flow control receive unsupported count.
pub const FCRUC: u32 = 0x4058;
/// Packets received, 64 bytes.
pub const PRC64: u32 = 0x405C;
/// Packets received, 65..127 bytes.
pub const PRC127: u32 = 0x4060;
/// Packets received, 128..255 bytes.
pub const PRC255: u32 = 0x4064;
/// Packets received, 256..511 bytes.
pub const PRC511: u32 = 0x4068;
/// Packets received, 512..1023 bytes.
pub const PRC1023: u32 = 0x406C;
/// Packets received, 1024..1522 bytes.
pub const PRC1522: u32 = 0x4070;
/// Good packets received.
pub const GPRC: u32 = 0x4074;
/// Broadcast packets received.
pub const BPRC: u32 = 0x4078;
/// Multicast packets received.
pub const MPRC: u32 = 0x407C;
/// Good packets transmitted.
pub const GPTC: u32 = 0x4080;
/// Good octets received, low.
pub const GORCL: u32 = 0x4088;
/// Good octets received, high.
pub const GORCH: u32 = 0x408C;
/// Good octets transmitted, low.
pub const GOTCL: u32 = 0x4090;
/// Good octets transmitted, high.
pub const GOTCH: u32 = 0x4094;
/// Receive no buffers count.
pub const RNBC: u32 = 0x40A0;
/// Receive undersize count.
pub const RUC: u32 = 0x40A4;
/// Receive fragment count.
pub const RFC: u32 = 0x40A8;
/// Receive oversize count.
pub const ROC: u32 = 0x40AC;
/// Receive jabber count.
pub const RJC: u32 = 0x40B0;
/// Management packets received.
pub const MGTPRC: u32 = 0x40B4;
/// Management packets dropped.
pub const MGTPDC: u32 = 0x40B8;
/// Management packets transmitted.
pub const MGTPTC: u32 = 0x40BC;
/// Total octets received, low.
pub const TORL: u32 = 0x40C0;
/// Total octets received, high.
pub const TORH: u32 = 0x40C4;
/// Total octets transmitted, low.
pub const TOTL: u32 = 0x40C8;
/// Total octets transmitted, high.
pub const TOTH: u32 = 0x40CC;
/// Total packets received.
pub const TPR: u32 = 0x40D0;
/// Total packets transmitted.
pub const TPT: u32 = 0x40D4;
/// Packets transmitted, 64 bytes.
pub const PTC64: u32 = 0x40D8;
/// Packets transmitted, 65..127 bytes.
pub const PTC127: u32 = 0x40DC;
/// Packets transmitted, 128..255 bytes.
pub const PTC255: u32 = 0x40E0;
/// Packets transmitted, 256..511 bytes.
pub const PTC511: u32 = 0x40E4;
/// Packets transmitted, 512..1023 bytes.
pub const PTC1023: u32 = 0x40E8;
/// Packets transmitted, 1024..1522 bytes.
pub const PTC1522: u32 = 0x40EC;
/// Multicast packets transmitted.
pub const MPTC: u32 = 0x40F0;
/// Broadcast packets transmitted.
pub const BPTC: u32 = 0x40F4;
/// TCP segmentation contexts transmitted.
pub const TSCTC: u32 = 0x40F8;
/// TCP segmentation contexts failed.
pub const TSCTFC: u32 = 0x40FC;
