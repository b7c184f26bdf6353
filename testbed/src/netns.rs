//! Network namespaces with unique names that are deleted on drop.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::link::{self, Mac, Queues};
use crate::{run_bounded, Error, Result};

/// The prefix used by the project's tests and benchmarks.
pub const DEFAULT_PREFIX: &str = "vsw";

/// Where `ip netns` keeps its namespace handles.
const NETNS_DIR: &str = "/run/netns";

/// The interval between pings of [`Netns::ping`].
const PING_INTERVAL: Duration = Duration::from_millis(200);
/// Time allowed for `ping` beyond its pings and reply timeout.
const PING_SLACK: Duration = Duration::from_secs(30);

static NEXT_NETNS: AtomicU64 = AtomicU64::new(0);

/// A network namespace created for a test or benchmark, named
/// `<prefix>-<pid>-<counter>`, deleted on drop (also while unwinding from a
/// panic). A process killed outright leaves it behind: [`sweep_stale`]
/// removes such leftovers.
#[derive(Debug)]
pub struct Netns {
    name: String,
    deleted: bool,
}

impl Netns {
    /// Creates a new namespace with loopback up.
    pub fn new(prefix: &str) -> Result<Netns> {
        check_prefix(prefix)?;
        let pid = std::process::id();
        let n = NEXT_NETNS.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}-{pid}-{n}");
        // This process never handed out this name, so an existing namespace
        // with it belongs to a dead process that had the same PID.
        if Path::new(NETNS_DIR).join(&name).exists() {
            link::run(Command::new("ip").args(["netns", "del", &name]))?;
        }
        link::run(Command::new("ip").args(["netns", "add", &name]))?;
        let netns = Netns {
            name,
            deleted: false,
        };
        netns.set_up("lo")?;
        Ok(netns)
    }

    /// The namespace's name (as `ip netns` knows it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's handle file, `/run/netns/<name>`.
    pub fn path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.name)
    }

    /// A command that runs `program` inside the namespace
    /// (`ip netns exec <name> <program>`); add arguments and start it with
    /// [`crate::Proc::spawn`] or run it directly. `ip` execs the program, so
    /// the child's PID is the program's.
    pub fn command<S: AsRef<OsStr>>(&self, program: S) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// Runs `program args...` inside the namespace to completion and returns
    /// its stdout; a failure exit is an error.
    pub fn run<I, S>(&self, program: &str, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        link::run(self.command(program).args(args))
    }

    /// Runs `ip -n <name> <args>` and returns its stdout.
    pub fn ip<I, S>(&self, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        link::ip(Some(&self.name), args)
    }

    /// Starts a thread that enters this namespace (setns) and runs `f`
    /// there; sockets it opens belong to the namespace. The join result is
    /// an error if entering failed.
    pub fn spawn_thread<T, F>(&self, thread_name: &str, f: F) -> Result<JoinHandle<Result<T>>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let handle = self.open()?;
        let name = self.name.clone();
        std::thread::Builder::new()
            .name(thread_name.to_string())
            .spawn(move || {
                enter(&handle, &name)?;
                drop(handle);
                Ok(f())
            })
            .map_err(|e| Error::io(format!("spawn thread {thread_name}"), e))
    }

    /// Runs `f` on a short-lived thread inside this namespace and returns
    /// its result.
    pub fn run_in<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        let handle = self.open()?;
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    enter(&handle, &self.name)?;
                    Ok(f())
                })
                .join()
                .map_err(|_| Error::ThreadPanicked(self.name.clone()))?
        })
    }

    /// Writes a sysctl of this namespace, `key` as a path under
    /// /proc/sys (`net/ipv6/conf/all/disable_ipv6`).
    pub fn set_sysctl(&self, key: &str, value: &str) -> Result<()> {
        if key.split('/').any(|part| part.is_empty() || part == "..") {
            return Err(Error::InvalidName {
                name: key.to_string(),
                reason: "not a sysctl path",
            });
        }
        let path = format!("/proc/sys/{key}");
        self.run_in(|| std::fs::write(&path, value))?
            .map_err(|e| Error::io(format!("write {path} in {}", self.name), e))
    }

    /// Turns IPv6 off for existing and future links, so that links going
    /// up send no router solicitations or MLD reports into test traffic.
    pub fn disable_ipv6(&self) -> Result<()> {
        self.set_sysctl("net/ipv6/conf/all/disable_ipv6", "1")?;
        self.set_sysctl("net/ipv6/conf/default/disable_ipv6", "1")
    }

    /// Creates a veth pair with `name` here and `peer` in `peer_ns` (or
    /// here), optionally multi-queue; both ends start down.
    pub fn add_veth(
        &self,
        name: &str,
        peer: &str,
        peer_ns: Option<&Netns>,
        queues: Option<Queues>,
    ) -> Result<()> {
        link::add_veth(
            Some(&self.name),
            name,
            peer,
            peer_ns.map(Netns::name),
            queues,
        )
    }

    /// Moves link `ifname` from this namespace into `target`.
    pub fn move_link(&self, ifname: &str, target: &Netns) -> Result<()> {
        link::move_to_netns(Some(&self.name), ifname, &target.name)
    }

    /// Moves link `ifname` from the caller's current namespace into this one.
    pub fn adopt_link(&self, ifname: &str) -> Result<()> {
        link::move_to_netns(None, ifname, &self.name)
    }

    /// Sets link `ifname` up.
    pub fn set_up(&self, ifname: &str) -> Result<()> {
        link::set_up(Some(&self.name), ifname)
    }

    /// Sets link `ifname` down.
    pub fn set_down(&self, ifname: &str) -> Result<()> {
        link::set_down(Some(&self.name), ifname)
    }

    /// Sets the MTU of `ifname`.
    pub fn set_mtu(&self, ifname: &str, mtu: u32) -> Result<()> {
        link::set_mtu(Some(&self.name), ifname, mtu)
    }

    /// Sets the MAC address of `ifname`.
    pub fn set_mac(&self, ifname: &str, mac: Mac) -> Result<()> {
        link::set_mac(Some(&self.name), ifname, mac)
    }

    /// Turns promiscuous mode of `ifname` on or off.
    pub fn set_promisc(&self, ifname: &str, on: bool) -> Result<()> {
        link::set_promisc(Some(&self.name), ifname, on)
    }

    /// Adds an address (`10.0.0.1/24`) to `ifname`.
    pub fn add_addr(&self, ifname: &str, cidr: &str) -> Result<()> {
        link::add_addr(Some(&self.name), ifname, cidr)
    }

    /// Creates a Linux bridge (STP off).
    pub fn add_bridge(&self, name: &str) -> Result<()> {
        link::add_bridge(Some(&self.name), name)
    }

    /// Makes `port` a port of `bridge`.
    pub fn enslave(&self, port: &str, bridge: &str) -> Result<()> {
        link::enslave(Some(&self.name), port, bridge)
    }

    /// Creates a Linux bridge `bridge` with a new TAP device for each of
    /// `taps` as its ports, all up (QEMU's `-netdev tap` attaches to them).
    pub fn add_tap_bridge(&self, bridge: &str, taps: &[&str]) -> Result<()> {
        self.add_bridge(bridge)?;
        for tap in taps {
            self.ip(["tuntap", "add", "dev", tap, "mode", "tap"])?;
            self.enslave(tap, bridge)?;
            self.set_up(tap)?;
        }
        self.set_up(bridge)
    }

    /// Adds a static bridge forwarding entry for `mac` on `port`.
    pub fn add_fdb_static(&self, port: &str, mac: Mac) -> Result<()> {
        link::add_fdb_static(Some(&self.name), port, mac)
    }

    /// The STP state of bridge port `port`.
    pub fn bridge_port_state(&self, port: &str) -> Result<String> {
        link::bridge_port_state(Some(&self.name), port)
    }

    /// The interface index of `ifname`.
    pub fn ifindex(&self, ifname: &str) -> Result<u32> {
        link::ifindex(Some(&self.name), ifname)
    }

    /// The MAC address of `ifname`.
    pub fn mac(&self, ifname: &str) -> Result<Mac> {
        link::mac(Some(&self.name), ifname)
    }

    /// Whether `ifname` is up with carrier.
    pub fn is_lower_up(&self, ifname: &str) -> Result<bool> {
        link::is_lower_up(Some(&self.name), ifname)
    }

    /// Whether `ifname` is in operation (`state UP`): see
    /// [`link::is_oper_up`].
    pub fn is_oper_up(&self, ifname: &str) -> Result<bool> {
        link::is_oper_up(Some(&self.name), ifname)
    }

    /// The `ip -d link show` text of `ifname`.
    pub fn link_details(&self, ifname: &str) -> Result<String> {
        link::show_details(Some(&self.name), ifname)
    }

    /// Whether an XDP program sits on `ifname`.
    pub fn has_xdp(&self, ifname: &str) -> Result<bool> {
        link::has_xdp(Some(&self.name), ifname)
    }

    /// The promiscuity count of `ifname`.
    pub fn promiscuity(&self, ifname: &str) -> Result<u32> {
        link::promiscuity(Some(&self.name), ifname)
    }

    /// Pings `target` from this namespace `count` times, 0.2 s apart, each
    /// reply awaited at most `reply_timeout` (whole seconds, at least 1);
    /// whether every ping was answered. The run is bounded.
    pub fn ping(&self, target: &str, count: u32, reply_timeout: Duration) -> Result<bool> {
        let wait = reply_timeout.as_secs().max(1);
        let mut command = self.command("ping");
        command.args(["-n", "-q", "-c", &count.to_string(), "-i", "0.2", "-W"]);
        command.arg(wait.to_string()).arg(target);
        let limit = PING_SLACK + Duration::from_secs(wait) + PING_INTERVAL * count;
        Ok(run_bounded(command, limit)?.status.success())
    }

    /// Deletes the namespace now, reporting failure (drop ignores it).
    pub fn delete(mut self) -> Result<()> {
        self.deleted = true;
        delete_netns(&self.name)
    }

    fn open(&self) -> Result<File> {
        let path = self.path();
        File::open(&path).map_err(|e| Error::io(format!("open {}", path.display()), e))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if !self.deleted {
            if let Err(e) = delete_netns(&self.name) {
                eprintln!("testbed: deleting namespace {}: {e}", self.name);
            }
        }
    }
}

