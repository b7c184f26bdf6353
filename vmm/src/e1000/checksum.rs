//! Internet (ones' complement) checksums for the transmit offloads.

/// Adds `data` as big-endian 16-bit words to a ones' complement accumulator.
///
/// An odd trailing byte is padded with zero. The accumulator must be folded
/// with [`fold`] at the end.
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

/// Folds an accumulator to a 16-bit ones' complement sum.
pub fn fold(mut sum: u64) -> u16 {
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum as u16
}

/// Computes the checksum of `data[start..end]` (end = `end_inclusive + 1`, or
/// the end of `data` when `end_inclusive` is 0 or past it) and stores its
/// complement big-endian at `offset`, as the 8254x does. The field at `offset`
/// is summed as it is, so software seeds it (0, or a pseudo-header sum).
/// Returns false, changing nothing, when the offsets are out of range.
pub fn insert(data: &mut [u8], start: usize, offset: usize, end_inclusive: usize) -> bool {
    let end = if end_inclusive != 0 && end_inclusive < data.len() {
        end_inclusive + 1
    } else {
        data.len()
    };
    if start >= end || offset.checked_add(2).is_none_or(|e| e > data.len()) {
        return false;
    }
    let sum = fold(accumulate(0, &data[start..end]));
    data[offset..offset + 2].copy_from_slice(&(!sum).to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 example: words 0001 f203 f4f5 f6f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(accumulate(0, &data)), 0xddf2);
        assert_eq!(
            fold(accumulate(0, &data[..7])),
            fold(accumulate(0, &[0, 1, 0xf2, 3, 0xf4, 0xf5, 0xf6, 0]))
        );
    }

    #[test]
    fn insert_rejects_out_of_range() {
        let mut data = [0u8; 10];
        assert!(!insert(&mut data, 4, 9, 0));
        assert!(!insert(&mut data, 10, 0, 0));
        assert!(insert(&mut data, 0, 8, 0));
    }
}
