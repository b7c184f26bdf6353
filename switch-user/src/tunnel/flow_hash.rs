//! The outer UDP source port from a hash of the inner flow, so that the
//! underlay's ECMP and RSS spread flows (RFC 7348 section 5 recommends the
//! dynamic range 49152-65535, which this uses).

/// First port of the range.
pub const PORT_MIN: u16 = 49152;
/// Ports in the range.
const PORT_SPAN: u32 = 65536 - PORT_MIN as u32;

fn mix(h: u64, v: u64) -> u64 {
    (h ^ v).wrapping_mul(0x100_0000_01b3)
}

/// The source port for `frame` (an Ethernet frame, at least 14 bytes):
/// a hash of its addresses and EtherType and, for IPv4, of the IP
/// addresses, protocol and (unfragmented TCP/UDP/SCTP) ports. Frames of
/// one flow always get the same port.
pub fn source_port(frame: &[u8]) -> u16 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let head = frame.len().min(14);
    for chunk in frame[..head].chunks(4) {
        let mut w = [0u8; 4];
        w[..chunk.len()].copy_from_slice(chunk);
        h = mix(h, u32::from_le_bytes(w) as u64);
    }
    if frame.len() >= 34 && frame[12] == 0x08 && frame[13] == 0x00 {
        let ip = &frame[14..];
        let ihl = (ip[0] & 0x0f) as usize * 4;
        let proto = ip[9];
        h = mix(h, proto as u64);
        h = mix(
            h,
            u32::from_le_bytes([ip[12], ip[13], ip[14], ip[15]]) as u64,
        );
        h = mix(
            h,
            u32::from_le_bytes([ip[16], ip[17], ip[18], ip[19]]) as u64,
        );
        let fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0;
        if !fragment && matches!(proto, 6 | 17 | 132) && ihl >= 20 && ip.len() >= ihl + 4 {
            let l4 = &ip[ihl..];
            h = mix(h, u32::from_le_bytes([l4[0], l4[1], l4[2], l4[3]]) as u64);
        }
    }
    h ^= h >> 29;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 32;
    PORT_MIN + (h as u32 % PORT_SPAN) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(src_port: u16) -> Vec<u8> {
        let mut f = vec![0u8; 54];
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[12] = 0x08;
        f[14] = 0x45;
        f[23] = 6;
        f[26..30].copy_from_slice(&[10, 0, 0, 1]);
        f[30..34].copy_from_slice(&[10, 0, 0, 2]);
        f[34..36].copy_from_slice(&src_port.to_be_bytes());
        f[36..38].copy_from_slice(&80u16.to_be_bytes());
        f
    }

    #[test]
    fn one_flow_one_port_and_flows_spread() {
        assert_eq!(source_port(&tcp(1000)), source_port(&tcp(1000)));
        let ports: std::collections::HashSet<u16> =
            (1000..1064).map(|p| source_port(&tcp(p))).collect();
        assert!(ports.len() > 48, "{} distinct ports", ports.len());
        assert!(ports.iter().all(|&p| p >= PORT_MIN));
        // Short and odd frames hash too.
        assert!(source_port(&[0u8; 14]) >= PORT_MIN);
        let mut odd = tcp(1);
        odd[14] = 0x4f; // an IHL past the frame
        assert!(source_port(&odd) >= PORT_MIN);
    }
}