fn enter(handle: &File, name: &str) -> Result<()> {
    // SAFETY: setns(2) only reads the descriptor, which `handle` keeps open
    // for the duration of the call; it changes the calling thread's network
    // namespace and nothing in this process's memory.
    let rc = unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(Error::io(
            format!("setns into {name}"),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

fn delete_netns(name: &str) -> Result<()> {
    link::run(Command::new("ip").args(["netns", "del", name])).map(drop)
}

fn check_prefix(prefix: &str) -> Result<()> {
    let valid = !prefix.is_empty()
        && prefix.len() <= 32
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidName {
            name: prefix.to_string(),
            reason: "a namespace prefix is 1-32 ASCII letters, digits, '_' or '-'",
        })
    }
}

/// The PID encoded in a namespace name made by [`Netns::new`] with
/// `prefix`, if it is one.
fn owner_pid(prefix: &str, name: &str) -> Option<u32> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('-')?;
    let (pid, counter) = rest.split_once('-')?;
    counter.parse::<u64>().ok()?;
    pid.parse().ok()
}

fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Deletes namespaces named `<prefix>-<pid>-<counter>` whose process is no
/// longer running (left by a test that was killed). Namespaces of live
/// processes, including this one, are kept. Returns the names deleted.
pub fn sweep_stale(prefix: &str) -> Result<Vec<String>> {
    check_prefix(prefix)?;
    let entries = match std::fs::read_dir(NETNS_DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("read {NETNS_DIR}"), e)),
    };
    let mut deleted = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("read {NETNS_DIR}"), e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let Some(pid) = owner_pid(prefix, &name) else {
            continue;
        };
        if process_alive(pid) {
            continue;
        }
        match delete_netns(&name) {
            Ok(()) => deleted.push(name),
            // Another sweeper may have removed it first.
            Err(_) if !Path::new(NETNS_DIR).join(&name).exists() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_parses_only_our_names() {
        assert_eq!(owner_pid("vsw", "vsw-123-0"), Some(123));
        assert_eq!(owner_pid("vsw", "vsw-123-x"), None);
        assert_eq!(owner_pid("vsw", "vsw-123"), None);
        assert_eq!(owner_pid("vsw", "vswx-123-0"), None);
        assert_eq!(owner_pid("vsw", "other-123-0"), None);
        assert_eq!(owner_pid("vsw-a", "vsw-a-7-1"), Some(7));
        assert_eq!(owner_pid("vsw", "vsw-a-7-1"), None);
    }

    #[test]
    fn prefixes_are_checked() {
        assert!(check_prefix("vsw").is_ok());
        assert!(check_prefix("").is_err());
        assert!(check_prefix("a/b").is_err());
        assert!(check_prefix("a b").is_err());
    }
}
