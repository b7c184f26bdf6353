//! Internet (ones' complement) checksums for the transmit offloads.

pub use inet_checksum::{accumulate, fold};

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
    fn insert_rejects_out_of_range() {
        let mut data = [0u8; 10];
        assert!(!insert(&mut data, 4, 9, 0));
        assert!(!insert(&mut data, 10, 0, 0));
        assert!(insert(&mut data, 0, 8, 0));
    }
}
