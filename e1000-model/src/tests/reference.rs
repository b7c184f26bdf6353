//! References written independently of the model (Internet checksum,
//! CRC-32) and builders of IPv4 frames to check the offloads against.

use super::MAC;

/// Reference Internet checksum, written independently of the model's:
/// 16-bit words, 32-bit accumulator, end-around carry folded at the end.
pub(super) fn reference_sum(chunks: &[&[u8]]) -> u16 {
    let mut bytes = Vec::new();
    for chunk in chunks {
        bytes.extend_from_slice(chunk);
    }
    if bytes.len() % 2 == 1 {
        bytes.push(0);
    }
    let mut sum: u32 = 0;
    for pair in bytes.chunks(2) {
        sum += (u32::from(pair[0]) << 8) | u32::from(pair[1]);
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum as u16
}

/// Whether the IPv4 header (20 bytes after the Ethernet header) checks.
pub(super) fn ipv4_header_ok(frame: &[u8]) -> bool {
    reference_sum(&[&frame[14..34]]) == 0xFFFF
}

/// Verifies the TCP or UDP checksum of an IPv4 frame (20-byte IP header).
pub(super) fn l4_checksum_ok(frame: &[u8]) -> bool {
    let ip = &frame[14..34];
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let l4 = &frame[34..14 + total];
    let pseudo = [
        &ip[12..20],
        &[0, ip[9]][..],
        &(l4.len() as u16).to_be_bytes()[..],
    ]
    .concat();
    reference_sum(&[&pseudo, l4]) == 0xFFFF
}

/// Pseudo-header sum as Linux seeds the checksum field (not complemented).
pub(super) fn pseudo_seed(ip: &[u8], protocol: u8, l4_len: Option<u16>) -> u16 {
    let mut pseudo = ip[12..20].to_vec();
    pseudo.extend_from_slice(&[0, protocol]);
    pseudo.extend_from_slice(&l4_len.unwrap_or(0).to_be_bytes());
    reference_sum(&[&pseudo])
}

/// An Ethernet + IPv4 + TCP (or UDP) frame with `payload` bytes, checksums 0.
pub(super) fn ipv4_frame(payload: usize, tcp: bool) -> Vec<u8> {
    let l4_header = if tcp { 20 } else { 8 };
    let total = 20 + l4_header + payload;
    let mut f = Vec::new();
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    f.extend_from_slice(&MAC);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&(total as u16).to_be_bytes());
    f.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, 64, if tcp { 6 } else { 17 }, 0, 0]);
    f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
    if tcp {
        f.extend_from_slice(&[0x30, 0x39, 0x00, 0x50]);
        f.extend_from_slice(&0x1000_0000u32.to_be_bytes());
        f.extend_from_slice(&0u32.to_be_bytes());
        f.extend_from_slice(&[0x50, 0x19, 0xFF, 0xFF, 0, 0, 0, 0]); // ACK|PSH|FIN
    } else {
        f.extend_from_slice(&[0x30, 0x39, 0x00, 0x35]);
        f.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
    }
    f.extend((0..payload).map(|i| (i * 7 + 3) as u8));
    f
}

/// Bitwise CRC-32 (IEEE 802.3), independent of the model's table.
pub(super) fn reference_crc(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}
