//! The frames of the conformance exchange, host-testable: the control
//! frames between the guest and its peer (the test), the IPv4 frames the
//! TX offload steps send, descriptor encodings and the multicast hash.
//!
//! A control frame: destination, source, EtherType [`ETHERTYPE`], then
//! `b"CNF"`, a kind byte ([`kind`]), a phase byte and an id byte, zero
//! padded to 60 bytes (or to the length the peer chose for a filter frame).

use crate::e1000::desc::TxDesc;
use crate::inet_checksum::ones_sum;
use e1000_spec::desc::{ext, tx::cmd};

/// EtherType of the control frames (IEEE local experimental).
pub const ETHERTYPE: u16 = 0x88B5;
/// The magic after the EtherType.
pub const MAGIC: [u8; 3] = *b"CNF";
/// Length of a control frame without FCS.
pub const CONTROL_LEN: usize = 60;

/// Kinds of control frames.
pub mod kind {
    /// Guest to peer: the receiver is set up for the phase; send its frames.
    pub const READY: u8 = b'R';
    /// Peer to guest: a frame of the filter script (its id).
    pub const FILTER: u8 = b'F';
    /// Peer to guest: the last frame of a phase.
    pub const MARKER: u8 = b'M';
    /// Guest to peer: the exchange is over.
    pub const END: u8 = b'E';
}

/// A control frame's kind, phase and id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Control {
    /// [`kind`].
    pub kind: u8,
    /// The phase it belongs to.
    pub phase: u8,
    /// The frame's id in the script.
    pub id: u8,
}

/// Writes a control frame into `buf` (at least [`CONTROL_LEN`] bytes);
/// returns its length.
pub fn write_control(buf: &mut [u8], dst: [u8; 6], src: [u8; 6], c: Control) -> usize {
    buf[..CONTROL_LEN].fill(0);
    buf[0..6].copy_from_slice(&dst);
    buf[6..12].copy_from_slice(&src);
    buf[12..14].copy_from_slice(&ETHERTYPE.to_be_bytes());
    buf[14..17].copy_from_slice(&MAGIC);
    buf[17] = c.kind;
    buf[18] = c.phase;
    buf[19] = c.id;
    CONTROL_LEN
}

/// The control fields of `frame`, if it is a control frame.
pub fn parse_control(frame: &[u8]) -> Option<Control> {
    if frame.len() < 20 || frame[12..14] != ETHERTYPE.to_be_bytes() || frame[14..17] != MAGIC {
        return None;
    }
    Some(Control {
        kind: frame[17],
        phase: frame[18],
        id: frame[19],
    })
}

/// The 12-bit multicast table index of `dst` for RCTL.MO = `mo` (0..=3):
/// the bit the device tests in the MTA.
pub fn mta_index(dst: [u8; 6], mo: u32) -> u16 {
    let shift = [4, 3, 2, 0][(mo & 3) as usize];
    (((dst[5] as u16) << 8 | dst[4] as u16) >> shift) & 0xFFF
}

/// IPv4 addresses of the offload frames.
pub const SRC_IP: [u8; 4] = [10, 0, 0, 1];
/// See [`SRC_IP`].
pub const DST_IP: [u8; 4] = [10, 0, 0, 2];
/// Ethernet + IPv4 header bytes.
pub const L3_END: usize = 34;

