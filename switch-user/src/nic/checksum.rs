//! Completing partial TCP/UDP checksums in frames a NIC port receives.
//!
//! A veth whose peer is a local stack with transmit checksum offload on
//! carries TCP and UDP frames whose checksum is unfinished
//! (`CHECKSUM_PARTIAL`): the L4 checksum field holds only the folded
//! pseudo-header sum, for the "hardware" to complete. AF_XDP carries no
//! checksum metadata, so such a frame would leave the switch as it is and
//! the receiving stack would drop it. [`complete_partial`] recognises the
//! unfinished field and finishes the checksum in place.
//!
//! A frame counts as partial when its L4 checksum field equals the folded
//! pseudo-header sum *and* the checksum does not verify; a frame whose
//! checksum is right is never changed, and the full sum is computed only
//! for frames whose field looks partial (a cheap test first).

use inet_checksum::{accumulate, fold};
use std::fmt;
use std::str::FromStr;

/// What a NIC port does about partial checksums (`vswitch attach --checksum`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChecksumMode {
    /// `complete` on a veth (whose peer may be a local stack), `trust`
    /// elsewhere.
    #[default]
    Auto,
    /// Complete partial TCP/UDP checksums in software.
    Complete,
    /// Forward frames as they are.
    Trust,
}

impl ChecksumMode {
    /// The mode's name, as `--checksum` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ChecksumMode::Auto => "auto",
            ChecksumMode::Complete => "complete",
            ChecksumMode::Trust => "trust",
        }
    }
}

impl fmt::Display for ChecksumMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ChecksumMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(ChecksumMode::Auto),
            "complete" => Ok(ChecksumMode::Complete),
            "trust" => Ok(ChecksumMode::Trust),
            other => Err(format!(
                "unknown checksum mode {other:?} (auto, complete or trust)"
            )),
        }
    }
}

const ETH_HEADER: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;
const ETHERTYPE_VLAN: u16 = 0x8100;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

/// Where a frame's L4 segment is and its pseudo-header sum.
struct L4 {
    /// Offset of the TCP/UDP header in the frame.
    start: usize,
    /// Offset just past the segment (the IP payload's end).
    end: usize,
    proto: u8,
    pseudo: u64,
}

/// Finds an unfragmented TCP or UDP segment over IPv4 or IPv6 (no IPv6
/// extension headers), after at most one VLAN tag.
fn locate(frame: &[u8]) -> Option<L4> {
    let mut l3 = ETH_HEADER;
    let mut ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    if ethertype == ETHERTYPE_VLAN {
        ethertype = u16::from_be_bytes([*frame.get(16)?, *frame.get(17)?]);
        l3 += 4;
    }
    match ethertype {
        ETHERTYPE_IPV4 => {
            let ip = frame.get(l3..l3 + 20)?;
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            if ip[0] >> 4 != 4 || ihl < 20 {
                return None;
            }
            // Fragments (more-fragments set or an offset) carry no whole segment.
            if u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
                return None;
            }
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            let (start, end) = (l3 + ihl, l3 + total);
            if total < ihl || end > frame.len() {
                return None;
            }
            let proto = ip[9];
            let len = (end - start) as u64;
            let pseudo = accumulate(0, &ip[12..20]) + u64::from(proto) + len;
            Some(L4 {
                start,
                end,
                proto,
                pseudo,
            })
        }
        ETHERTYPE_IPV6 => {
            let ip = frame.get(l3..l3 + 40)?;
            if ip[0] >> 4 != 6 {
                return None;
            }
            let payload = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            let (start, end) = (l3 + 40, l3 + 40 + payload);
            if end > frame.len() {
                return None;
            }
            let proto = ip[6];
            let pseudo = accumulate(0, &ip[8..40]) + u64::from(proto) + payload as u64;
            Some(L4 {
                start,
                end,
                proto,
                pseudo,
            })
        }
        _ => None,
    }
}

