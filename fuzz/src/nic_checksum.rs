//! The `nic_checksum` target: arbitrary frames from a NIC's peer into the
//! NIC port's software checksum completion ([`complete_partial`], what
//! `--checksum complete`, or `auto` on a veth, runs on every received
//! frame).
//!
//! The frame is either the input's bytes or a TCP/UDP over IPv4/IPv6
//! frame (optionally VLAN-tagged) built from them, with its checksum field
//! left partial (the folded pseudo-header sum, as a stack with offload
//! sends it), finished, or as given. It lies between guard bytes.
//!
//! Checked: no panic; the guard bytes around the frame are untouched; a
//! frame not changed is reported unchanged; a changed frame differs only
//! in the checksum field of a TCP or UDP segment over IPv4 or IPv6, which
//! now verifies (by a separate reading of the headers here); a frame whose
//! checksum already verified is never changed.

use switch_user::nic::checksum::complete_partial;

use crate::input::Input;

/// Longest frame (a jumbo frame).
const MAX_FRAME: usize = 9216;
/// Guard bytes on each side of the frame.
const GUARD: usize = 64;
const GUARD_BYTE: u8 = 0xA5;

/// A TCP or UDP segment as read here: the checksum field's offset, the
/// segment's bounds and the pseudo-header sum.
struct Segment {
    field: usize,
    start: usize,
    end: usize,
    pseudo: u64,
}

fn sum16(data: &[u8]) -> u64 {
    data.chunks(2)
        .map(|c| u64::from(c[0]) << 8 | u64::from(*c.get(1).unwrap_or(&0)))
        .sum()
}

fn fold(mut s: u64) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

fn be16(f: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*f.get(at)?, *f.get(at + 1)?]))
}

/// Reads the headers: Ethernet, at most one 802.1Q tag, IPv4 (not a
/// fragment) or IPv6 (no extension header), TCP or UDP long enough for
/// its header.
fn segment(f: &[u8]) -> Option<Segment> {
    let mut l3 = 14;
    let mut ethertype = be16(f, 12)?;
    if ethertype == 0x8100 {
        ethertype = be16(f, 16)?;
        l3 = 18;
    }
    let (start, end, proto, addrs) = match ethertype {
        0x0800 => {
            let v_ihl = *f.get(l3)?;
            let ihl = usize::from(v_ihl & 15) * 4;
            f.get(l3 + 19)?;
            if v_ihl >> 4 != 4 || ihl < 20 || be16(f, l3 + 6)? & 0x3fff != 0 {
                return None;
            }
            let total = usize::from(be16(f, l3 + 2)?);
            if total < ihl || l3 + total > f.len() {
                return None;
            }
            (l3 + ihl, l3 + total, f[l3 + 9], &f[l3 + 12..l3 + 20])
        }
        0x86DD => {
            f.get(l3 + 39)?;
            if f[l3] >> 4 != 6 {
                return None;
            }
            let payload = usize::from(be16(f, l3 + 4)?);
            if l3 + 40 + payload > f.len() {
                return None;
            }
            (l3 + 40, l3 + 40 + payload, f[l3 + 6], &f[l3 + 8..l3 + 40])
        }
        _ => return None,
    };
    let field = match proto {
        6 if end - start >= 20 => start + 16,
        17 if end - start >= 8 => start + 6,
        _ => return None,
    };
    let pseudo = sum16(addrs) + u64::from(proto) + (end - start) as u64;
    Some(Segment {
        field,
        start,
        end,
        pseudo,
    })
}

fn verifies(f: &[u8], s: &Segment) -> bool {
    fold(s.pseudo + sum16(&f[s.start..s.end])) == 0xffff
}

/// Builds a frame from the input: raw bytes, or headers around a payload.
fn build(input: &mut Input) -> Vec<u8> {
    let kind = input.u8();
    if kind & 7 == 0 {
        return input.run(MAX_FRAME).to_vec();
    }
    let v6 = kind & 1 != 0;
    let udp = kind & 2 != 0;
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    if kind & 8 != 0 {
        f.extend_from_slice(&[0x81, 0, 0, 10]);
    }
    f.extend_from_slice(if v6 { &[0x86, 0xDD] } else { &[0x08, 0x00] });
    let l4_len = if udp { 8 } else { 20 };
    let payload = input.run(MAX_FRAME - 80);
    let seg_len = l4_len + payload.len();
    let l3 = f.len();
    if v6 {
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&(seg_len as u16).to_be_bytes());
        f.extend_from_slice(&[if udp { 17 } else { 6 }, 64]);
        f.extend_from_slice(input.bytes(32));
        f.resize(l3 + 40, 0);
    } else {
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&((20 + seg_len) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0, 0x40, 0, 64, if udp { 17 } else { 6 }, 0, 0]);
        f.extend_from_slice(input.bytes(8));
        f.resize(l3 + 20, 0);
    }
    let start = f.len();
    f.extend_from_slice(input.bytes(l4_len));
    f.resize(start + l4_len, 0);
    if udp {
        f[start + 4..start + 6].copy_from_slice(&(seg_len as u16).to_be_bytes());
    }
    f.extend_from_slice(payload);
    if let Some(s) = segment(&f) {
        let field = s.field;
        match (kind >> 4) & 3 {
            // Partial: the folded pseudo-header sum.
            0 | 1 => f[field..field + 2].copy_from_slice(&fold(s.pseudo).to_be_bytes()),
            // Finished.
            2 => {
                f[field..field + 2].copy_from_slice(&[0, 0]);
                let check = !fold(s.pseudo + sum16(&f[s.start..s.end]));
                f[field..field + 2].copy_from_slice(&check.to_be_bytes());
            }
            _ => {}
        }
    }
    // Cut or extend past the IP length.
    match kind >> 6 {
        1 => f.truncate(usize::from(input.u16())),
        2 => f.extend_from_slice(input.run(64)),
        _ => {}
    }
    f
}

/// Runs one input: frames until it ends.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    while !input.done() {
        let frame = build(&mut input);
        check(&frame);
    }
}

fn check(frame: &[u8]) {
    let len = frame.len();
    let mut buffer = vec![GUARD_BYTE; len + 2 * GUARD];
    buffer[GUARD..GUARD + len].copy_from_slice(frame);
    let seg = segment(frame);
    let was_right = seg.as_ref().is_some_and(|s| verifies(frame, s));
    let changed = complete_partial(&mut buffer[GUARD..GUARD + len]);
    assert!(
        buffer[..GUARD].iter().all(|&b| b == GUARD_BYTE)
            && buffer[GUARD + len..].iter().all(|&b| b == GUARD_BYTE),
        "wrote outside the frame"
    );
    let after = &buffer[GUARD..GUARD + len];
    if !changed {
        assert_eq!(after, frame, "changed but reported unchanged");
        return;
    }
    let s =
        seg.unwrap_or_else(|| panic!("completed a frame that is no TCP/UDP segment: {frame:02x?}"));
    assert!(!was_right, "changed a frame whose checksum was right");
    for (i, (a, b)) in after.iter().zip(frame).enumerate() {
        assert!(
            a == b || i == s.field || i == s.field + 1,
            "byte {i} changed outside the checksum field"
        );
    }
    assert!(
        verifies(after, &s),
        "completed checksum does not verify: {after:02x?}"
    );
    if s.field == s.start + 6 {
        assert_ne!(be16(after, s.field), Some(0), "UDP checksum completed as 0");
    }
}
