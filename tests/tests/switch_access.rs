//! Access control on the control socket, end to end: a real daemon, the CLI
//! run as `nobody` with and without the socket's and the admin group, a
//! flood of connections from one user, and connections that never finish a
//! request.

use std::fs::Permissions;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{Context, Result};
use e2e_tests::access::{run_as, TestGroup, NOBODY, NOGROUP};
use e2e_tests::{run_bounded, Daemon};
use serde_json::Value;
use switch_port::protocol::{AccessCounters, Header, Request, Response, DIR_REQUEST};
use testbed::{procfs, wait_until, Capture, Proc};

/// Lets other users reach the daemon's socket inside the test directory
/// (the socket's own mode and group still decide who may connect).
fn open_dir(daemon: &Daemon) -> Result<()> {
    std::fs::set_permissions(daemon.dir(), Permissions::from_mode(0o711))?;
    Ok(())
}

/// Runs the CLI against `daemon` as `nobody` with supplementary `groups`.
fn as_nobody(daemon: &Daemon, groups: &[u32], args: &[&str]) -> Result<Output> {
    let mut cmd = daemon.command(args);
    run_as(&mut cmd, NOBODY, NOGROUP, groups);
    Ok(run_bounded(cmd, Duration::from_secs(60))?)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn succeeded(out: &Output) -> Result<()> {
    anyhow::ensure!(out.status.success(), "failed: {out:?}");
    Ok(())
}

fn access_counters(daemon: &Daemon) -> Result<AccessCounters> {
    match daemon.connect()?.call(&Request::Stats { port: None })? {
        (Response::Stats { access, .. }, _) => Ok(access),
        other => anyhow::bail!("unexpected stats answer {other:?}"),
    }
}

fn port<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list["switches"]
        .as_array()?
        .iter()
        .flat_map(|s| s["ports"].as_array().into_iter().flatten())
        .find(|p| p["name"] == name)
}

#[test]
fn an_unprivileged_user_is_confined_to_its_own_ports() -> Result<()> {
    let users = TestGroup::create()?;
    let admins = TestGroup::create()?;
    let daemon = Daemon::start(&[
        "--socket-group",
        users.name(),
        "--admin-group",
        admins.name(),
        "--max-ports-per-user",
        "2",
        "--max-port-memory-per-user",
        "64",
    ])?;
    open_dir(&daemon)?;
    let meta = std::fs::symlink_metadata(daemon.socket())?;
    assert_eq!(meta.permissions().mode() & 0o7777, 0o660);
    assert_eq!(meta.gid(), users.gid());
    succeeded(&daemon.cli(&["create", "vale0:rootp"])?)?;

    // Not in the socket's group: the kernel refuses, the CLI says why.
    let out = as_nobody(&daemon, &[], &["list"])?;
    assert!(!out.status.success(), "{out:?}");
    assert!(
        stderr(&out).contains("permission denied connecting to the vswitch daemon")
            && stderr(&out).contains("--socket-group"),
        "{}",
        stderr(&out)
    );

    // In it: listing shows every port with its owner; its own ports work.
    let member = [users.gid()];
    let out = as_nobody(&daemon, &member, &["create", "vale0:mine"])?;
    succeeded(&out)?;
    let out = as_nobody(
        &daemon,
        &member,
        &[
            "pktgen",
            "vale0:mine",
            "--mode",
            "tx",
            "--count",
            "100",
            "-q",
        ],
    )?;
    succeeded(&out)?;
    let out = as_nobody(&daemon, &member, &["list", "--json"])?;
    succeeded(&out)?;
    let list: Value = serde_json::from_slice(&out.stdout)?;
    let rootp = port(&list, "vale0:rootp").context("no vale0:rootp")?;
    assert_eq!(rootp["owner_uid"], 0);
    assert_eq!(rootp["owner_name"], "root");
    let mine = port(&list, "vale0:mine").context("no vale0:mine")?;
    assert_eq!(mine["owner_uid"], NOBODY);
    assert_eq!(mine["owner_name"], "nobody");
    let out = as_nobody(&daemon, &member, &["stats", "--json"])?;
    succeeded(&out)?;
    let stats: Value = serde_json::from_slice(&out.stdout)?;
    let names: Vec<&str> = stats["ports"]
        .as_array()
        .context("no ports")?
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["vale0:mine"], "only its own counters");
    wait_until(Duration::from_secs(10), Duration::from_millis(10), || {
        daemon
            .counters("vale0:mine")
            .is_ok_and(|c| c.rx_packets == 100)
    })
    .context("the frames sent on its own port did not arrive")?;

    // Root's port and the admin operations: refused, saying why.
    let needs = format!("root or group {}", admins.name());
    for (args, refused) in [
        (
            &["pktgen", "vale0:rootp", "--mode", "tx", "--count", "1"][..],
            "may not open vale0:rootp",
        ),
        (&["delete", "vale0:rootp"][..], "may not delete vale0:rootp"),
        (
            &["stats", "vale0:rootp"][..],
            "may not read the counters of vale0:rootp",
        ),
        (&["attach", "vale0", "lo"][..], "may not attach lo to vale0"),
        (
            &["detach", "vale0", "lo"][..],
            "may not detach lo from vale0",
        ),
    ] {
        let out = as_nobody(&daemon, &member, args)?;
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            err.contains(&format!("permission denied: uid {NOBODY} {refused}"))
                && err.contains(&needs),
            "{args:?}: {err}"
        );
    }
    assert_eq!(daemon.port_names()?, ["vale0:rootp", "vale0:mine"]);

    // The per-user limits: two ports, 64 MiB.
    let out = as_nobody(
        &daemon,
        &member,
        &[
            "create",
            "vale1:big",
            "--ring-size",
            "16384",
            "--buf-size",
            "4096",
        ],
    )?;
    assert!(
        stderr(&out).contains("limit exceeded") && stderr(&out).contains("port memory"),
        "{out:?}"
    );
    succeeded(&as_nobody(&daemon, &member, &["create", "vale0:mine2"])?)?;
    let out = as_nobody(&daemon, &member, &["create", "vale0:mine3"])?;
    assert!(
        stderr(&out).contains(&format!("limit exceeded: uid {NOBODY} owns 2 ports")),
        "{out:?}"
    );
    // Root is not held to them.
    for p in ["vale2:r1", "vale2:r2", "vale2:r3"] {
        succeeded(&daemon.cli(&["create", p])?)?;
    }

    let counters = access_counters(&daemon)?;
    assert_eq!(counters.denied, 5, "{counters:?}");
    assert_eq!(counters.over_limit, 2, "{counters:?}");

    // A member of the admin group may delete root's port; root may delete
    // anyone's.
    succeeded(&as_nobody(
        &daemon,
        &[users.gid(), admins.gid()],
        &["delete", "vale0:rootp"],
    )?)?;
    succeeded(&daemon.cli(&["delete", "vale0:mine"])?)?;
    assert_eq!(
        daemon.port_names()?,
        ["vale0:mine2", "vale2:r1", "vale2:r2", "vale2:r3"]
    );
    Ok(())
}

