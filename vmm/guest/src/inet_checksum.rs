//! The Internet checksum's ones' complement sum (RFC 1071), shared by the
//! `ip=` responder and the conformance workload's offload frames.

/// Ones' complement sum of `data` as big-endian 16-bit words (an odd last
/// byte padded with zero), continuing from `sum`; folded to 16 bits, not
/// complemented.
pub fn ones_sum(data: &[u8], sum: u32) -> u32 {
    let mut sum = u64::from(sum);
    let mut words = data.chunks_exact(2);
    for word in &mut words {
        sum += u64::from(u16::from_be_bytes([word[0], word[1]]));
    }
    if let [last] = words.remainder() {
        sum += u64::from(*last) << 8;
    }
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum as u32
}
