//! Tunnel test beds: an underlay veth between two namespaces (each end
//! with an address of 192.168.77.0/24, transmit checksum offload off so
//! that nothing crosses it with a partial checksum), the `vswitch tunnel`
//! commands (the TCP transfer over a tunnel is [`crate::tcp_transfer`]).

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use testbed::{wait_until, Netns};

use crate::Daemon;

/// The underlay's interface name on both sides.
pub const UNDERLAY_IF: &str = "ul0";

/// The underlay address of side `n` (1 or 2).
pub fn underlay_addr(n: u8) -> String {
    format!("192.168.77.{n}")
}

/// Joins `a` (192.168.77.1) and `b` (192.168.77.2) with a veth named
/// [`UNDERLAY_IF`] on both sides, both ends up.
pub fn underlay(a: &Netns, b: &Netns) -> Result<()> {
    a.add_veth(UNDERLAY_IF, UNDERLAY_IF, Some(b), None)?;
    for (ns, n) in [(a, 1), (b, 2)] {
        ns.add_addr(UNDERLAY_IF, &format!("{}/24", underlay_addr(n)))?;
        ns.run("ethtool", ["-K", UNDERLAY_IF, "tx", "off"])
            .context("turning off transmit checksum offload")?;
        ns.set_up(UNDERLAY_IF)?;
    }
    // In operation (which implies carrier), not only with carrier: the end
    // brought up first can send only once the kernel's link watcher has
    // seen its carrier (what it sends before is dropped, the first ARP
    // request too, and the kernel asks again only a second later: a ping
    // timed out).
    wait_until(Duration::from_secs(10), Duration::from_millis(10), || {
        [a, b]
            .iter()
            .all(|ns| ns.is_oper_up(UNDERLAY_IF).unwrap_or(false))
    })
    .context("the underlay did not come up")?;
    Ok(())
}

/// Runs the CLI; it must succeed. Returns its stdout.
pub fn cli(daemon: &Daemon, args: &[&str]) -> Result<String> {
    let out = daemon.cli(args)?;
    ensure!(
        out.status.success(),
        "vswitch {args:?} failed: {}\ndaemon log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        daemon.log()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `vswitch tunnel add vale0 NAME --vni VNI --local LOCAL --remote REMOTE EXTRA...`.
pub fn add_tunnel(
    daemon: &Daemon,
    name: &str,
    vni: u32,
    local: &str,
    remote: &str,
    extra: &[&str],
) -> Result<()> {
    let vni = vni.to_string();
    let mut args = vec![
        "tunnel", "add", "vale0", name, "--vni", &vni, "--local", local, "--remote", remote,
    ];
    args.extend_from_slice(extra);
    cli(daemon, &args)?;
    daemon.wait_port(&format!("vale0:{name}"), true)
}

/// The `tunnel list --json` entry of `port`.
pub fn tunnel_info(daemon: &Daemon, port: &str) -> Result<serde_json::Value> {
    let list = daemon.cli_json(&["tunnel", "list", "--json"])?;
    list.as_array()
        .and_then(|a| a.iter().find(|t| t["port"] == port))
        .cloned()
        .with_context(|| format!("no tunnel {port} in {list}"))
}
