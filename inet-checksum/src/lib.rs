//! The Internet checksum's ones' complement sum (RFC 1071): one copy for
//! the switch's checksum completion on NIC ports, the e1000 model's
//! transmit offloads and the guest image (which is `no_std`).
//!
//! Sum with [`accumulate`] (as many pieces as needed, each but the last of
//! even length), then [`fold`]; a checksum field holds the complement of
//! the folded sum (`!fold(..)`), and a segment whose sum, field included,
//! folds to `0xFFFF` verifies.
#![no_std]
#![forbid(unsafe_code)]

/// Adds `data` as big-endian 16-bit words to a ones' complement
/// accumulator (an odd last byte padded with zero). Words are added four
/// bytes at a time, which [`fold`] turns into the same 16-bit sum.
#[inline]
pub fn accumulate(mut sum: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        sum += u64::from(u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]));
    }
    let rest = chunks.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    sum + u64::from(u32::from_be_bytes(tail))
}

/// Folds an accumulator into 16 bits (end-around carry), not complemented.
#[inline]
pub fn fold(mut sum: u64) -> u16 {
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sum the slow way: 16-bit words, folded after each addition.
    fn by_words(data: &[u8]) -> u16 {
        let mut sum = 0u32;
        for pair in data.chunks(2) {
            let word = u32::from(pair[0]) << 8 | u32::from(*pair.get(1).unwrap_or(&0));
            sum += word;
            sum = (sum & 0xFFFF) + (sum >> 16);
        }
        sum as u16
    }

    #[test]
    fn the_rfc_1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(accumulate(0, &data)), 0xddf2);
    }

    #[test]
    fn every_length_and_split_agrees_with_the_word_by_word_sum() {
        let data: [u8; 67] = core::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0xA5);
        for len in 0..data.len() {
            let whole = fold(accumulate(0, &data[..len]));
            assert_eq!(whole, by_words(&data[..len]), "length {len}");
            for split in (0..len).step_by(2) {
                let pieces = accumulate(accumulate(0, &data[..split]), &data[split..len]);
                assert_eq!(fold(pieces), whole, "length {len} split at {split}");
            }
        }
    }

    #[test]
    fn a_segment_with_its_checksum_verifies() {
        let mut segment = [0x45, 0x00, 0x00, 0x1c, 0x12, 0x34, 0, 0, 0x40, 0x11];
        let check = !fold(accumulate(0, &segment));
        segment[6..8].copy_from_slice(&check.to_be_bytes());
        assert_eq!(fold(accumulate(0, &segment)), 0xFFFF);
    }
}
