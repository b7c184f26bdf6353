//! Network links: veth pairs, bridges, addresses, MACs and MTUs, driven
//! through `ip` and `bridge` from iproute2.
//!
//! Every function takes the namespace to act in: `Some(name)` for a named
//! namespace (`ip -n name ...`), `None` for the caller's current namespace.
//! [`crate::Netns`] has methods that fill in its own name.

use std::ffi::OsStr;
use std::fmt;
use std::process::Command;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Error, Result};

/// Longest interface name Linux accepts (IFNAMSIZ - 1).
pub const MAX_IFNAME_LEN: usize = 15;

static NEXT_IFNAME: AtomicU64 = AtomicU64::new(0);

/// An Ethernet MAC address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl FromStr for Mac {
    type Err = Error;

    fn from_str(text: &str) -> Result<Mac> {
        let parse_error = || Error::Parse {
            what: "MAC address",
            text: text.to_string(),
        };
        let mut bytes = [0u8; 6];
        let mut parts = text.split(':');
        for byte in &mut bytes {
            let part = parts.next().ok_or_else(parse_error)?;
            if part.len() != 2 {
                return Err(parse_error());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| parse_error())?;
        }
        if parts.next().is_some() {
            return Err(parse_error());
        }
        Ok(Mac(bytes))
    }
}

/// Queue counts for a multi-queue veth (`numrxqueues` / `numtxqueues`),
/// applied to both ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Queues {
    /// Receive queues.
    pub rx: u32,
    /// Transmit queues.
    pub tx: u32,
}

