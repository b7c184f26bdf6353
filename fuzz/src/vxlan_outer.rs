//! The `vxlan_outer` target: arbitrary frames from the underlay into an
//! AF_XDP tunnel's outer-header check ([`parse`], what `--underlay-xdp`
//! runs on every frame the XDP program hands over, before any byte of the
//! VXLAN datagram is read).
//!
//! The frame is either the input's bytes, or a datagram built with
//! [`build`] (addresses, ports and payload from the input) and then changed
//! at up to eight places chosen by the input.
//!
//! Checked: no panic; an accepted frame is IPv4 UDP to our address and
//! port, not a fragment, with a header length of 20 to 60 bytes, its
//! payload inside the frame, the IP total length and the UDP length
//! (read here separately) covering it, and its source address and MAC as
//! the frame says; a built datagram left unchanged is accepted, with its
//! payload exactly where it was written.

use std::net::Ipv4Addr;

use switch_user::tunnel::outer::{build, parse, Addresses, OUTER_HEADERS};

use crate::input::Input;

/// Our VTEP address.
pub const LOCAL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// Our UDP port.
pub const PORT: u16 = 4789;
/// Longest frame (a jumbo frame).
const MAX_FRAME: usize = 9216;

/// A datagram to `dst:dst_port` from `src:src_port` carrying `payload`.
fn datagram(src: Ipv4Addr, dst: Ipv4Addr, ports: (u16, u16), payload: &[u8]) -> Vec<u8> {
    let udp_len = (8 + payload.len()) as u16;
    let mut head = [0u8; 34];
    let a = Addresses {
        src_mac: [2, 0, 0, 0, 0, 2],
        dst_mac: [2, 0, 0, 0, 0, 1],
        src_ip: src,
        dst_ip: dst,
    };
    build(&mut head, &a, udp_len);
    let mut f = head.to_vec();
    f.extend_from_slice(&ports.0.to_be_bytes());
    f.extend_from_slice(&ports.1.to_be_bytes());
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

fn be16(f: &[u8], at: usize) -> usize {
    usize::from(u16::from_be_bytes([f[at], f[at + 1]]))
}

/// Checks an accepted frame against a separate reading of its headers.
fn check_accepted(frame: &[u8], outer: &switch_user::tunnel::outer::Outer) {
    assert!(frame.len() >= OUTER_HEADERS);
    assert_eq!(&frame[12..14], &[0x08, 0x00], "IPv4");
    let ip = &frame[14..];
    assert_eq!(ip[0] >> 4, 4, "version 4");
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    assert!((20..=60).contains(&ihl), "header length {ihl}");
    assert_eq!(ip[9], 17, "UDP");
    assert_eq!(be16(ip, 6) & 0x3fff, 0, "not a fragment");
    assert_eq!(Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]), LOCAL);
    assert_eq!(Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]), outer.src_ip);
    assert_eq!(&frame[6..12], &outer.src_mac);
    let total = be16(ip, 2);
    assert!(total <= ip.len(), "total length {total} inside the frame");
    assert_eq!(outer.payload_at, 14 + ihl + 8);
    let udp = &ip[ihl..];
    assert_eq!(be16(udp, 2), usize::from(PORT), "our port");
    let udp_len = be16(udp, 4);
    assert_eq!(udp_len, outer.payload_len + 8);
    assert!(ihl + udp_len <= total, "UDP inside the IP datagram");
    assert!(outer.payload_at + outer.payload_len <= frame.len());
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    while !input.done() {
        let built = input.u8() & 1 == 1;
        let mut frame;
        let mut payload = None;
        if built {
            let src = Ipv4Addr::from(input.u32());
            // Mostly to us, sometimes elsewhere.
            let dst = if input.u8() < 224 {
                LOCAL
            } else {
                Ipv4Addr::from(input.u32())
            };
            let ports = (input.u16(), if input.bool() { PORT } else { input.u16() });
            let body = input.run(MAX_FRAME - OUTER_HEADERS);
            frame = datagram(src, dst, ports, body);
            let changes = input.u8() % 9;
            for _ in 0..changes {
                let at = usize::from(input.u16()) % frame.len();
                frame[at] = input.u8();
            }
            if changes == 0 && dst == LOCAL && ports.1 == PORT {
                payload = Some(body);
            }
        } else {
            frame = input.run(MAX_FRAME).to_vec();
        }
        match parse(&frame, LOCAL, PORT) {
            Ok(outer) => {
                check_accepted(&frame, &outer);
                if let Some(body) = payload {
                    assert_eq!(
                        &frame[outer.payload_at..outer.payload_at + outer.payload_len],
                        body
                    );
                }
            }
            Err(e) => assert!(payload.is_none(), "a valid datagram refused: {e}"),
        }
    }
}
