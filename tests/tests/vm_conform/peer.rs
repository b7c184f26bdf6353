//! The guest's peer on the other end of its link: answers the `conform`
//! workload's READY frames with the filter script and a marker, and records
//! every other frame the guest sends (the TX offload frames), decoded.
//!
//! The control frame format is the guest's (vmm/guest/src/workload/conform/
//! frames.rs): destination, source, EtherType 0x88B5, `CNF`, kind, phase, id.

use std::collections::BTreeSet;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{json, Value};
use switch_port::client::{Interest, PortClient};

/// The peer's address.
pub const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
/// The guest's address (given to both VMMs).
pub const GUEST_MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
const ETHERTYPE: u16 = 0x88B5;
const OTHER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x77];
/// The multicast address whose MTA bit the guest sets.
const MCAST_IN: [u8; 6] = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01];
const MCAST_OUT: [u8; 6] = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x02];
const BROADCAST: [u8; 6] = [0xff; 6];

/// Formats a MAC address for command lines.
pub fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A link to the guest: frames in and out.
pub trait Wire {
    /// Sends one frame to the guest.
    fn send(&mut self, frame: &[u8]) -> Result<()>;
    /// The next frame from the guest, or `None` after `timeout`.
    fn recv(&mut self, timeout: Duration) -> Result<Option<Vec<u8>>>;
}

/// A switch port on the guest's switch (our VMM).
pub struct PortWire(pub PortClient);

impl Wire for PortWire {
    fn send(&mut self, frame: &[u8]) -> Result<()> {
        anyhow::ensure!(self.0.send([frame]) == 1, "peer port TX ring full");
        Ok(())
    }

    fn recv(&mut self, timeout: Duration) -> Result<Option<Vec<u8>>> {
        let interest = Interest {
            rx: true,
            tx: false,
        };
        if !self.0.wait(interest, Duration::ZERO, Some(timeout))? {
            return Ok(None);
        }
        let frame = self.0.peek().map(|f| f.to_vec());
        self.0.consume();
        self.0.release_rx();
        Ok(frame)
    }
}

/// QEMU's `-netdev dgram` over unix sockets: one datagram per frame.
pub struct DgramWire {
    /// Our socket (QEMU's remote).
    pub socket: UnixDatagram,
    /// QEMU's socket (its local).
    pub qemu: PathBuf,
}

impl Wire for DgramWire {
    fn send(&mut self, frame: &[u8]) -> Result<()> {
        self.socket
            .send_to(frame, &self.qemu)
            .with_context(|| format!("sending to {}", self.qemu.display()))?;
        Ok(())
    }