/// Checks that `name` is a usable interface name.
pub fn check_ifname(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("empty")
    } else if name.len() > MAX_IFNAME_LEN {
        Some("longer than 15 bytes")
    } else if name == "." || name == ".." {
        Some("reserved")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        Some("only ASCII letters, digits, '-', '_' and '.' are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// An interface name unique to this process: `<prefix><pid hex>-<counter
/// hex>`. For links in a shared namespace (the root one); inside a namespace
/// of your own, fixed names are fine.
pub fn unique_ifname(prefix: &str) -> Result<String> {
    let n = NEXT_IFNAME.fetch_add(1, Ordering::Relaxed);
    let name = format!("{prefix}{:x}-{n:x}", std::process::id());
    check_ifname(&name)?;
    Ok(name)
}

/// Runs a prepared command and returns its stdout; a failure exit becomes
/// [`Error::Command`] with its stderr.
pub(crate) fn run(command: &mut Command) -> Result<String> {
    let output = command
        .output()
        .map_err(|e| Error::io(format!("run {command:?}"), e))?;
    if !output.status.success() {
        return Err(Error::Command {
            command: format!("{command:?}"),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn tool<I, S>(program: &str, ns: Option<&str>, args: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(program);
    if let Some(ns) = ns {
        command.args(["-n", ns]);
    }
    command.args(args);
    run(&mut command)
}

/// Runs `ip [-n ns] <args>` and returns its stdout.
pub fn ip<I, S>(ns: Option<&str>, args: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    tool("ip", ns, args)
}

/// Runs `bridge [-n ns] <args>` and returns its stdout.
pub fn bridge<I, S>(ns: Option<&str>, args: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    tool("bridge", ns, args)
}

/// Creates a veth pair `name` (in `ns`) and `peer` (in `peer_ns`, or also
/// in `ns` when `None`), optionally multi-queue. Both ends start down.
pub fn add_veth(
    ns: Option<&str>,
    name: &str,
    peer: &str,
    peer_ns: Option<&str>,
    queues: Option<Queues>,
) -> Result<()> {
    check_ifname(name)?;
    check_ifname(peer)?;
    let mut args: Vec<String> = vec!["link".into(), "add".into(), name.into()];
    let queue_args = |args: &mut Vec<String>| {
        if let Some(q) = queues {
            args.extend([
                "numtxqueues".into(),
                q.tx.to_string(),
                "numrxqueues".into(),
                q.rx.to_string(),
            ]);
        }
    };
    queue_args(&mut args);
    args.extend(["type".into(), "veth".into(), "peer".into(), "name".into()]);
    args.push(peer.into());
    queue_args(&mut args);
    if let Some(peer_ns) = peer_ns {
        args.extend(["netns".into(), peer_ns.into()]);
    }
    ip(ns, &args).map(drop)
}

/// Moves link `ifname` from `ns` into the namespace named `target`. The link
/// goes down on the move.
pub fn move_to_netns(ns: Option<&str>, ifname: &str, target: &str) -> Result<()> {
    ip(ns, ["link", "set", "dev", ifname, "netns", target]).map(drop)
}

/// Deletes link `ifname` (for a veth, both ends go).
pub fn delete(ns: Option<&str>, ifname: &str) -> Result<()> {
    ip(ns, ["link", "del", "dev", ifname]).map(drop)
}

/// Whether link `ifname` exists in `ns`.
pub fn exists(ns: Option<&str>, ifname: &str) -> bool {
    ip(ns, ["-o", "link", "show", "dev", ifname]).is_ok()
}

/// Sets link `ifname` administratively up.
pub fn set_up(ns: Option<&str>, ifname: &str) -> Result<()> {
    ip(ns, ["link", "set", "dev", ifname, "up"]).map(drop)
}

/// Sets link `ifname` administratively down.
pub fn set_down(ns: Option<&str>, ifname: &str) -> Result<()> {
    ip(ns, ["link", "set", "dev", ifname, "down"]).map(drop)
}

/// Sets the MTU of `ifname`.
pub fn set_mtu(ns: Option<&str>, ifname: &str, mtu: u32) -> Result<()> {
    ip(ns, ["link", "set", "dev", ifname, "mtu", &mtu.to_string()]).map(drop)
}

/// Sets the MAC address of `ifname`.
pub fn set_mac(ns: Option<&str>, ifname: &str, mac: Mac) -> Result<()> {
    ip(
        ns,
        ["link", "set", "dev", ifname, "address", &mac.to_string()],
    )
    .map(drop)
}

/// Turns promiscuous mode of `ifname` on or off.
pub fn set_promisc(ns: Option<&str>, ifname: &str, on: bool) -> Result<()> {
    let state = if on { "on" } else { "off" };
    ip(ns, ["link", "set", "dev", ifname, "promisc", state]).map(drop)
}

/// Adds an address in CIDR notation (`10.0.0.1/24`, `fd00::1/64`) to
/// `ifname`.
pub fn add_addr(ns: Option<&str>, ifname: &str, cidr: &str) -> Result<()> {
    ip(ns, ["addr", "add", cidr, "dev", ifname]).map(drop)
}

/// Creates a Linux bridge `name` (STP off, so ports forward at once).
pub fn add_bridge(ns: Option<&str>, name: &str) -> Result<()> {
    check_ifname(name)?;
    ip(
        ns,
        [
            "link",
            "add",
            "name",
            name,
            "type",
            "bridge",
            "stp_state",
            "0",
        ],
    )
    .map(drop)
}

/// Makes `port` a port of bridge `bridge`.
pub fn enslave(ns: Option<&str>, port: &str, bridge: &str) -> Result<()> {
    ip(ns, ["link", "set", "dev", port, "master", bridge]).map(drop)
}

/// Adds a static forwarding entry: frames to `mac` leave the bridge
/// through `port`.
pub fn add_fdb_static(ns: Option<&str>, port: &str, mac: Mac) -> Result<()> {
    bridge(
        ns,
        [
            "fdb",
            "add",
            &mac.to_string(),
            "dev",
            port,
            "master",
            "static",
        ],
    )
    .map(drop)
}

fn show(ns: Option<&str>, ifname: &str, details: bool) -> Result<String> {
    let mut args = vec!["-o"];
    if details {
        args.push("-d");
    }
    args.extend(["link", "show", "dev", ifname]);
    ip(ns, args)
}

/// The interface index of `ifname`.
pub fn ifindex(ns: Option<&str>, ifname: &str) -> Result<u32> {
    let text = show(ns, ifname, false)?;
    text.split(':')
        .next()
        .and_then(|index| index.trim().parse().ok())
        .ok_or(Error::Parse {
            what: "interface index",
            text,
        })
}

/// The MAC address of `ifname`.
pub fn mac(ns: Option<&str>, ifname: &str) -> Result<Mac> {
    let text = show(ns, ifname, false)?;
    let mut words = text.split_whitespace();
    words
        .find(|word| *word == "link/ether")
        .and_then(|_| words.next())
        .ok_or_else(|| Error::Parse {
            what: "link/ether",
            text: text.clone(),
        })?
        .parse()
}

/// Whether `ifname` has carrier and is up (`LOWER_UP` among its flags).
pub fn is_lower_up(ns: Option<&str>, ifname: &str) -> Result<bool> {
    let text = show(ns, ifname, false)?;
    let flags = text
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(flags, _)| flags)
        .ok_or_else(|| Error::Parse {
            what: "link flags",
            text: text.clone(),
        })?;
    Ok(flags.split(',').any(|flag| flag == "LOWER_UP"))
}

/// Whether the kernel has put `ifname` into operation (`state UP`): its
/// link watcher has seen the carrier come up, which is also when it gives
/// the device its queueing discipline. Until then what the device sends
/// is dropped (the placeholder discipline drops everything), so one end
/// of a veth pair, brought up before its peer, has `LOWER_UP` a moment
/// before it can send; the kernel's first ARP request lost there is
/// retried only a second later.
pub fn is_oper_up(ns: Option<&str>, ifname: &str) -> Result<bool> {
    Ok(text_is_oper_up(&show(ns, ifname, false)?))
}

/// Whether an `ip -o link show` line says `state UP`.
fn text_is_oper_up(text: &str) -> bool {
    let mut words = text.split_whitespace();
    words.any(|word| word == "state") && words.next() == Some("UP")
}

/// The `ip -d link show` text of `ifname` (several lines: flags, link
/// layer, details, an attached XDP program).
pub fn show_details(ns: Option<&str>, ifname: &str) -> Result<String> {
    ip(ns, ["-d", "link", "show", "dev", ifname])
}

/// Whether an XDP program (native, generic or offloaded) sits on `ifname`.
pub fn has_xdp(ns: Option<&str>, ifname: &str) -> Result<bool> {
    Ok(text_has_xdp(&show_details(ns, ifname)?))
}

/// The per-queue counter `rx_queue_N_<stat>` for queues `0..queues`, from
/// the text `ethtool -S` printed (the veth driver's `xdp_redirect`, for
/// instance); `None` when one of them is missing.
pub fn queue_stat(ethtool_stats: &str, stat: &str, queues: usize) -> Option<Vec<u64>> {
    (0..queues)
        .map(|q| {
            let key = format!("rx_queue_{q}_{stat}:");
            let mut words = ethtool_stats.split_whitespace();
            words
                .find(|w| *w == key)
                .and_then(|_| words.next())
                .and_then(|v| v.parse().ok())
        })
        .collect()
}

fn text_has_xdp(text: &str) -> bool {
    text.split_whitespace().any(|word| {
        matches!(
            word,
            "xdp" | "xdpgeneric" | "xdpdrv" | "xdpoffload" | "xdpmulti"
        ) || word.starts_with("prog/xdp")
    })
}

/// The promiscuity count of `ifname` (how many users asked for
/// promiscuous mode).
pub fn promiscuity(ns: Option<&str>, ifname: &str) -> Result<u32> {
    let text = show_details(ns, ifname)?;
    let mut words = text.split_whitespace();
    words
        .find(|word| *word == "promiscuity")
        .and_then(|_| words.next())
        .and_then(|count| count.parse().ok())
        .ok_or(Error::Parse {
            what: "promiscuity",
            text,
        })
}

/// The queue counts of `ifname` as the kernel reports them.
pub fn queues(ns: Option<&str>, ifname: &str) -> Result<Queues> {
    let text = show(ns, ifname, true)?;
    let field = |key: &'static str| -> Result<u32> {
        let mut words = text.split_whitespace();
        words
            .find(|word| *word == key)
            .and_then(|_| words.next())
            .and_then(|value| value.parse().ok())
            .ok_or_else(|| Error::Parse {
                what: key,
                text: text.clone(),
            })
    };
    Ok(Queues {
        rx: field("numrxqueues")?,
        tx: field("numtxqueues")?,
    })
}

/// The STP state of bridge port `port` (`forwarding`, `learning`,
/// `disabled`, ...).
pub fn bridge_port_state(ns: Option<&str>, port: &str) -> Result<String> {
    let text = show(ns, port, true)?;
    let mut words = text.split_whitespace();
    let state = words
        .find(|word| *word == "bridge_slave")
        .and_then(|_| words.find(|word| *word == "state"))
        .and_then(|_| words.next());
    state.map(str::to_string).ok_or(Error::Parse {
        what: "bridge port state",
        text,
    })
}

/// A veth pair that is deleted on drop. Use it for links created outside a
/// namespace of your own (links inside a [`crate::Netns`] go with it).
#[derive(Debug)]
pub struct VethPair {
    ns: Option<String>,
    name: String,
    peer: String,
}

impl VethPair {
    /// Creates the pair like [`add_veth`] and brings both ends up.
    pub fn create(
        ns: Option<&str>,
        name: &str,
        peer: &str,
        peer_ns: Option<&str>,
        queues: Option<Queues>,
    ) -> Result<VethPair> {
        add_veth(ns, name, peer, peer_ns, queues)?;
        let pair = VethPair {
            ns: ns.map(str::to_string),
            name: name.to_string(),
            peer: peer.to_string(),
        };
        set_up(ns, name)?;
        set_up(peer_ns.or(ns), peer)?;
        Ok(pair)
    }

    /// The end created in `ns`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The other end.
    pub fn peer(&self) -> &str {
        &self.peer
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        // Deleting one end removes both; the end may already be gone with
        // its namespace.
        let _ = delete(self.ns.as_deref(), &self.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trip() {
        let mac: Mac = "02:00:0a:ff:00:01".parse().unwrap();
        assert_eq!(mac, Mac([2, 0, 10, 255, 0, 1]));
        assert_eq!(mac.to_string(), "02:00:0a:ff:00:01");
        assert!("02:00:0a:ff:00".parse::<Mac>().is_err());
        assert!("02:00:0a:ff:00:01:02".parse::<Mac>().is_err());
        assert!("02:00:0a:ff:00:zz".parse::<Mac>().is_err());
        assert!("2:00:0a:ff:00:01".parse::<Mac>().is_err());
    }

    #[test]
    fn per_queue_stats_are_read_from_ethtool_output() {
        let text =
            "NIC statistics:\n     rx_queue_0_xdp_redirect: 17\n     rx_queue_1_xdp_redirect: 4\n";
        assert_eq!(queue_stat(text, "xdp_redirect", 2), Some(vec![17, 4]));
        assert_eq!(queue_stat(text, "xdp_redirect", 3), None);
        assert_eq!(queue_stat(text, "xdp_drops", 1), None);
    }

    #[test]
    fn xdp_is_recognised_in_link_details() {
        let attached = "2: vsxa@if3: <BROADCAST,UP> mtu 1500 xdpgeneric qdisc noqueue\n    prog/xdp id 42 tag 0";
        assert!(text_has_xdp(attached));
        assert!(text_has_xdp("3: n0: <UP> mtu 1500 xdp qdisc"));
        assert!(!text_has_xdp("4: xdp0@if5: <UP> mtu 1500 qdisc noqueue"));
    }

    #[test]
    fn the_operational_state_is_read_from_link_show() {
        let up = "2: ul0@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DEFAULT";
        assert!(text_is_oper_up(up));
        let pending = "2: ul0@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noop state DOWN mode DEFAULT";
        assert!(!text_is_oper_up(pending));
        assert!(!text_is_oper_up(
            "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN"
        ));
    }

    #[test]
    fn interface_names_are_checked() {
        assert!(check_ifname("veth0").is_ok());
        assert!(check_ifname("").is_err());
        assert!(check_ifname("a-very-long-name0").is_err());
        assert!(check_ifname("bad name").is_err());
        assert!(check_ifname("a/b").is_err());
        let a = unique_ifname("tb").unwrap();
        let b = unique_ifname("tb").unwrap();
        assert_ne!(a, b);
        assert!(a.len() <= MAX_IFNAME_LEN);
    }
}
