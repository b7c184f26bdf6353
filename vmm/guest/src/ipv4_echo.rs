//! Answers a host stack on the guest's address (`ip=A.B.C.D/N`): ARP
//! requests for it, ICMP echo requests to it, and every UDP datagram to it
//! (sent back to its source address and port, payload unchanged). Pure
//! functions from a received frame to the reply frame; everything else a
//! Linux host sends (broadcast ARP for other addresses, IPv6 neighbour
//! discovery, fragments, other protocols) is ignored with a reason.
//!
//! Every field of a received frame is untrusted: lengths are checked
//! against the frame, checksums verified, and a reply is only built when
//! it fits the caller's buffer.

use core::fmt;

use crate::inet_checksum::ones_sum;

/// Ethernet header length.
const ETH_LEN: usize = 14;
/// The Ethernet minimum without FCS; shorter replies are zero-padded.
const MIN_FRAME: usize = 60;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const IP_PROTO_ICMP: u8 = 1;
const IP_PROTO_UDP: u8 = 17;
const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP_ECHO_REPLY: u8 = 0;
/// TTL of the replies.
const REPLY_TTL: u8 = 64;
/// ARP over Ethernet for IPv4: header and body.
const ARP_LEN: usize = 28;

/// The guest's IPv4 address and prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Net {
    /// The address.
    pub addr: [u8; 4],
    /// The prefix length (1..=32).
    pub prefix: u8,
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.addr;
        write!(f, "{}.{}.{}.{}/{}", a[0], a[1], a[2], a[3], self.prefix)
    }
}

/// Why `A.B.C.D/N` is not a usable guest address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetError {
    /// Not four decimal octets, a slash and a prefix length.
    Syntax,
    /// Prefix length outside 1..=32.
    Prefix,
    /// 0.0.0.0/8, loopback, multicast, reserved or the limited broadcast.
    Special,
    /// The network or broadcast address of its own subnet.
    SubnetEdge,
}

/// Parses and validates `A.B.C.D/N`.
pub fn parse_net(text: &str) -> Result<Ipv4Net, NetError> {
    let (addr_text, prefix_text) = text.split_once('/').ok_or(NetError::Syntax)?;
    let mut addr = [0u8; 4];
    let mut parts = addr_text.split('.');
    for octet in addr.iter_mut() {
        *octet = parse_decimal(parts.next().ok_or(NetError::Syntax)?, 255)
            .ok_or(NetError::Syntax)? as u8;
    }
    if parts.next().is_some() {
        return Err(NetError::Syntax);
    }
    let prefix = parse_decimal(prefix_text, 32).ok_or(NetError::Syntax)? as u8;
    if prefix == 0 {
        return Err(NetError::Prefix);
    }
    if addr[0] == 0 || addr[0] == 127 || addr[0] >= 224 {
        return Err(NetError::Special);
    }
    if prefix <= 30 {
        let value = u32::from_be_bytes(addr);
        let host_mask = u32::MAX >> prefix;
        if value & host_mask == 0 || value & host_mask == host_mask {
            return Err(NetError::SubnetEdge);
        }
    }
    Ok(Ipv4Net { addr, prefix })
}

/// 1 to 3 decimal digits, at most `max`.
fn parse_decimal(text: &str, max: u32) -> Option<u32> {
    if text.is_empty() || text.len() > 3 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value = text.bytes().fold(0u32, |n, b| n * 10 + (b - b'0') as u32);
    (value <= max).then_some(value)
}

/// What a reply answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// An ARP reply for our address.
    Arp,
    /// An ICMP echo reply.
    IcmpEcho,
    /// The UDP datagram sent back.
    UdpEcho,
}

/// Why a frame got no reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ignored {
    /// Neither IPv4 nor ARP (IPv6, test frames, anything else).
    OtherEtherType,
    /// For another MAC, or an ARP/IPv4 packet for another address, or an
    /// ARP that is not a request.
    NotForUs,
    /// Shorter than its headers say, or malformed headers.
    Malformed,
    /// An IPv4 header, ICMP or UDP checksum that does not match.
    BadChecksum,
    /// A fragment, or a header with options.
    Unsupported,
    /// Another IP protocol, or an ICMP message that is not an echo request.
    OtherProtocol,
    /// The reply would not fit the buffer.
    TooLong,
}

