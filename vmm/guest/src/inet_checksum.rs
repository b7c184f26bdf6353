//! The Internet checksum's ones' complement sum (RFC 1071), in the form the
//! `ip=` responder and the conformance workload's offload frames use: the
//! `inet-checksum` crate's sum, folded, carried in a `u32`.

/// Ones' complement sum of `data` as big-endian 16-bit words (an odd last
/// byte padded with zero), continuing from `sum`; folded to 16 bits, not
/// complemented.
pub fn ones_sum(data: &[u8], sum: u32) -> u32 {
    u32::from(inet_checksum::fold(inet_checksum::accumulate(
        u64::from(sum),
        data,
    )))
}