    fn recv(&mut self, timeout: Duration) -> Result<Option<Vec<u8>>> {
        self.socket.set_read_timeout(Some(timeout))?;
        let mut buf = vec![0u8; 65536];
        match self.socket.recv(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                Ok(Some(buf))
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
}

fn control(dst: [u8; 6], kind: u8, phase: u8, id: u8, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&PEER_MAC);
    f[12..14].copy_from_slice(&ETHERTYPE.to_be_bytes());
    f[14..17].copy_from_slice(b"CNF");
    f[17] = kind;
    f[18] = phase;
    f[19] = id;
    for (i, b) in f.iter_mut().enumerate().skip(20) {
        *b = (i as u8).wrapping_mul(13).wrapping_add(id);
    }
    f
}

/// The filter script of one phase: (destination, length) by id.
pub const SCRIPT: [([u8; 6], usize); 10] = [
    (GUEST_MAC, 60),
    (OTHER_MAC, 60),
    (MCAST_IN, 60),
    (MCAST_OUT, 60),
    (BROADCAST, 60),
    (GUEST_MAC, 1514),
    (GUEST_MAC, 1518),
    (GUEST_MAC, 1522),
    (GUEST_MAC, 1600),
    (GUEST_MAC, 42),
];

/// What the peer saw.
#[derive(Default)]
pub struct PeerLog {
    /// Phases of the READY frames, in order (repeats included).
    pub readies: Vec<u8>,
    /// Every other frame from the guest.
    pub frames: Vec<Vec<u8>>,
    /// The guest sent END.
    pub ended: bool,
}

impl PeerLog {
    /// The log as the `peer` part of the document.
    pub fn to_json(&self) -> Value {
        json!({
            "readies": self.readies,
            "ended": self.ended,
            "frames": self.frames.iter().map(|f| decode(f)).collect::<Vec<_>>(),
        })
    }
}

/// Serves the guest until it sends END or `timeout` passes.
pub fn serve(wire: &mut dyn Wire, timeout: Duration) -> Result<PeerLog> {
    let deadline = Instant::now() + timeout;
    let mut log = PeerLog::default();
    let mut served = BTreeSet::new();
    while Instant::now() < deadline && !log.ended {
        let Some(frame) = wire.recv(Duration::from_millis(200))? else {
            continue;
        };
        let is_control = frame.len() >= 20
            && frame[12..14] == ETHERTYPE.to_be_bytes()
            && &frame[14..17] == b"CNF";
        if !is_control {
            log.frames.push(frame);
            continue;
        }
        match frame[17] {
            b'R' => {
                let phase = frame[18];
                log.readies.push(phase);
                if served.insert(phase) {
                    for (id, (dst, len)) in SCRIPT.iter().enumerate() {
                        wire.send(&control(*dst, b'F', phase, id as u8, *len))?;
                    }
                    wire.send(&control(GUEST_MAC, b'M', phase, 0, 60))?;
                }
            }
            b'E' => log.ended = true,
            _ => log.frames.push(frame),
        }
    }
    Ok(log)
}

fn sum16(data: &[u8], mut sum: u32) -> u32 {
    for chunk in data.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum
}

fn fnv1a(data: &[u8]) -> String {
    let h = data.iter().fold(0x811C_9DC5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("{h:#010x}")
}

/// The fields of a guest frame worth comparing: length, the VLAN tag, the
/// IPv4 and TCP/UDP header fields the offloads write, whether the
/// checksums verify, and a fingerprint of the whole frame.
pub fn decode(f: &[u8]) -> Value {
    let mut v = json!({ "len": f.len(), "fnv": fnv1a(f) });
    let mut l3 = 14;
    if f.len() >= 18 && f[12..14] == [0x81, 0x00] {
        v["vlan_tci"] = json!(format!("{:#06x}", u16::from_be_bytes([f[14], f[15]])));
        l3 = 18;
    }
    if f.len() < l3 + 20 || f[l3 - 2..l3] != [0x08, 0x00] {
        return v;
    }
    let ip = &f[l3..];
    let ihl = usize::from(ip[0] & 0xF) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    v["ip_total_len"] = json!(total);
    v["ip_id"] = json!(format!("{:#06x}", u16::from_be_bytes([ip[4], ip[5]])));
    v["ip_csum"] = json!(format!("{:#06x}", u16::from_be_bytes([ip[10], ip[11]])));
    v["ip_csum_ok"] = json!(sum16(&ip[..ihl], 0) == 0xFFFF);
    let proto = ip[9];
    if total < ihl || ip.len() < total {
        return v;
    }
    let l4 = &ip[ihl..total];
    let pseudo = [
        &ip[12..20],
        &[0, proto],
        &(l4.len() as u16).to_be_bytes()[..],
    ]
    .concat();
    let l4_ok = sum16(l4, sum16(&pseudo, 0)) == 0xFFFF;
    if proto == 6 && l4.len() >= 20 {
        v["tcp_seq"] = json!(u32::from_be_bytes([l4[4], l4[5], l4[6], l4[7]]));
        v["tcp_flags"] = json!(format!("{:#04x}", l4[13]));
        v["l4_csum"] = json!(format!("{:#06x}", u16::from_be_bytes([l4[16], l4[17]])));
        v["l4_csum_ok"] = json!(l4_ok);
    } else if proto == 17 && l4.len() >= 8 {
        v["udp_len"] = json!(u16::from_be_bytes([l4[4], l4[5]]));
        v["l4_csum"] = json!(format!("{:#06x}", u16::from_be_bytes([l4[6], l4[7]])));
        v["l4_csum_ok"] = json!(l4_ok);
    }
    v
}
