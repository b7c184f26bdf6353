//! Descriptor layouts (manual chapter 3): byte offsets of the fields inside
//! a descriptor, and their bits.
//!
//! Every descriptor is [`SIZE`] bytes, little-endian. Receive descriptors
//! have one (legacy) layout, [`rx`]. Transmit descriptors have three: the
//! legacy one ([`tx`], `DEXT` clear in its command byte) and two extended
//! ones (`DEXT` set) told apart by the DTYP field ([`ext`]): the TCP/IP
//! context descriptor ([`context`]) and the TCP/IP data descriptor
//! ([`data`]). The command byte is at the same offset (11) in all three.

/// Bytes in every descriptor (legacy and extended, receive and transmit).
pub const SIZE: usize = 16;
/// Granularity of TDLEN and RDLEN in bytes: rings are a multiple of 8
/// descriptors.
pub const RING_LEN_ALIGN: usize = 128;

/// The legacy receive descriptor: the driver writes the buffer address, the
/// device writes back the rest.
pub mod rx {
    /// Buffer address (u64).
    pub const ADDR: usize = 0;
    /// Bytes written to the buffer (u16), written back.
    pub const LENGTH: usize = 8;
    /// Packet checksum (u16), written back.
    pub const CSUM: usize = 10;
    /// Status bits ([`status`], u8), written back.
    pub const STATUS: usize = 12;
    /// Error bits ([`errors`], u8), written back.
    pub const ERRORS: usize = 13;
    /// VLAN tag of a stripped 802.1Q header (u16), written back.
    pub const SPECIAL: usize = 14;

    /// Receive status bits.
    pub mod status {
        /// Descriptor done.
        pub const DD: u8 = 0x01;
        /// End of packet: the last descriptor of a frame.
        pub const EOP: u8 = 0x02;
        /// Ignore checksum indication.
        pub const IXSM: u8 = 0x04;
        /// The frame had an 802.1Q tag, stripped into the special field.
        pub const VP: u8 = 0x08;
        /// TCP checksum calculated.
        pub const TCPCS: u8 = 0x20;
        /// IP checksum calculated.
        pub const IPCS: u8 = 0x40;
        /// Passed in-exact filter.
        pub const PIF: u8 = 0x80;
    }

    /// Receive error bits.
    pub mod errors {
        /// CRC or alignment error.
        pub const CE: u8 = 0x01;
        /// Symbol error.
        pub const SE: u8 = 0x02;
        /// Sequence error.
        pub const SEQ: u8 = 0x04;
        /// Carrier extension error.
        pub const CXE: u8 = 0x10;
        /// TCP/UDP checksum error.
        pub const TCPE: u8 = 0x20;
        /// IP checksum error.
        pub const IPE: u8 = 0x40;
        /// RX data error.
        pub const RXE: u8 = 0x80;
    }
}

/// The legacy transmit descriptor.
pub mod tx {
    /// Buffer address (u64).
    pub const ADDR: usize = 0;
    /// Bytes in the buffer (u16).
    pub const LENGTH: usize = 8;
    /// Checksum offset: where to insert the checksum, with `cmd::IC` (u8).
    pub const CSO: usize = 10;
    /// Command bits ([`cmd`], u8).
    pub const CMD: usize = 11;
    /// Status bits ([`status`], u8), written back.
    pub const STATUS: usize = 12;
    /// Checksum start (u8).
    pub const CSS: usize = 13;
    /// VLAN tag to insert with `cmd::VLE` (u16).
    pub const SPECIAL: usize = 14;

    /// Command bits of the legacy CMD and of the data descriptor's DCMD
    /// (RS, DEXT and IDE are also the context descriptor's TUCMD bits).
    pub mod cmd {
        /// End of packet.
        pub const EOP: u8 = 0x01;
        /// Insert FCS.
        pub const IFCS: u8 = 0x02;
        /// Legacy: insert checksum at CSO.
        pub const IC: u8 = 0x04;
        /// Data descriptor: TCP segmentation enable (where legacy has IC).
        pub const TSE: u8 = 0x04;
        /// Report status (write back DD).
        pub const RS: u8 = 0x08;
        /// Report packet sent (82544 only; RS on the 82540EM).
        pub const RPS: u8 = 0x10;
        /// Extended descriptor (context or data).
        pub const DEXT: u8 = 0x20;
        /// Insert a VLAN tag (with CTRL.VME).
        pub const VLE: u8 = 0x40;
        /// Interrupt delay enable (TIDV/TADV apply).
        pub const IDE: u8 = 0x80;
    }