/// Writes an Ethernet + IPv4 + UDP (`tcp` false) or TCP frame with
/// `payload` bytes of pattern `seed` into `buf`, its IP and L4 checksums
/// zero; `ip_len` overrides the IPv4 total length field (TSO templates
/// carry 0 there). Returns the frame's length.
pub fn write_ipv4(
    buf: &mut [u8],
    dst: [u8; 6],
    src: [u8; 6],
    tcp: bool,
    payload: usize,
    seed: u8,
    ip_len: Option<u16>,
) -> usize {
    let l4_header = if tcp { 20 } else { 8 };
    let total = 20 + l4_header + payload;
    let len = 14 + total;
    let f = &mut buf[..len];
    f.fill(0);
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    f[14] = 0x45;
    f[16..18].copy_from_slice(&ip_len.unwrap_or(total as u16).to_be_bytes());
    f[18..20].copy_from_slice(&(0x1200u16 | seed as u16).to_be_bytes());
    f[20] = 0x40; // don't fragment
    f[22] = 64;
    f[23] = if tcp { 6 } else { 17 };
    f[26..30].copy_from_slice(&SRC_IP);
    f[30..34].copy_from_slice(&DST_IP);
    let l4 = L3_END;
    f[l4..l4 + 2].copy_from_slice(&0x3039u16.to_be_bytes());
    f[l4 + 2..l4 + 4].copy_from_slice(&(if tcp { 80u16 } else { 53 }).to_be_bytes());
    if tcp {
        f[l4 + 4..l4 + 8].copy_from_slice(&0x1000_0000u32.to_be_bytes());
        f[l4 + 12] = 0x50;
        f[l4 + 13] = 0x19; // ACK | PSH | FIN
        f[l4 + 14..l4 + 16].copy_from_slice(&0xFFFFu16.to_be_bytes());
    } else {
        f[l4 + 4..l4 + 6].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
    }
    for (i, b) in f[l4 + l4_header..].iter_mut().enumerate() {
        *b = seed.wrapping_add((i * 7) as u8);
    }
    len
}

/// The pseudo-header sum the stock drivers seed the L4 checksum field
/// with (not complemented): addresses, protocol and `l4_len` (0 for TSO).
pub fn pseudo_seed(tcp: bool, l4_len: u16) -> u16 {
    let mut sum = ones_sum(&SRC_IP, 0);
    sum = ones_sum(&DST_IP, sum);
    sum += if tcp { 6 } else { 17 };
    sum += l4_len as u32;
    ones_sum(&[], sum) as u16
}

/// A TCP/IP context descriptor (DEXT, DTYP 0).
#[derive(Clone, Copy, Debug, Default)]
pub struct Context {
    /// IP checksum start.
    pub ipcss: u8,
    /// IP checksum offset.
    pub ipcso: u8,
    /// IP checksum end (inclusive; 0: to the end).
    pub ipcse: u16,
    /// TCP/UDP checksum start.
    pub tucss: u8,
    /// TCP/UDP checksum offset.
    pub tucso: u8,
    /// TCP/UDP checksum end (inclusive; 0: to the end).
    pub tucse: u16,
    /// TSO payload length.
    pub paylen: u32,
    /// TUCMD bits besides DEXT (TCP, IP, TSE, RS, IDE).
    pub tucmd: u8,
    /// TSO header length.
    pub hdrlen: u8,
    /// TSO maximum segment size.
    pub mss: u16,
}

impl Context {
    /// The descriptor, in the legacy struct's layout.
    pub fn desc(&self) -> TxDesc {
        let mut low = [0u8; 8];
        low[0] = self.ipcss;
        low[1] = self.ipcso;
        low[2..4].copy_from_slice(&self.ipcse.to_le_bytes());
        low[4] = self.tucss;
        low[5] = self.tucso;
        low[6..8].copy_from_slice(&self.tucse.to_le_bytes());
        let paylen = self.paylen & ext::LEN_MASK;
        TxDesc {
            addr: u64::from_le_bytes(low),
            length: paylen as u16,
            cso: (paylen >> 16) as u8 | (ext::DTYP_CONTEXT << 4) as u8,
            cmd: self.tucmd | cmd::DEXT,
            status: 0,
            css: self.hdrlen,
            special: self.mss,
        }
    }
}

