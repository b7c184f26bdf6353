//! Next-hop MACs of remote VTEPs for the AF_XDP underlay, which writes the
//! outer Ethernet header itself: learned from the outer source MAC of the
//! datagrams each remote sends, else read from the kernel's neighbour
//! table (`/proc/net/arp`, complete entries only, at most every
//! [`REREAD_MILLIS`]). While a remote's MAC is unknown its datagrams take
//! the socket path, where the kernel resolves it (ARP).

use std::collections::HashMap;
use std::net::Ipv4Addr;

use parking_lot::{Mutex, RwLock};

/// Shortest interval between two reads of the kernel's table.
pub const REREAD_MILLIS: u64 = 100;
/// Most remotes remembered.
pub const CAPACITY: usize = 4096;
/// `ATF_COM` of `/proc/net/arp`'s flags: the entry is resolved.
const ATF_COM: u32 = 0x2;

/// The next hop of each remote VTEP.
pub struct Neighbours {
    iface: String,
    macs: RwLock<HashMap<Ipv4Addr, [u8; 6]>>,
    /// When the kernel's table was last read (milliseconds of `clock`).
    last_read: Mutex<Option<u64>>,
}

impl Neighbours {
    /// An empty table for remotes reached through `iface`.
    pub fn new(iface: &str) -> Neighbours {
        Neighbours {
            iface: iface.to_owned(),
            macs: RwLock::new(HashMap::new()),
            last_read: Mutex::new(None),
        }
    }

    /// The next hop of `ip`, if known.
    pub fn get(&self, ip: Ipv4Addr) -> Option<[u8; 6]> {
        self.macs.read().get(&ip).copied()
    }

    /// Records that datagrams from `ip` came from `mac` (a unicast,
    /// non-zero MAC; anything else is ignored).
    pub fn learn(&self, ip: Ipv4Addr, mac: [u8; 6]) {
        if mac[0] & 1 != 0 || mac == [0; 6] || self.get(ip) == Some(mac) {
            return;
        }
        let mut macs = self.macs.write();
        if macs.len() < CAPACITY || macs.contains_key(&ip) {
            macs.insert(ip, mac);
        }
    }

    /// After a miss at `now_millis`: reads the kernel's table unless it
    /// was read less than [`REREAD_MILLIS`] ago; whether it was read.
    pub fn refresh(&self, now_millis: u64) -> bool {
        {
            let mut last = self.last_read.lock();
            if last.is_some_and(|t| now_millis.saturating_sub(t) < REREAD_MILLIS) {
                return false;
            }
            *last = Some(now_millis);
        }
        let Ok(text) = std::fs::read_to_string("/proc/net/arp") else {
            return false;
        };
        for (ip, mac) in parse_arp(&text, &self.iface) {
            self.learn(ip, mac);
        }
        true
    }

    /// Remotes known.
    pub fn len(&self) -> usize {
        self.macs.read().len()
    }

    /// Whether none is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The complete entries of `/proc/net/arp` on `iface`.
pub fn parse_arp(text: &str, iface: &str) -> Vec<(Ipv4Addr, [u8; 6])> {
    let mut out = Vec::new();
    // IP address  HW type  Flags  HW address  Mask  Device
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [ip, _, flags, mac, _, dev] = f[..] else {
            continue;
        };
        let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).unwrap_or(0);
        if dev != iface || flags & ATF_COM == 0 {
            continue;
        }
        let (Ok(ip), Some(mac)) = (ip.parse::<Ipv4Addr>(), parse_mac(mac)) else {
            continue;
        };
        out.push((ip, mac));
    }
    out
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_entries_of_the_interface_are_read() {
        let text = "IP address       HW type     Flags       HW address            Mask     Device
192.0.2.2        0x1         0x2         02:00:00:00:00:02     *        ul0
192.0.2.3        0x1         0x0         00:00:00:00:00:00     *        ul0
192.0.2.4        0x1         0x2         02:00:00:00:00:04     *        eth9
192.0.2.5        0x1         0x2         02:00:00:00:zz:05     *        ul0
short line
";
        assert_eq!(
            parse_arp(text, "ul0"),
            [(Ipv4Addr::new(192, 0, 2, 2), [2, 0, 0, 0, 0, 2])]
        );
    }

    #[test]
    fn learning_keeps_unicast_macs_and_rereads_are_spaced() {
        let n = Neighbours::new("no-such-if0");
        let ip = Ipv4Addr::new(192, 0, 2, 2);
        n.learn(ip, [1, 0, 0, 0, 0, 1]);
        n.learn(ip, [0; 6]);
        assert!(n.is_empty());
        n.learn(ip, [2, 0, 0, 0, 0, 2]);
        assert_eq!(n.get(ip), Some([2, 0, 0, 0, 0, 2]));
        assert!(n.refresh(1000));
        assert!(!n.refresh(1000 + REREAD_MILLIS - 1));
        assert!(n.refresh(1000 + REREAD_MILLIS));
        assert_eq!(n.len(), 1);
    }
}