    /// Transmit status bits (legacy, context and data descriptors).
    pub mod status {
        /// Descriptor done.
        pub const DD: u8 = 0x01;
        /// Excess collisions.
        pub const EC: u8 = 0x02;
        /// Late collision.
        pub const LC: u8 = 0x04;
        /// Transmit underrun.
        pub const TU: u8 = 0x08;
    }
}

/// What extended transmit descriptors share: the little-endian u32 at
/// [`ext::DWORD`] holds the length (bits 19:0), DTYP (23:20) and the command
/// byte (31:24, at byte [`tx::CMD`]).
pub mod ext {
    /// Offset of the length / type / command u32.
    pub const DWORD: usize = 8;
    /// The length field (PAYLEN or DTALEN) in that u32.
    pub const LEN_MASK: u32 = 0x000F_FFFF;
    /// Shift of the DTYP field in that u32.
    pub const DTYP_SHIFT: u32 = 20;
    /// The DTYP field, after the shift.
    pub const DTYP_MASK: u32 = 0xF;
    /// Shift of the command byte in that u32.
    pub const CMD_SHIFT: u32 = 24;
    /// DTYP of a TCP/IP context descriptor.
    pub const DTYP_CONTEXT: u32 = 0;
    /// DTYP of a TCP/IP data descriptor.
    pub const DTYP_DATA: u32 = 1;
}

/// The TCP/IP context descriptor (DEXT, DTYP 0): checksum offsets and TCP
/// segmentation parameters for the data descriptors that follow.
pub mod context {
    /// IP checksum start (u8).
    pub const IPCSS: usize = 0;
    /// IP checksum offset (u8).
    pub const IPCSO: usize = 1;
    /// IP checksum end, inclusive, 0 for the end of the frame (u16).
    pub const IPCSE: usize = 2;
    /// TCP/UDP checksum start (u8).
    pub const TUCSS: usize = 4;
    /// TCP/UDP checksum offset (u8).
    pub const TUCSO: usize = 5;
    /// TCP/UDP checksum end, inclusive, 0 for the end of the frame (u16).
    pub const TUCSE: usize = 6;
    /// PAYLEN: the low 20 bits of the u32 at [`super::ext::DWORD`].
    pub const PAYLEN: usize = super::ext::DWORD;
    /// TUCMD ([`tucmd`], u8).
    pub const TUCMD: usize = super::tx::CMD;
    /// Status bits (u8), written back.
    pub const STATUS: usize = 12;
    /// TSO header length (u8).
    pub const HDRLEN: usize = 13;
    /// TSO maximum segment size (u16).
    pub const MSS: usize = 14;

    /// TUCMD bits specific to the context descriptor (RS, DEXT and IDE are
    /// [`super::tx::cmd`]'s).
    pub mod tucmd {
        /// TCP (else UDP).
        pub const TCP: u8 = 0x01;
        /// IPv4 (else IPv6).
        pub const IP: u8 = 0x02;
        /// TCP segmentation context.
        pub const TSE: u8 = 0x04;
    }
}

/// The TCP/IP data descriptor (DEXT, DTYP 1): a buffer of a frame that uses
/// the offloads of the current context.
pub mod data {
    /// Buffer address (u64).
    pub const ADDR: usize = 0;
    /// DTALEN: the low 20 bits of the u32 at [`super::ext::DWORD`].
    pub const DTALEN: usize = super::ext::DWORD;
    /// DCMD ([`super::tx::cmd`], u8).
    pub const DCMD: usize = super::tx::CMD;
    /// Status bits (u8), written back.
    pub const STATUS: usize = 12;
    /// Packet options ([`popts`], u8).
    pub const POPTS: usize = 13;
    /// VLAN tag to insert with `cmd::VLE` (u16).
    pub const SPECIAL: usize = 14;

    /// POPTS bits.
    pub mod popts {
        /// Insert the IP checksum.
        pub const IXSM: u8 = 0x01;
        /// Insert the TCP/UDP checksum.
        pub const TXSM: u8 = 0x02;
    }
}

// The transmit layouts share the command and status bytes, and every field
// fits in a descriptor.
const _: () = assert!(tx::CMD == context::TUCMD && tx::CMD == data::DCMD);
const _: () = assert!(tx::STATUS == context::STATUS && tx::STATUS == data::STATUS);
const _: () =
    assert!(ext::DWORD + 3 == tx::CMD && ext::CMD_SHIFT == 8 * (tx::CMD - ext::DWORD) as u32);
const _: () =
    assert!(rx::SPECIAL + 2 == SIZE && tx::SPECIAL + 2 == SIZE && context::MSS + 2 == SIZE);