/// A TCP/IP data descriptor (DEXT, DTYP 1): `len` bytes at `addr`, command
/// bits `dcmd` (DEXT added) and packet options `popts`.
pub fn data_desc(addr: u64, len: u32, dcmd: u8, popts: u8) -> TxDesc {
    let len = len & ext::LEN_MASK;
    TxDesc {
        addr,
        length: len as u16,
        cso: (len >> 16) as u8 | (ext::DTYP_DATA << 4) as u8,
        cmd: dcmd | cmd::DEXT,
        status: 0,
        css: popts,
        special: 0,
    }
}

/// FNV-1a over `data`: a short fingerprint of a received frame.
pub fn fnv1a(data: &[u8]) -> u32 {
    data.iter().fold(0x811C_9DC5u32, |h, &b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_round_trip() {
        let mut buf = [0xAAu8; 64];
        let c = Control {
            kind: kind::READY,
            phase: 3,
            id: 7,
        };
        assert_eq!(write_control(&mut buf, [1; 6], [2; 6], c), 60);
        assert_eq!(parse_control(&buf[..60]), Some(c));
        assert!(buf[20..60].iter().all(|&b| b == 0));
        buf[16] = b'X';
        assert_eq!(parse_control(&buf[..60]), None);
        assert_eq!(parse_control(&buf[..19]), None);
    }

    #[test]
    fn mta_index_follows_the_manual() {
        // 01:00:5e:00:00:01 with MO 0: bits 47:36 of the address.
        let mac = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01];
        assert_eq!(mta_index(mac, 0), 0x010);
        assert_eq!(mta_index(mac, 3), 0x100);
        let mac = [0, 0, 0, 0, 0x34, 0x12];
        assert_eq!(mta_index(mac, 0), 0x123);
        assert_eq!(mta_index(mac, 1), 0x246);
        assert_eq!(mta_index(mac, 2), 0x48D);
        assert_eq!(mta_index(mac, 3), 0x234);
    }

    #[test]
    fn ipv4_frame_and_checksums() {
        let mut buf = [0u8; 256];
        let len = write_ipv4(&mut buf, [1; 6], [2; 6], false, 10, 5, None);
        assert_eq!(len, 14 + 20 + 8 + 10);
        assert_eq!(u16::from_be_bytes([buf[16], buf[17]]), 38);
        assert_eq!(u16::from_be_bytes([buf[38], buf[39]]), 18);
        // The header sums to 0xFFFF once its checksum is inserted.
        let sum = ones_sum(&buf[14..34], 0) as u16;
        buf[24..26].copy_from_slice(&(!sum).to_be_bytes());
        assert_eq!(ones_sum(&buf[14..34], 0), 0xFFFF);
        // Seed + L4 bytes = the full UDP checksum.
        let seed = pseudo_seed(false, 18) as u32;
        let full = !(ones_sum(&buf[34..len], seed) as u16);
        let mut check = ones_sum(&[10, 0, 0, 1, 10, 0, 0, 2, 0, 17, 0, 18], 0);
        buf[40..42].copy_from_slice(&full.to_be_bytes());
        check = ones_sum(&buf[34..len], check);
        assert_eq!(check, 0xFFFF);
    }

    #[test]
    fn descriptor_encodings() {
        let c = Context {
            ipcss: 14,
            ipcso: 24,
            ipcse: 33,
            tucss: 34,
            tucso: 50,
            tucse: 0,
            paylen: 0x1_2345,
            tucmd: 0x07,
            hdrlen: 54,
            mss: 500,
        }
        .desc();
        assert_eq!(c.addr.to_le_bytes(), [14, 24, 33, 0, 34, 50, 0, 0]);
        assert_eq!(c.length, 0x2345);
        assert_eq!(c.cso, 0x01);
        assert_eq!(c.cmd, 0x27);
        assert_eq!((c.css, c.special), (54, 500));
        let d = data_desc(0x1000, 1254, cmd::EOP | cmd::TSE, 3);
        assert_eq!((d.length, d.cso, d.cmd, d.css), (1254, 0x10, 0x25, 3));
    }
}