/// Builds into `out` the reply to `frame` for a guest with MAC `mac` and
/// address `net`; returns what it answers and the reply's length (at
/// least 60 bytes, padded with zeros).
pub fn reply(
    frame: &[u8],
    mac: [u8; 6],
    net: &Ipv4Net,
    out: &mut [u8],
) -> Result<(Answer, usize), Ignored> {
    if frame.len() < ETH_LEN {
        return Err(Ignored::Malformed);
    }
    let dst = &frame[0..6];
    let to_us = dst == mac;
    let broadcast = dst == [0xFF; 6];
    match u16::from_be_bytes([frame[12], frame[13]]) {
        ETHERTYPE_ARP if to_us || broadcast => arp_reply(frame, mac, net, out),
        ETHERTYPE_IPV4 if to_us => ipv4_reply(frame, mac, net, out),
        ETHERTYPE_ARP | ETHERTYPE_IPV4 => Err(Ignored::NotForUs),
        _ => Err(Ignored::OtherEtherType),
    }
}

fn arp_reply(
    frame: &[u8],
    mac: [u8; 6],
    net: &Ipv4Net,
    out: &mut [u8],
) -> Result<(Answer, usize), Ignored> {
    let arp = frame
        .get(ETH_LEN..ETH_LEN + ARP_LEN)
        .ok_or(Ignored::Malformed)?;
    // Ethernet (1), IPv4 (0x0800), 6-byte and 4-byte addresses.
    if arp[0..6] != [0, 1, 8, 0, 6, 4] {
        return Err(Ignored::Malformed);
    }
    if arp[6..8] != [0, 1] || arp[24..28] != net.addr {
        return Err(Ignored::NotForUs);
    }
    if out.len() < MIN_FRAME {
        return Err(Ignored::TooLong);
    }
    let (sender_mac, sender_ip) = (&arp[8..14], &arp[14..18]);
    out[..MIN_FRAME].fill(0);
    out[0..6].copy_from_slice(sender_mac);
    out[6..12].copy_from_slice(&mac);
    out[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    let body = &mut out[ETH_LEN..ETH_LEN + ARP_LEN];
    body[0..6].copy_from_slice(&[0, 1, 8, 0, 6, 4]);
    body[6..8].copy_from_slice(&[0, 2]);
    body[8..14].copy_from_slice(&mac);
    body[14..18].copy_from_slice(&net.addr);
    body[18..24].copy_from_slice(sender_mac);
    body[24..28].copy_from_slice(sender_ip);
    Ok((Answer::Arp, MIN_FRAME))
}

fn ipv4_reply(
    frame: &[u8],
    mac: [u8; 6],
    net: &Ipv4Net,
    out: &mut [u8],
) -> Result<(Answer, usize), Ignored> {
    let ip = &frame[ETH_LEN..];
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return Err(Ignored::Malformed);
    }
    let header_len = ((ip[0] & 0xF) as usize) * 4;
    let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    if header_len < 20 || total < header_len || total > ip.len() {
        return Err(Ignored::Malformed);
    }
    if internet_checksum(&ip[..header_len]) != 0 {
        return Err(Ignored::BadChecksum);
    }
    if ip[16..20] != net.addr {
        return Err(Ignored::NotForUs);
    }
    // More-fragments set or a fragment offset: not reassembled.
    let fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x3FFF != 0;
    if fragment || header_len != 20 {
        return Err(Ignored::Unsupported);
    }
    let payload = &ip[20..total];
    let answer = match ip[9] {
        IP_PROTO_ICMP => {
            if payload.len() < 8 || payload[0] != ICMP_ECHO_REQUEST || payload[1] != 0 {
                return Err(Ignored::OtherProtocol);
            }
            if internet_checksum(payload) != 0 {
                return Err(Ignored::BadChecksum);
            }
            Answer::IcmpEcho
        }
        IP_PROTO_UDP => {
            if payload.len() < 8 {
                return Err(Ignored::Malformed);
            }
            let udp_len = u16::from_be_bytes([payload[4], payload[5]]) as usize;
            if udp_len < 8 || udp_len > payload.len() {
                return Err(Ignored::Malformed);
            }
            let stored = u16::from_be_bytes([payload[6], payload[7]]);
            if stored != 0 && udp_checksum(&ip[12..16], &ip[16..20], &payload[..udp_len]) != 0 {
                return Err(Ignored::BadChecksum);
            }
            Answer::UdpEcho
        }
        _ => return Err(Ignored::OtherProtocol),
    };
    let len = ETH_LEN + total;
    if out.len() < len.max(MIN_FRAME) {
        return Err(Ignored::TooLong);
    }
    out[0..6].copy_from_slice(&frame[6..12]);
    out[6..12].copy_from_slice(&mac);
    out[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    let reply = &mut out[ETH_LEN..len];
    reply.copy_from_slice(&ip[..total]);
    reply[8] = REPLY_TTL;
    reply[12..16].copy_from_slice(&ip[16..20]);
    reply[16..20].copy_from_slice(&ip[12..16]);
    reply[10..12].fill(0);
    let sum = internet_checksum(&reply[..20]);
    reply[10..12].copy_from_slice(&sum.to_be_bytes());
    let (header, body) = reply.split_at_mut(20);
    match answer {
        Answer::IcmpEcho => {
            body[0] = ICMP_ECHO_REPLY;
            body[2..4].fill(0);
            let sum = internet_checksum(body);
            body[2..4].copy_from_slice(&sum.to_be_bytes());
        }
        Answer::UdpEcho => {
            let (src_port, dst_port) = ([body[0], body[1]], [body[2], body[3]]);
            body[0..2].copy_from_slice(&dst_port);
            body[2..4].copy_from_slice(&src_port);
            let udp_len = u16::from_be_bytes([body[4], body[5]]) as usize;
            body[6..8].fill(0);
            let sum = match udp_checksum(&header[12..16], &header[16..20], &body[..udp_len]) {
                // A computed 0 is sent as 0xFFFF (0 means "no checksum").
                0 => 0xFFFF,
                sum => sum,
            };
            body[6..8].copy_from_slice(&sum.to_be_bytes());
        }
        Answer::Arp => unreachable!("IPv4 answers only"),
    }
    out[len..len.max(MIN_FRAME)].fill(0);
    Ok((answer, len.max(MIN_FRAME)))
}

/// The Internet checksum of `bytes` (0 when `bytes` holds a valid one).
fn internet_checksum(bytes: &[u8]) -> u16 {
    !(ones_sum(bytes, 0) as u16)
}

/// The UDP checksum over the pseudo-header and `datagram` (0 when the
/// datagram holds a valid one).
fn udp_checksum(src: &[u8], dst: &[u8], datagram: &[u8]) -> u16 {
    let pseudo = ones_sum(src, 0) + ones_sum(dst, 0) + IP_PROTO_UDP as u32 + datagram.len() as u32;
    !(ones_sum(datagram, pseudo) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0, 0, 1];
    const PEER: [u8; 6] = [2, 0x76, 0x73, 0x6e, 0, 1];
    const NET: Ipv4Net = Ipv4Net {
        addr: [192, 0, 2, 10],
        prefix: 24,
    };
    const PEER_IP: [u8; 4] = [192, 0, 2, 1];

    fn eth(dst: [u8; 6], ethertype: u16, body: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&dst);
        f.extend_from_slice(&PEER);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(body);
        while f.len() < 60 {
            f.push(0);
        }
        f
    }

    fn arp_request(target: [u8; 4]) -> Vec<u8> {
        let mut b = vec![0, 1, 8, 0, 6, 4, 0, 1];
        b.extend_from_slice(&PEER);
        b.extend_from_slice(&PEER_IP);
        b.extend_from_slice(&[0; 6]);
        b.extend_from_slice(&target);
        eth([0xFF; 6], ETHERTYPE_ARP, &b)
    }

    fn ipv4(proto: u8, dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
        let total = 20 + payload.len();
        let mut h = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0x12,
            0x34,
            0x40,
            0,
        ];
        h.extend_from_slice(&[17, proto, 0, 0]);
        h.extend_from_slice(&PEER_IP);
        h.extend_from_slice(&dst);
        let sum = internet_checksum(&h);
        h[10..12].copy_from_slice(&sum.to_be_bytes());
        h.extend_from_slice(payload);
        eth(MAC, ETHERTYPE_IPV4, &h)
    }

    fn icmp_echo(data: &[u8]) -> Vec<u8> {
        let mut p = vec![ICMP_ECHO_REQUEST, 0, 0, 0, 0xAB, 0xCD, 0, 7];
        p.extend_from_slice(data);
        let sum = internet_checksum(&p);
        p[2..4].copy_from_slice(&sum.to_be_bytes());
        p
    }

    fn udp(data: &[u8], checksum: bool) -> Vec<u8> {
        let len = 8 + data.len();
        let mut p = vec![0x9C, 0x40, 0x00, 0x07, (len >> 8) as u8, len as u8, 0, 0];
        p.extend_from_slice(data);
        if checksum {
            let sum = udp_checksum(&PEER_IP, &NET.addr, &p);
            p[6..8].copy_from_slice(&sum.to_be_bytes());
        }
        p
    }

    #[test]
    fn nets_parse_with_validation() {
        assert_eq!(parse_net("192.0.2.10/24"), Ok(NET));
        assert_eq!(
            parse_net("10.9.0.100/32"),
            Ok(Ipv4Net {
                addr: [10, 9, 0, 100],
                prefix: 32
            })
        );
        assert_eq!(format!("{NET}"), "192.0.2.10/24");
        for bad in [
            "192.0.2.10",
            "192.0.2/24",
            "192.0.2.10.1/24",
            "192.0.2.256/24",
            "192.0.2.-1/24",
            "192.0.2.0010/24",
            "192.0..10/24",
            "192.0.2.10/33",
            "192.0.2.10/",
            "192.0.2.10/x",
        ] {
            assert_eq!(parse_net(bad), Err(NetError::Syntax), "{bad}");
        }
        assert_eq!(parse_net("192.0.2.10/0"), Err(NetError::Prefix));
        for special in [
            "0.1.2.3/8",
            "127.0.0.1/8",
            "224.0.0.1/4",
            "255.255.255.255/32",
        ] {
            assert_eq!(parse_net(special), Err(NetError::Special), "{special}");
        }
        assert_eq!(parse_net("192.0.2.0/24"), Err(NetError::SubnetEdge));
        assert_eq!(parse_net("192.0.2.255/24"), Err(NetError::SubnetEdge));
        assert!(parse_net("192.0.2.255/31").is_ok());
    }

    #[test]
    fn arp_requests_for_our_address_are_answered() {
        let mut out = [0xEEu8; 2048];
        let (answer, len) = reply(&arp_request(NET.addr), MAC, &NET, &mut out).unwrap();
        assert_eq!((answer, len), (Answer::Arp, 60));
        assert_eq!(&out[0..6], &PEER);
        assert_eq!(&out[6..12], &MAC);
        assert_eq!(&out[12..14], &[8, 6]);
        assert_eq!(&out[20..22], &[0, 2]);
        assert_eq!(&out[22..28], &MAC);
        assert_eq!(&out[28..32], &NET.addr);
        assert_eq!(&out[32..38], &PEER);
        assert_eq!(&out[38..42], &PEER_IP);
        assert!(out[42..60].iter().all(|&b| b == 0));
        // For another address, or a reply: nothing.
        assert_eq!(
            reply(&arp_request([192, 0, 2, 11]), MAC, &NET, &mut out),
            Err(Ignored::NotForUs)
        );
        let mut not_request = arp_request(NET.addr);
        not_request[21] = 2;
        assert_eq!(
            reply(&not_request, MAC, &NET, &mut out),
            Err(Ignored::NotForUs)
        );
        let mut bad = arp_request(NET.addr);
        bad[19] = 16;
        assert_eq!(reply(&bad, MAC, &NET, &mut out), Err(Ignored::Malformed));
    }

    #[test]
    fn icmp_echo_requests_are_answered_with_valid_checksums() {
        let data: Vec<u8> = (0..56u8).collect();
        let request = ipv4(IP_PROTO_ICMP, NET.addr, &icmp_echo(&data));
        let mut out = [0u8; 2048];
        let (answer, len) = reply(&request, MAC, &NET, &mut out).unwrap();
        assert_eq!((answer, len), (Answer::IcmpEcho, request.len()));
        let ip = &out[14..len];
        assert_eq!(&out[0..6], &PEER);
        assert_eq!(&ip[12..16], &NET.addr);
        assert_eq!(&ip[16..20], &PEER_IP);
        assert_eq!(internet_checksum(&ip[..20]), 0);
        assert_eq!(ip[20], ICMP_ECHO_REPLY);
        assert_eq!(internet_checksum(&ip[20..]), 0);
        assert_eq!(&ip[24..], &request[38..]);
        // A corrupted request gets nothing.
        let mut corrupt = request.clone();
        corrupt[50] ^= 1;
        assert_eq!(
            reply(&corrupt, MAC, &NET, &mut out),
            Err(Ignored::BadChecksum)
        );
    }

    #[test]
    fn udp_goes_back_to_its_source_port() {
        let request = ipv4(IP_PROTO_UDP, NET.addr, &udp(b"hello, guest", true));
        let mut out = [0u8; 2048];
        let (answer, len) = reply(&request, MAC, &NET, &mut out).unwrap();
        assert_eq!(answer, Answer::UdpEcho);
        assert_eq!(len, 60);
        let ip = &out[14..];
        let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
        let udp_part = &ip[20..total];
        assert_eq!(&udp_part[0..4], &[0x00, 0x07, 0x9C, 0x40]);
        assert_eq!(udp_checksum(&ip[12..16], &ip[16..20], udp_part), 0);
        assert_eq!(&udp_part[8..], b"hello, guest");
        assert!(out[14 + total..60].iter().all(|&b| b == 0));
        // No checksum given: the reply still carries one.
        let request = ipv4(IP_PROTO_UDP, NET.addr, &udp(&[7; 1000], false));
        let (_, len) = reply(&request, MAC, &NET, &mut out).unwrap();
        assert_eq!(len, 14 + 20 + 1008);
        assert_eq!(udp_checksum(&out[26..30], &out[30..34], &out[34..len]), 0);
        // Too big for the buffer.
        assert_eq!(
            reply(&request, MAC, &NET, &mut [0u8; 512]),
            Err(Ignored::TooLong)
        );
    }

    #[test]
    fn what_a_linux_host_also_sends_is_ignored() {
        let mut out = [0u8; 2048];
        // IPv6 neighbour solicitation to a multicast MAC.
        let ipv6 = eth([0x33, 0x33, 0xFF, 0, 0, 1], 0x86DD, &[0x60; 40]);
        assert_eq!(
            reply(&ipv6, MAC, &NET, &mut out),
            Err(Ignored::OtherEtherType)
        );
        // IPv4 to another address, or to our address but another MAC.
        let other = ipv4(IP_PROTO_ICMP, [192, 0, 2, 11], &icmp_echo(&[]));
        assert_eq!(reply(&other, MAC, &NET, &mut out), Err(Ignored::NotForUs));
        let mut other_mac = ipv4(IP_PROTO_ICMP, NET.addr, &icmp_echo(&[]));
        other_mac[5] = 9;
        assert_eq!(
            reply(&other_mac, MAC, &NET, &mut out),
            Err(Ignored::NotForUs)
        );
        // TCP, an echo reply, a fragment, a lying length, a bad header sum.
        let tcp = ipv4(6, NET.addr, &[0; 20]);
        assert_eq!(
            reply(&tcp, MAC, &NET, &mut out),
            Err(Ignored::OtherProtocol)
        );
        let mut echo_reply = icmp_echo(&[]);
        echo_reply[0] = 0;
        let echo_reply = ipv4(IP_PROTO_ICMP, NET.addr, &echo_reply);
        assert_eq!(
            reply(&echo_reply, MAC, &NET, &mut out),
            Err(Ignored::OtherProtocol)
        );
        let mut fragment = ipv4(IP_PROTO_UDP, NET.addr, &udp(b"x", true));
        fragment[20] = 0x20;
        fragment[24] = 0;
        fragment[25] = 0;
        let sum = internet_checksum(&fragment[14..34]);
        fragment[24..26].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(
            reply(&fragment, MAC, &NET, &mut out),
            Err(Ignored::Unsupported)
        );
        let mut long = ipv4(IP_PROTO_UDP, NET.addr, &udp(b"x", true));
        long[16] = 0x10;
        assert_eq!(reply(&long, MAC, &NET, &mut out), Err(Ignored::Malformed));
        let mut bad_sum = ipv4(IP_PROTO_UDP, NET.addr, &udp(b"x", true));
        bad_sum[22] ^= 1;
        assert_eq!(
            reply(&bad_sum, MAC, &NET, &mut out),
            Err(Ignored::BadChecksum)
        );
        assert_eq!(
            reply(&[0u8; 10], MAC, &NET, &mut out),
            Err(Ignored::Malformed)
        );
        // Every truncation of a valid request is refused without a panic.
        let request = ipv4(IP_PROTO_UDP, NET.addr, &udp(&[1; 100], true));
        for cut in 0..request.len() - 1 {
            let _ = reply(&request[..cut], MAC, &NET, &mut out);
        }
    }
}
