//! The outer Ethernet, IPv4 and UDP headers of a VXLAN datagram, for the
//! AF_XDP underlay ([`super::xdp_underlay`]), which sees whole frames where
//! the sockets see only UDP payloads: [`parse`] checks a received frame and
//! finds its UDP payload, [`build`] writes the 42 bytes in front of a
//! datagram to send.

use std::net::Ipv4Addr;

/// Bytes of the outer Ethernet, IPv4 (without options) and UDP headers.
pub const OUTER_HEADERS: usize = 14 + 20 + 8;

/// Time to live of the datagrams sent (Linux's default).
pub const TTL: u8 = 64;

/// Why a received frame is not a datagram for us.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OuterError {
    /// Not IPv4 (EtherType), or not UDP.
    #[error("not an IPv4 UDP datagram")]
    NotUdp,
    /// The IPv4 or UDP header is cut short, inconsistent or a fragment.
    #[error("malformed IPv4 or UDP header")]
    Malformed,
    /// Another address or port than ours.
    #[error("not for our address and port")]
    NotOurs,
}

/// A received datagram's outer facts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outer {
    /// The Ethernet source (the previous hop: where replies go).
    pub src_mac: [u8; 6],
    /// The IPv4 source (the remote VTEP).
    pub src_ip: Ipv4Addr,
    /// Where the UDP payload starts in the frame.
    pub payload_at: usize,
    /// Its length (from the UDP header, checked against the frame).
    pub payload_len: usize,
}

/// Checks that `frame` is an IPv4 UDP datagram to `local:port` (version 4,
/// a header length of 20 to 60 bytes inside the total length, the total
/// length inside the frame, no fragment, a UDP length inside the IP
/// payload) and finds its payload. The IPv4 header checksum is not
/// checked (the NIC and the kernel's XDP path hand over what the link
/// delivered; a wrong destination is refused anyway); the UDP checksum is
/// not required over IPv4.
pub fn parse(frame: &[u8], local: Ipv4Addr, port: u16) -> Result<Outer, OuterError> {
    if frame.len() < OUTER_HEADERS {
        return Err(if frame.len() >= 14 && frame[12..14] != [0x08, 0x00] {
            OuterError::NotUdp
        } else {
            OuterError::Malformed
        });
    }
    if frame[12..14] != [0x08, 0x00] {
        return Err(OuterError::NotUdp);
    }
    let ip = &frame[14..];
    if ip[0] >> 4 != 4 {
        return Err(OuterError::NotUdp);
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if ihl < 20 || total < ihl + 8 || total > ip.len() {
        return Err(OuterError::Malformed);
    }
    // More fragments, or a fragment offset: a piece of a datagram.
    if u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
        return Err(OuterError::Malformed);
    }
    if ip[9] != 17 {
        return Err(OuterError::NotUdp);
    }
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let udp = &ip[ihl..total];
    if dst != local || u16::from_be_bytes([udp[2], udp[3]]) != port {
        return Err(OuterError::NotOurs);
    }
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if udp_len < 8 || udp_len > udp.len() {
        return Err(OuterError::Malformed);
    }
    let mut src_mac = [0u8; 6];
    src_mac.copy_from_slice(&frame[6..12]);
    Ok(Outer {
        src_mac,
        src_ip: Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
        payload_at: 14 + ihl + 8,
        payload_len: udp_len - 8,
    })
}

/// One datagram's outer addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Addresses {
    /// Our interface's MAC.
    pub src_mac: [u8; 6],
    /// The next hop's MAC.
    pub dst_mac: [u8; 6],
    /// Our VTEP address.
    pub src_ip: Ipv4Addr,
    /// The remote VTEP.
    pub dst_ip: Ipv4Addr,
}

