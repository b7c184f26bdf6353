//! Saved state (`vswitch daemon --state FILE`): the configuration comes back
//! after the daemon is killed, a corrupt or newer state file stops the
//! daemon with a message naming it, and an interface that vanished is
//! reported and kept in the file.

use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use e2e_tests::access::{run_as, NOBODY, NOGROUP};
use e2e_tests::nic::{ping_from, NicBed, SWITCH};
use e2e_tests::{run_bounded, Daemon};
use serde_json::{json, Value};
use testbed::{unique_temp_dir, Netns};

const HOST_ADDR: &str = "10.9.0.254";

/// Starts a daemon in `ns` saving its configuration in `state`; any user
/// may connect.
fn start(ns: &Netns, state: &Path) -> Result<Daemon> {
    let inner = testbed::Daemon::builder()
        .netns(ns)
        .state(state)
        .args(["--socket-mode", "0666"])
        .env("RUST_LOG", "info")
        .start()?;
    Ok(Daemon::wrap(inner))
}

/// Runs the CLI; it must succeed. Returns its stdout.
fn cli(daemon: &Daemon, args: &[&str]) -> Result<String> {
    let out = daemon.cli(args)?;
    ensure!(
        out.status.success(),
        "vswitch {args:?} failed: {}\ndaemon log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        daemon.log()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The configuration fields of `list --json` (no ids, clients or
/// counters), ports sorted by name.
fn configuration(daemon: &Daemon) -> Result<Value> {
    let list = daemon.cli_json(&["list", "--json"])?;
    let mut out = Vec::new();
    for s in list["switches"].as_array().context("no switches")? {
        let mut ports: Vec<Value> = s["ports"]
            .as_array()
            .context("no ports")?
            .iter()
            .map(|p| {
                json!({
                    "name": p["name"], "kind": p["kind"], "persistent": p["persistent"],
                    "owner_uid": p["owner_uid"], "owner_name": p["owner_name"],
                    "ring_size": p["ring_size"], "buf_size": p["buf_size"], "mac": p["mac"],
                    "max_macs": p["max_macs"], "storm_pps": p["storm_pps"],
                })
            })
            .collect();
        ports.sort_by_key(|p| p["name"].to_string());
        out.push(json!({ "name": s["name"], "max_ports": s["max_ports"], "ports": ports }));
    }
    Ok(Value::Array(out))
}

/// Kills the daemon with SIGKILL (it saves nothing on the way out) and
/// waits until it is gone.
fn kill_9(daemon: &mut Daemon) -> Result<()> {
    let proc = daemon.proc_mut();
    proc.kill(libc::SIGKILL)?;
    proc.wait_timeout(Duration::from_secs(10))?
        .context("the daemon outlived SIGKILL")?;
    Ok(())
}

/// Pings across the switch: the host stack (through the host port) to
/// both namespaces, and one namespace to the other (NIC to NIC).
fn pings_across(bed: &NicBed) -> Result<()> {
    bed.switch.add_addr("hostp0", &format!("{HOST_ADDR}/24"))?;
    let (h1, h2) = (&bed.hosts[0], &bed.hosts[1]);
    ensure!(
        ping_from(&bed.switch, &h1.addr, 3)?,
        "host -> h1 failed: {}",
        bed.daemon.log()
    );
    ensure!(ping_from(&bed.switch, &h2.addr, 3)?, "host -> h2 failed");
    ensure!(h1.ping(&h2.addr, 3)?, "h1 -> h2 failed");
    Ok(())
}

#[test]
fn the_configuration_survives_kill_9() -> Result<()> {
    let dir = unique_temp_dir("vsw-state")?;
    let state = dir.path().join("state.json");
    let mut bed = NicBed::with_daemon(&["a0", "b0"], None, |ns| start(ns, &state))?;
    cli(
        &bed.daemon,
        &[
            "create",
            "vale0:p1",
            "--ring-size",
            "256",
            "--buf-size",
            "4096",
            "--mac",
            "02:00:00:00:00:aa",
            "--max-macs",
            "4",
            "--storm-pps",
            "1000",
        ],
    )?;
    cli(&bed.daemon, &["create", "vale1:q"])?;
    // A port of another user keeps its owner.
    std::fs::set_permissions(bed.daemon.dir(), Permissions::from_mode(0o711))?;
    let mut as_nobody = bed.daemon.command(&["create", "vale1:nobodys"]);
    run_as(&mut as_nobody, NOBODY, NOGROUP, &[]);
    let out = run_bounded(as_nobody, Duration::from_secs(60))?;
    ensure!(
        out.status.success(),
        "create as nobody failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    bed.attach("a0", &["--host", "--host-name", "hostp0"])?;
    bed.attach(
        "b0",
        &["--queues", "1", "--copy", "--pass", "02:00:00:00:00:99"],
    )?;
    // Saved before the commands returned.
    let saved: Value = serde_json::from_slice(&std::fs::read(&state)?)?;
    ensure!(saved["version"] == 1, "{saved}");
    ensure!(
        saved["ports"].as_array().map(Vec::len) == Some(3),
        "{saved}"
    );
    ensure!(
        saved["attachments"].as_array().map(Vec::len) == Some(2),
        "{saved}"
    );
    pings_across(&bed)?;
    let before = configuration(&bed.daemon)?;
    ensure!(
        before.to_string().contains("vale0:hostp0") && before.to_string().contains("65534"),
        "no host port or no port of nobody: {before}"
    );

    kill_9(&mut bed.daemon)?;
    bed.daemon = start(&bed.switch, &state)?;
    // The restore is done before the first request is served.
    let after = configuration(&bed.daemon)?;
    let log = bed.daemon.log();
    assert_eq!(before, after, "daemon log:\n{log}");
    for iface in ["a0", "b0"] {
        ensure!(
            bed.has_xdp(iface)?,
            "no XDP program on {iface} after restore"
        );
    }
    ensure!(
        log.contains("restored attachment of a0 to vale0"),
        "the restore is not logged:\n{log}"
    );
    pings_across(&bed)?;

    let config = cli(&bed.daemon, &["show-config"])?;
    let expected = [
        "vswitch create vale0:p1 --ring-size 256 --buf-size 4096 --mac 02:00:00:00:00:aa --max-macs 4 --storm-pps 1000",
        "vswitch create vale1:nobodys  # owner uid 65534 (nobody)",
        "vswitch create vale1:q",
        "vswitch attach vale0 a0 --host --host-name hostp0",
        "vswitch attach vale0 b0 --queues 1 --copy --pass 02:00:00:00:00:99",
    ];
    assert_eq!(config.lines().collect::<Vec<_>>(), expected);

    // Deleting and detaching are saved too.
    cli(&bed.daemon, &["delete", "vale1:q"])?;
    bed.detach("b0")?;
    let saved: Value = serde_json::from_slice(&std::fs::read(&state)?)?;
    ensure!(
        saved["ports"].as_array().map(Vec::len) == Some(2),
        "{saved}"
    );
    ensure!(
        saved["attachments"].as_array().map(Vec::len) == Some(1),
        "{saved}"
    );
    Ok(())
}

/// Starts a daemon on `state`, which must fail; returns its log.
fn refused_start(state: &Path) -> Result<String> {
    match testbed::Daemon::builder().state(state).start() {
        Err(testbed::Error::ExitedEarly { status, log, .. }) => {
            ensure!(!status.success(), "exited with {status}");
            Ok(log)
        }
        Err(e) => bail!("the daemon did not exit: {e}"),
        Ok(_) => bail!("the daemon started with {}", state.display()),
    }
}

#[test]
fn a_corrupt_state_file_stops_the_daemon() -> Result<()> {
    let dir = unique_temp_dir("vsw-state")?;
    let state = dir.path().join("state.json");
    let name = state.display().to_string();
    for (contents, problem) in [
        (&b"\x00 not json"[..], "is corrupt: not JSON"),
        (
            b"{\"version\": 1, \"ports\": [{\"name\": \"bad\"}]}",
            "is corrupt: ",
        ),
        (b"{\"ports\": []}", "is corrupt: no \"version\" field"),
        (
            b"{\"version\": 7, \"ports\": []}",
            "has version 7, this vswitch reads version 2",
        ),
    ] {
        std::fs::write(&state, contents)?;
        let log = refused_start(&state)?;
        ensure!(
            log.contains(&format!("the state file {name} {problem}")),
            "{problem:?} not reported:\n{log}"
        );
        // The file is left as it was, never reset.
        ensure!(std::fs::read(&state)? == contents, "the file was changed");
    }
    Ok(())
}

#[test]
fn a_vanished_interface_is_reported_and_kept() -> Result<()> {
    let dir = unique_temp_dir("vsw-state")?;
    let state = dir.path().join("state.json");
    let mut bed = NicBed::with_daemon(&["a0"], None, |ns| start(ns, &state))?;
    bed.attach("a0", &["--queues", "1"])?;
    cli(&bed.daemon, &["create", "vale0:p1"])?;
    kill_9(&mut bed.daemon)?;
    bed.switch.ip(["link", "del", "a0"])?;

    bed.daemon = start(&bed.switch, &state)?;
    // The restore is done before the first request is served.
    bed.daemon.wait_port("vale0:p1", true)?;
    let log = bed.daemon.log();
    ensure!(
        log.contains("could not restore attachment of a0 to vale0: no network interface a0"),
        "the vanished interface is not reported:\n{log}"
    );
    ensure!(!bed.daemon.port_names()?.iter().any(|p| p == "vale0:a0"));
    let saved = std::fs::read_to_string(&state)?;
    ensure!(
        saved.contains("\"iface\": \"a0\""),
        "a0 was dropped: {saved}"
    );
    let config = cli(&bed.daemon, &["show-config"])?;
    ensure!(
        config.contains("vswitch attach vale0 a0 --queues 1"),
        "{config}"
    );

    // Detaching it forgets it.
    cli(&bed.daemon, &["detach", SWITCH, "a0"])?;
    let saved = std::fs::read_to_string(&state)?;
    ensure!(!saved.contains("\"a0\""), "a0 is still saved: {saved}");
    Ok(())
}
