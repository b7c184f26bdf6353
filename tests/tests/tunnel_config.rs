//! Tunnel ports as configuration: only admins add and delete them, bad
//! settings are refused with the flag named, a tunnel is saved in the state
//! file, comes back after the daemon is killed, and `show-config` prints
//! the command that recreates it; one that cannot come back (its address is
//! gone) stays saved until `tunnel del`.

use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use anyhow::{ensure, Result};
use e2e_tests::access::{run_as, NOBODY, NOGROUP};
use e2e_tests::nic::extra_counters;
use e2e_tests::tunnel::{cli, tunnel_info, underlay};
use e2e_tests::{run_bounded, Daemon};
use serde_json::Value;
use testbed::{unique_temp_dir, Netns};

const ADD: &[&str] = &[
    "tunnel",
    "add",
    "vale0",
    "vx",
    "--vni",
    "100",
    "--local",
    "192.168.77.1",
    "--remote",
    "192.168.77.2",
    "--remote",
    "192.168.77.3",
    "--dst-port",
    "8472",
    "--underlay-mtu",
    "9000",
];

fn start(ns: &Netns, state: &Path) -> Result<Daemon> {
    let inner = testbed::Daemon::builder()
        .netns(ns)
        .state(state)
        .args(["--socket-mode", "0666"])
        .env("RUST_LOG", "info")
        .start()?;
    std::fs::set_permissions(inner.dir(), Permissions::from_mode(0o711))?;
    Ok(Daemon::wrap(inner))
}

fn as_nobody(daemon: &Daemon, args: &[&str]) -> Result<Output> {
    let mut cmd = daemon.command(args);
    run_as(&mut cmd, NOBODY, NOGROUP, &[]);
    Ok(run_bounded(cmd, Duration::from_secs(60))?)
}

fn refused(daemon: &Daemon, args: &[&str]) -> Result<String> {
    let out = daemon.cli(args)?;
    ensure!(!out.status.success(), "vswitch {args:?} succeeded");
    Ok(String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn tunnels_are_admin_only_checked_saved_and_restored() -> Result<()> {
    let dir = unique_temp_dir("vsw-tunnel")?;
    let state = dir.path().join("state.json");
    let a = Netns::new(testbed::DEFAULT_PREFIX)?;
    let b = Netns::new(testbed::DEFAULT_PREFIX)?;
    underlay(&a, &b)?;
    let mut daemon = start(&a, &state)?;

    let out = as_nobody(&daemon, ADD)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success()
            && stderr.contains("permission denied")
            && stderr.contains("add tunnel vale0:vx"),
        "nobody added a tunnel: {stderr}"
    );
    cli(&daemon, ADD)?;
    let listed = as_nobody(&daemon, &["tunnel", "list"])?;
    ensure!(listed.status.success(), "{listed:?}");
    ensure!(String::from_utf8_lossy(&listed.stdout).contains("vale0:vx"));

    // Refusals name what is wrong.
    let mut bad_vni = ADD.to_vec();
    bad_vni[3] = "vy";
    bad_vni[5] = "16777216";
    ensure!(refused(&daemon, &bad_vni)?.contains("--vni 16777216"));
    ensure!(refused(&daemon, ADD)?.contains("exists"));
    let mut same_socket = ADD.to_vec();
    same_socket[2] = "vale1";
    let e = refused(&daemon, &same_socket)?;
    ensure!(
        e.contains("VNI 100 on 192.168.77.1:8472 is already tunnel vale0:vx's"),
        "{e}"
    );
    // Another VNI shares the address and port.
    same_socket[5] = "101";
    cli(&daemon, &same_socket)?;
    cli(&daemon, &["tunnel", "del", "vale1", "vx"])?;
    daemon.wait_port("vale1:vx", false)?;
    let mut not_here = ADD.to_vec();
    not_here[3] = "vz";
    not_here[7] = "192.168.99.1";
    ensure!(refused(&daemon, &not_here)?.contains("cannot bind"));

    let info = tunnel_info(&daemon, "vale0:vx")?;
    assert_eq!(info["spec"]["vni"], 100, "{info}");
    assert_eq!(info["spec"]["underlay_mtu"], 9000, "{info}");
    let list = daemon.cli_json(&["list", "--json"])?;
    ensure!(
        list.to_string().contains(r#""kind":"tunnel""#),
        "no tunnel port in {list}"
    );
    let extra = extra_counters(&daemon, "vale0:vx")?;
    assert_eq!(extra["vxlan_vni"], 100, "{extra:?}");

    let config = cli(&daemon, &["show-config"])?;
    let expected = ["vswitch"]
        .iter()
        .chain(ADD)
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    ensure!(
        config.lines().any(|l| l == expected),
        "show-config lacks `{expected}`:\n{config}"
    );
    let saved: Value = serde_json::from_slice(&std::fs::read(&state)?)?;
    assert_eq!(saved["tunnels"][0]["port"], "vale0:vx", "{saved}");

    daemon.proc_mut().kill(libc::SIGKILL)?;
    daemon.proc_mut().wait_timeout(Duration::from_secs(10))?;
    drop(daemon);
    let daemon = start(&a, &state)?;
    assert_eq!(tunnel_info(&daemon, "vale0:vx")?, info, "not restored");

    let out = as_nobody(&daemon, &["tunnel", "del", "vale0", "vx"])?;
    ensure!(!out.status.success(), "nobody deleted a tunnel");
    cli(&daemon, &["tunnel", "del", "vale0", "vx"])?;
    daemon.wait_port("vale0:vx", false)?;
    ensure!(refused(&daemon, &["tunnel", "del", "vale0", "vx"])?.contains("no tunnel"));
    let saved: Value = serde_json::from_slice(&std::fs::read(&state)?)?;
    ensure!(saved.get("tunnels").is_none(), "{saved}");
    ensure!(cli(&daemon, &["show-config"])?.trim().is_empty());
    // The socket is free again.
    cli(&daemon, ADD)?;

    // A tunnel whose local address is gone is not restored but stays
    // saved, until `tunnel del` forgets it.
    let mut daemon = daemon;
    daemon.proc_mut().kill(libc::SIGKILL)?;
    daemon.proc_mut().wait_timeout(Duration::from_secs(10))?;
    drop(daemon);
    a.ip(["addr", "del", "192.168.77.1/24", "dev", "ul0"])?;
    let daemon = start(&a, &state)?;
    let list = daemon.cli_json(&["tunnel", "list", "--json"])?;
    ensure!(list.as_array().is_some_and(Vec::is_empty), "{list}");
    ensure!(
        daemon.log().contains("could not restore tunnel vale0:vx"),
        "{}",
        daemon.log()
    );
    let saved: Value = serde_json::from_slice(&std::fs::read(&state)?)?;
    assert_eq!(saved["tunnels"][0]["port"], "vale0:vx", "{saved}");
    cli(&daemon, &["tunnel", "del", "vale0", "vx"])?;
    let saved: Value = serde_json::from_slice(&std::fs::read(&state)?)?;
    ensure!(saved.get("tunnels").is_none(), "{saved}");
    Ok(())
}