/// If `frame` is a TCP or UDP frame with an unfinished (partial) checksum,
/// completes it in place and returns true; leaves every other frame alone.
pub fn complete_partial(frame: &mut [u8]) -> bool {
    let Some(l4) = locate(frame) else {
        return false;
    };
    let field = match l4.proto {
        PROTO_TCP if l4.end - l4.start >= 20 => l4.start + 16,
        PROTO_UDP if l4.end - l4.start >= 8 => l4.start + 6,
        _ => return false,
    };
    let stored = u16::from_be_bytes([frame[field], frame[field + 1]]);
    // The unfinished field holds the folded pseudo-header sum.
    if stored != fold(l4.pseudo) {
        return false;
    }
    // Over the whole segment, stored field included: a finished checksum
    // sums to 0xffff with the pseudo header.
    let sum = accumulate(l4.pseudo, &frame[l4.start..l4.end]);
    if fold(sum) == 0xffff {
        return false;
    }
    // The field currently contributes `stored`; the checksum over the
    // segment with the field zero is the sum without it.
    let without_field = accumulate(0, &frame[l4.start..field])
        + accumulate(0, &frame[field + 2..l4.end])
        + l4.pseudo;
    let mut check = !fold(without_field);
    if l4.proto == PROTO_UDP && check == 0 {
        // UDP sends a computed zero as all ones (zero means "none").
        check = 0xffff;
    }
    frame[field..field + 2].copy_from_slice(&check.to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet + IPv4 + TCP frame with `payload`, checksum finished.
    fn tcp4(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20 + payload.len()];
        f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let total = (20 + 20 + payload.len()) as u16;
        f[14] = 0x45;
        f[16..18].copy_from_slice(&total.to_be_bytes());
        f[14 + 8] = 64;
        f[14 + 9] = PROTO_TCP;
        f[14 + 12..14 + 16].copy_from_slice(&[10, 9, 0, 1]);
        f[14 + 16..14 + 20].copy_from_slice(&[10, 9, 0, 2]);
        f[34..36].copy_from_slice(&5001u16.to_be_bytes());
        f[46] = 0x50;
        f[54..].copy_from_slice(payload);
        let l4 = locate(&f).unwrap();
        let check = !fold(accumulate(l4.pseudo, &f[34..]));
        f[50..52].copy_from_slice(&check.to_be_bytes());
        f
    }

    fn udp6(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 40 + 8 + payload.len()];
        f[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        f[14] = 0x60;
        let len = (8 + payload.len()) as u16;
        f[18..20].copy_from_slice(&len.to_be_bytes());
        f[20] = PROTO_UDP;
        f[21] = 64;
        f[22..38].copy_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f[38..54].copy_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        f[58..60].copy_from_slice(&len.to_be_bytes());
        f[62..].copy_from_slice(payload);
        let l4 = locate(&f).unwrap();
        let check = !fold(accumulate(l4.pseudo, &f[54..]));
        f[60..62].copy_from_slice(&check.to_be_bytes());
        f
    }

    /// Turns a finished frame into what a stack with offload sends: the
    /// field holds the folded pseudo-header sum.
    fn make_partial(f: &mut [u8], field: usize) {
        let l4 = locate(f).unwrap();
        f[field..field + 2].copy_from_slice(&fold(l4.pseudo).to_be_bytes());
    }

    #[test]
    fn a_partial_tcp_checksum_is_completed_and_a_finished_one_left_alone() {
        for len in [0usize, 1, 7, 1000, 1460] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let good = tcp4(&payload);
            let mut f = good.clone();
            assert!(!complete_partial(&mut f), "finished frame changed");
            assert_eq!(f, good);
            make_partial(&mut f, 50);
            assert_ne!(f, good);
            assert!(complete_partial(&mut f));
            assert_eq!(f, good, "payload {len}");
        }
    }

    #[test]
    fn a_partial_udp6_checksum_is_completed() {
        let good = udp6(b"hello, checksum");
        let mut f = good.clone();
        make_partial(&mut f, 60);
        assert!(complete_partial(&mut f));
        assert_eq!(f, good);
    }

    #[test]
    fn other_frames_and_broken_headers_are_left_alone() {
        let mut arp = vec![0u8; 60];
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert!(!complete_partial(&mut arp));
        // IPv4 total length beyond the frame.
        let mut f = tcp4(b"abc");
        make_partial(&mut f, 50);
        f[16..18].copy_from_slice(&2000u16.to_be_bytes());
        assert!(!complete_partial(&mut f));
        // Truncated frames.
        for n in 0..54 {
            let mut short = tcp4(b"")[..n].to_vec();
            assert!(!complete_partial(&mut short));
        }
        // A fragment.
        let mut frag = tcp4(b"abc");
        make_partial(&mut frag, 50);
        frag[20] = 0x20;
        assert!(!complete_partial(&mut frag));
    }

    #[test]
    fn modes_parse_and_print() {
        for m in [
            ChecksumMode::Auto,
            ChecksumMode::Complete,
            ChecksumMode::Trust,
        ] {
            assert_eq!(m.as_str().parse::<ChecksumMode>(), Ok(m));
        }
        assert!("off".parse::<ChecksumMode>().is_err());
    }
}