#[test]
fn one_users_connection_flood_leaves_root_served() -> Result<()> {
    const FLOOD: u64 = 2000;
    const PER_USER: u64 = 64;
    let users = TestGroup::create()?;
    // A long control timeout: the flood's connections stay while measured.
    let daemon = Daemon::start(&["--socket-group", users.name(), "--control-timeout", "120"])?;
    open_dir(&daemon)?;
    let pid = daemon.pid();
    let before = procfs::usage(pid)?;

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_conn_flood"));
    cmd.arg(daemon.socket()).arg(FLOOD.to_string()).arg("120");
    run_as(&mut cmd, NOBODY, NOGROUP, &[users.gid()]);
    let mut flood = Proc::spawn("flood", cmd, Capture::Files(daemon.dir().to_owned()))?;
    wait_until(Duration::from_secs(60), Duration::from_millis(20), || {
        flood
            .read_stdout()
            .is_ok_and(|s| s.contains(&format!("ready {FLOOD}")))
    })
    .with_context(|| {
        format!(
            "the flood did not connect: {:?} {:?}",
            flood.read_stdout(),
            flood.read_stderr()
        )
    })?;
    wait_until(Duration::from_secs(30), Duration::from_millis(20), || {
        access_counters(&daemon).is_ok_and(|c| c.connections_refused >= FLOOD - PER_USER)
    })
    .with_context(|| format!("{:?}", access_counters(&daemon)))?;

    // Root is served, and the daemon holds only the user's share.
    let list = daemon.cli_json(&["list", "--json"])?;
    assert!(list["switches"].is_array(), "{list}");
    let during = procfs::usage(pid)?;
    assert!(
        during.open_fds <= before.open_fds + PER_USER as usize + 8,
        "{before:?} -> {during:?}"
    );
    assert!(
        during.rss_bytes <= before.rss_bytes + (64 << 20),
        "{before:?} -> {during:?}"
    );
    let counters = access_counters(&daemon)?;
    assert_eq!(
        counters.connections_refused,
        FLOOD - PER_USER,
        "{counters:?}"
    );

    // When the user's connections go, so do the daemon's descriptors.
    flood.stop()?;
    wait_until(Duration::from_secs(30), Duration::from_millis(20), || {
        procfs::open_fd_count(pid).is_ok_and(|n| n <= before.open_fds + 2)
    })
    .with_context(|| format!("fds stay at {:?}", procfs::open_fd_count(pid)))?;
    Ok(())
}

#[test]
fn silent_and_partial_requests_time_out() -> Result<()> {
    let daemon = Daemon::start(&["--control-timeout", "1"])?;
    let mut silent = UnixStream::connect(daemon.socket())?;
    let mut partial = UnixStream::connect(daemon.socket())?;
    let header = Header {
        direction: DIR_REQUEST,
        payload_len: 100,
        fds: 0,
    }
    .encode();
    partial.write_all(&header)?;
    partial.write_all(b"{\"request\":")?;
    // A connection that completed a request may idle between requests.
    let mut idle = daemon.connect()?;
    idle.call(&Request::Status {})?;

    for (what, stream) in [("silent", &mut silent), ("partial", &mut partial)] {
        stream.set_read_timeout(Some(Duration::from_secs(20)))?;
        let mut buf = [0u8; 64];
        let n = stream
            .read(&mut buf)
            .with_context(|| format!("the {what} connection was not closed"))?;
        assert_eq!(n, 0, "{what}: the daemon sent {:?}", &buf[..n]);
    }
    // Idle for longer than the timeout: the subject of this test.
    std::thread::sleep(Duration::from_millis(2500));
    idle.call(&Request::List {})
        .context("an idle connection was closed")?;
    let counters = access_counters(&daemon)?;
    assert!(counters.timed_out >= 2, "{counters:?}");
    Ok(())
}
