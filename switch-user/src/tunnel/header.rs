//! The VXLAN header (RFC 7348 section 5): 8 bytes in front of the inner
//! Ethernet frame, inside a UDP datagram.
//!
//! ```text
//!  0      1      2      3
//!  flags  reserved (24 bits)
//!  VNI (24 bits)        reserved
//! ```
//!
//! The `I` flag (0x08) says the VNI is valid; the other bits are reserved:
//! written as zero and ignored on receipt, as the RFC says.

use thiserror::Error;

/// Bytes of the VXLAN header.
pub const VXLAN_HEADER: usize = 8;

/// The `I` flag: the VNI is valid.
pub const FLAG_VNI: u8 = 0x08;

/// Outer bytes counted against the underlay's IP MTU: IPv4 (20), UDP (8)
/// and VXLAN (8) headers.
pub const IP_OVERHEAD: usize = 20 + 8 + VXLAN_HEADER;

/// The overhead as usually quoted (and as Linux's vxlan device takes it off
/// its MTU): the above plus the inner Ethernet header (14).
pub const OVERHEAD: usize = IP_OVERHEAD + 14;

/// The header for `vni` (only its low 24 bits are used).
pub fn encode(vni: u32) -> [u8; VXLAN_HEADER] {
    let v = vni.to_be_bytes();
    [FLAG_VNI, 0, 0, 0, v[1], v[2], v[3], 0]
}

/// Why a datagram was not decapsulated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum DecapError {
    /// Shorter than a VXLAN header and an Ethernet header.
    #[error("datagram too short for VXLAN and Ethernet headers")]
    Short,
    /// The `I` flag is not set.
    #[error("VXLAN header without the VNI flag")]
    BadHeader,
}

/// Checks the VXLAN header of a datagram of `len` bytes (header
/// included); its VNI.
pub fn vni_of(header: &[u8; VXLAN_HEADER], len: usize) -> Result<u32, DecapError> {
    if len < VXLAN_HEADER + 14 {
        return Err(DecapError::Short);
    }
    if header[0] & FLAG_VNI == 0 {
        return Err(DecapError::BadHeader);
    }
    Ok(u32::from_be_bytes([0, header[4], header[5], header[6]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_and_check_agree() {
        let h = encode(0x12_3456);
        assert_eq!(h, [0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0]);
        assert_eq!(vni_of(&h, 8 + 14), Ok(0x12_3456));
        assert_eq!(vni_of(&h, 8 + 13), Err(DecapError::Short));
        let mut bad = h;
        bad[0] = 0;
        assert_eq!(vni_of(&bad, 100), Err(DecapError::BadHeader));
        // Reserved bits are ignored on receipt.
        let mut reserved = h;
        reserved[0] |= 0x80;
        reserved[7] = 0xff;
        assert_eq!(vni_of(&reserved, 100), Ok(0x12_3456));
    }

    #[test]
    fn the_overhead_is_fifty_bytes() {
        assert_eq!(OVERHEAD, 50);
    }
}