/// Writes the Ethernet and IPv4 headers (Don't Fragment, TTL 64, header
/// checksum) in front of a UDP datagram of `udp_len` bytes whose header
/// follows; `udp_len` must leave the total length within 65535.
pub fn build(out: &mut [u8; 14 + 20], a: &Addresses, udp_len: u16) {
    out[0..6].copy_from_slice(&a.dst_mac);
    out[6..12].copy_from_slice(&a.src_mac);
    out[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut out[14..];
    let total = udp_len.saturating_add(20);
    ip[0] = 0x45;
    ip[1] = 0;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    // Identification 0: an atomic datagram (DF set, RFC 6864).
    ip[4..6].copy_from_slice(&[0, 0]);
    ip[6..8].copy_from_slice(&[0x40, 0]);
    ip[8] = TTL;
    ip[9] = 17;
    ip[10..12].copy_from_slice(&[0, 0]);
    ip[12..16].copy_from_slice(&a.src_ip.octets());
    ip[16..20].copy_from_slice(&a.dst_ip.octets());
    let sum = checksum(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
}

/// The Internet checksum of an IPv4 header (0 when `header` holds a valid
/// one).
fn checksum(header: &[u8]) -> u16 {
    !inet_checksum::fold(inet_checksum::accumulate(0, header))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const REMOTE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

    fn datagram(payload: &[u8]) -> Vec<u8> {
        let mut head = [0u8; 34];
        let a = Addresses {
            src_mac: [2, 0, 0, 0, 0, 2],
            dst_mac: [2, 0, 0, 0, 0, 1],
            src_ip: REMOTE,
            dst_ip: LOCAL,
        };
        let udp_len = (8 + payload.len()) as u16;
        build(&mut head, &a, udp_len);
        let mut f = head.to_vec();
        f.extend_from_slice(&50000u16.to_be_bytes());
        f.extend_from_slice(&4789u16.to_be_bytes());
        f.extend_from_slice(&udp_len.to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn a_built_datagram_parses_and_its_checksum_verifies() {
        let f = datagram(&[7; 30]);
        assert_eq!(
            checksum(&f[14..34]),
            0,
            "a header with its checksum sums to zero"
        );
        assert_eq!(&f[20..22], &[0x40, 0], "Don't Fragment");
        let o = parse(&f, LOCAL, 4789).unwrap();
        assert_eq!(o.src_ip, REMOTE);
        assert_eq!(o.src_mac, [2, 0, 0, 0, 0, 2]);
        assert_eq!((o.payload_at, o.payload_len), (42, 30));
        // Padding after the datagram (a short frame) is not payload.
        let mut padded = f.clone();
        padded.extend_from_slice(&[0; 10]);
        assert_eq!(parse(&padded, LOCAL, 4789).unwrap().payload_len, 30);
    }

    #[test]
    fn every_bad_header_is_refused_without_panicking() {
        let good = datagram(&[7; 30]);
        assert_eq!(parse(&good, LOCAL, 4790), Err(OuterError::NotOurs));
        assert_eq!(parse(&good, REMOTE, 4789), Err(OuterError::NotOurs));
        type Change = fn(&mut Vec<u8>);
        let cases: [(Change, OuterError); 9] = [
            (|f| f[12] = 0x86, OuterError::NotUdp),
            (|f| f[14] = 0x65, OuterError::NotUdp),
            (|f| f[23] = 6, OuterError::NotUdp),
            (|f| f[14] = 0x44, OuterError::Malformed),
            (
                |f| f[16..18].copy_from_slice(&[0xff, 0xff]),
                OuterError::Malformed,
            ),
            (
                |f| f[16..18].copy_from_slice(&[0, 27]),
                OuterError::Malformed,
            ),
            (|f| f[20] = 0x20, OuterError::Malformed),
            (
                |f| f[38..40].copy_from_slice(&[0xff, 0]),
                OuterError::Malformed,
            ),
            (|f| f.truncate(40), OuterError::Malformed),
        ];
        for (k, (change, want)) in cases.into_iter().enumerate() {
            let mut f = good.clone();
            change(&mut f);
            assert_eq!(parse(&f, LOCAL, 4789), Err(want), "case {k}");
        }
        // Any length, any bytes: an answer, never a panic.
        for len in 0..80 {
            for fill in [0u8, 0x45, 0xff] {
                let mut f = vec![fill; len];
                if len > 14 {
                    f[12..14].copy_from_slice(&[8, 0]);
                }
                let _ = parse(&f, LOCAL, 4789);
            }
        }
    }

    /// Random mutations of a good datagram: whatever is accepted has its
    /// payload inside the frame, behind at least the three headers.
    #[test]
    fn an_accepted_payload_always_lies_inside_the_frame() {
        let good = datagram(&[7; 64]);
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut accepted = 0;
        for _ in 0..100_000 {
            let mut f = good.clone();
            f.truncate(next() as usize % (good.len() + 1));
            for _ in 0..next() % 4 {
                if f.is_empty() {
                    break;
                }
                let at = next() as usize % f.len().min(48);
                f[at] = next() as u8;
            }
            if let Ok(o) = parse(&f, LOCAL, 4789) {
                accepted += 1;
                assert!(o.payload_at >= OUTER_HEADERS, "{o:?}");
                assert!(o.payload_at + o.payload_len <= f.len(), "{o:?} in {f:?}");
            }
        }
        assert!(accepted > 0);
    }
}
