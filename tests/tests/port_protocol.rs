//! Conformance of the port protocol (docs/port-protocol.md): a second client,
//! written in Python from the specification alone
//! (`tests/python/vswitch_port.py`), exchanges test frames with `vswitch
//! pktgen` through a real daemon; clients of another protocol version get
//! the typed version error; and the specification's request examples, sent
//! byte for byte, get the documented responses.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use e2e_tests::{field, pktgen_summary, Daemon};
use serde_json::Value;
use switch_port::control::wire;
use switch_port::protocol::{DIR_RESPONSE, VERSION};
use testbed::{run_bounded, wait_until, Capture, Proc};

/// Frames each way.
const FRAMES: u64 = 100_000;
/// Frames a second each way: a pace the Python client (pure Python, on a
/// loaded 2-core machine) sustains while also receiving.
const RATE: u64 = 10_000;
/// The Python client's port and address; pktgen's sender's address.
const PY_PORT: &str = "vale0:py";
const PY_MAC: &str = "02:00:00:00:0a:01";
const GEN_MAC: &str = "02:00:00:00:0b:01";
/// Bound on every Python run, in seconds (the exchange takes about
/// FRAMES / RATE = 10 s).
const PY_TIMEOUT_SECS: u64 = 120;

/// The spec-only client.
fn client_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python/vswitch_port.py")
}

/// `python3`, or `None` (the test is skipped outside CI, fails in it).
fn python() -> Option<Command> {
    let found = run_bounded(
        {
            let mut c = Command::new("python3");
            c.arg("--version");
            c
        },
        Duration::from_secs(10),
    )
    .is_ok_and(|out| out.status.success());
    if !found {
        testbed::skip_or_fail("python3 is not installed (cargo xtask setup installs it)");
        return None;
    }
    let mut command = Command::new("python3");
    command.arg(client_script());
    Some(command)
}

/// The last stdout line of a finished Python run, as JSON.
fn last_json(stdout: &str, stderr: &str) -> Result<Value> {
    let line = stdout.lines().last().unwrap_or("");
    serde_json::from_str(line)
        .with_context(|| format!("the Python client printed no JSON:\n{stdout}\n{stderr}"))
}

#[test]
fn a_spec_only_client_exchanges_100k_frames_each_way_with_pktgen() -> Result<()> {
    let Some(mut py) = python() else {
        return Ok(());
    };
    let daemon = Daemon::start(&[])?;
    let count = FRAMES.to_string();
    let rate = RATE.to_string();
    // The receiver of the Python client's frames; its ring rides out being
    // descheduled for over a second at this rate.
    let mut rx = daemon.pktgen_rx(
        "vale0:gen-rx",
        &[
            "--count",
            &count,
            "--idle-timeout",
            "10",
            "--ring-size",
            "16384",
        ],
    )?;
    // The Python client sends broadcast frames from its own address (so the
    // switch learns it at once) and receives pktgen's frames to it.
    py.args(["exchange", "--socket"])
        .arg(daemon.socket())
        .args(["--port", PY_PORT, "--mac", PY_MAC, "--from-mac", GEN_MAC])
        .args(["--send", &count, "--receive", &count, "--rate", &rate])
        .args(["--ring-size", "16384"])
        .args(["--timeout", &PY_TIMEOUT_SECS.to_string()]);
    let mut client = Proc::spawn("python-client", py, Capture::Files(daemon.dir().into()))?;
    // pktgen sends unicast to the Python client once the switch knows its
    // address, so none of its frames is flooded to the other receiver.
    wait_until(Duration::from_secs(20), Duration::from_millis(10), || {
        daemon
            .cli_json(&["fdb", "vale0", "--json"])
            .map(|fdb| fdb.to_string().contains(PY_MAC))
            .unwrap_or(false)
    })
    .with_context(|| {
        format!(
            "the Python client's address was never learned: {}{}",
            client.read_stderr().unwrap_or_default(),
            daemon.log()
        )
    })?;
    let mut tx = daemon.pktgen_tx(
        "vale0:gen-tx",
        &[
            "--count",
            &count,
            "--rate",
            &rate,
            "--src-mac",
            GEN_MAC,
            "--dst-mac",
            PY_MAC,
        ],
    )?;
    let tx_sum = pktgen_summary(&mut tx, Duration::from_secs(PY_TIMEOUT_SECS))?;
    let status = client
        .wait_timeout(Duration::from_secs(PY_TIMEOUT_SECS + 10))?
        .context("the Python client did not finish")?;
    let py_sum = last_json(&client.read_stdout()?, &client.read_stderr()?)?;
    let rx_sum = pktgen_summary(&mut rx, Duration::from_secs(30))?;
    ensure!(status.success(), "Python client: {status} {py_sum}");
    // pktgen to the Python client: every frame arrived, intact and in order.
    assert_eq!(field(&tx_sum, "packets"), FRAMES, "{tx_sum}");
    assert_eq!(py_sum["timed_out"], false, "{py_sum}");
    assert_eq!(field(&py_sum, "received"), FRAMES, "{py_sum}");
    assert_eq!(field(&py_sum, "corrupt"), 0, "{py_sum}");
    assert_eq!(field(&py_sum, "out_of_order"), 0, "{py_sum}");
    assert_eq!(field(&py_sum, "foreign"), 0, "{py_sum}");
    // The Python client to pktgen: the same.
    assert_eq!(field(&py_sum, "sent"), FRAMES, "{py_sum}");
    assert_eq!(field(&rx_sum, "packets"), FRAMES, "{rx_sum}");
    for key in ["lost", "corrupt", "reordered", "duplicates"] {
        assert_eq!(field(&rx_sum, key), 0, "{key}: {rx_sum}");
    }
    eprintln!("python client: {py_sum}");
    Ok(())
}

#[test]
fn an_older_or_newer_client_gets_the_typed_version_error() -> Result<()> {
    let Some(_) = python() else {
        return Ok(());
    };
    let daemon = Daemon::start(&[])?;
    for version in [0, VERSION + 1, VERSION] {
        let mut probe = python().context("python3 vanished")?;
        probe
            .args(["version-probe", "--timeout", "10", "--socket"])
            .arg(daemon.socket())
            .args(["--version", &version.to_string()]);
        let out = run_bounded(probe, Duration::from_secs(30))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(out.status.success(), "probe {version}: {stdout}{stderr}");
        let v = last_json(&stdout, &stderr)?;
        let response = &v["response"];
        // The daemon answers in its own version either way.
        assert_eq!(v["header_version"], VERSION, "{v}");
        if version == VERSION {
            assert_eq!(response["response"], "status", "{v}");
            assert_eq!(response["version"], VERSION, "{v}");
            assert_eq!(v["closed"], false, "{v}");
            continue;
        }
        assert_eq!(response["response"], "error", "{v}");
        assert_eq!(response["code"], "unsupported_version", "{v}");
        let message = response["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(&format!("version {version}"))
                && message.contains(&format!("version {VERSION}")),
            "the error names both versions: {message}"
        );
        assert_eq!(v["closed"], true, "the connection is closed after: {v}");
    }
    // The daemon serves the next client as before.
    daemon.cli_json(&["list", "--json"])?;
    Ok(())
}

/// The request examples of docs/port-protocol.md §3.4: each message's bytes
/// (header and payload, exactly as documented) and its request name.
fn request_examples() -> Result<Vec<(Vec<u8>, String)>> {
    let spec = include_str!("../../docs/port-protocol.md");
    let mut out = Vec::new();
    let mut lines = spec.lines();
    while let Some(line) = lines.next() {
        let Some((_, rest)) = line.split_once("header `") else {
            continue;
        };
        let hex = rest.split('`').next().unwrap_or_default();
        let mut message = hex
            .split_whitespace()
            .map(|b| u8::from_str_radix(b, 16))
            .collect::<Result<Vec<u8>, _>>()
            .with_context(|| format!("header of {line}"))?;
        lines.next(); // the blank line
        lines.next(); // the opening fence
        let payload = lines.next().context("payload")?;
        let json: Value = serde_json::from_str(payload)?;
        if let Some(name) = json["request"].as_str() {
            message.extend_from_slice(payload.as_bytes());
            out.push((message, name.to_owned()));
        }
    }
    Ok(out)
}

/// Sends `message` as is on `stream` and returns the response's name and
/// the number of fds that came with it.
fn replay(stream: &UnixStream, message: &[u8]) -> Result<(String, usize)> {
    (&*stream).write_all(message)?;
    let (payload, fds) = wire::receive(stream, DIR_RESPONSE)?;
    let response: Value = serde_json::from_slice(&payload)?;
    ensure!(response["response"] != "error", "{response}");
    Ok((
        response["response"].as_str().unwrap_or_default().to_owned(),
        fds.len(),
    ))
}

#[test]
fn the_documented_request_examples_work_byte_for_byte() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let examples = request_examples()?;
    let connect = || UnixStream::connect(daemon.socket());
    let mut opened = Vec::new();
    let mut kinds = Vec::new();
    for (message, request) in &examples {
        let expected = match request.as_str() {
            "open_port" => "port_opened",
            "create_port" | "delete_port" => "done",
            "show_config" => "config",
            "capture" => "capture_started",
            "mirror_add" | "mirror_del" => "done",
            "mirror_list" => "mirrors",
            // NIC attachment needs an interface: not a client's business.
            "attach" | "detach" => continue,
            // So do tunnels (an underlay address; see tests/tests/tunnel_*.rs).
            "tunnel_add" | "tunnel_del" | "tunnel_list" => continue,
            // Offloading needs a guest's memory and eventfds, and a port the
            // connection opened (see tests/tests/vm_offload.rs).
            "offload_port" | "reclaim_port" => continue,
            other => other,
        };
        let stream = connect()?;
        if request == "open_port" {
            // The examples open the same port: the previous client leaves.
            if let Some(previous) = opened.pop() {
                drop(previous);
                daemon.wait_port("vale0:app", false)?;
            }
        }
        let (response, fds) =
            replay(&stream, message).with_context(|| format!("example {request}"))?;
        assert_eq!(response, expected, "example {request}");
        assert_eq!(fds, if request == "open_port" { 3 } else { 0 });
        if request == "open_port" {
            opened.push(stream);
        }
        kinds.push(request.clone());
    }
    for request in [
        "open_port",
        "create_port",
        "delete_port",
        "list",
        "stats",
        "fdb",
        "status",
        "show_config",
    ] {
        assert!(
            kinds.iter().any(|k| k == request),
            "no example of {request}"
        );
    }
    Ok(())
}
