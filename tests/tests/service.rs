//! Running as a service: pktgen stopped by a signal prints what it counted
//! (and fails clearly when the daemon goes away), `systemd-analyze verify`
//! accepts the unit, the daemon started the way the unit starts it reports
//! `READY=1` and then serves, `--log-level` overrides `RUST_LOG`, and the
//! completions and manual pages are generated.

use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use e2e_tests::access::TestGroup;
use e2e_tests::{field, pktgen_summary, run_bounded, vswitch_bin, Daemon};
use testbed::{unique_temp_dir, wait_until, Capture, Proc};

/// The unit as shipped.
const UNIT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../contrib/systemd/vswitch.service"
);
/// Where the unit's ExecStart expects the binary.
const INSTALLED_BIN: &str = "/usr/local/bin/vswitch";
/// The unit's RuntimeDirectory, as the daemon sees it.
const RUNTIME_DIR: &str = "/run/vswitch";
/// The unit's StateDirectory, as the daemon sees it.
const STATE_DIR: &str = "/var/lib/vswitch";
/// How long a stopped pktgen may take to print its summary and exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long external tools (systemd-analyze, the CLI) may run.
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

fn stdout_of(command: Command) -> Result<String> {
    let desc = format!("{command:?}");
    let out = run_bounded(command, TOOL_TIMEOUT)?;
    if !out.status.success() {
        bail!(
            "{desc} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn pktgen_rx_stopped_by_sigint_prints_its_json_summary() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    // Without the signal it would wait for frames for ten minutes.
    let mut rx = daemon.pktgen_rx("vale0:rx", &["--idle-timeout", "600"])?;
    let mut tx = daemon.pktgen_tx("vale0:tx", &["--count", "1000"])?;
    let sent = pktgen_summary(&mut tx, STOP_TIMEOUT)?;
    assert_eq!(field(&sent, "packets"), 1000, "{sent}");
    let delivered = daemon.settled_counters("vale0:rx", 1000)?;
    assert_eq!(delivered.tx_packets, 1000, "{delivered:?}");
    // rx must still be running (waiting for more), then be interrupted.
    assert!(rx.try_wait()?.is_none(), "rx ended before the signal");
    rx.kill(libc::SIGINT)?;
    let summary = pktgen_summary(&mut rx, STOP_TIMEOUT)?;
    let status = rx.try_wait()?.context("rx still running")?;
    assert!(status.success(), "{status}: {}", rx.read_stderr()?);
    assert_eq!(summary["mode"], "rx", "{summary}");
    assert_eq!(summary["stopped_by"], "SIGINT", "{summary}");
    let packets = field(&summary, "packets");
    assert!((1..=1000).contains(&packets), "{summary}");
    assert_eq!(field(&summary, "corrupt"), 0, "{summary}");
    assert_eq!(field(&summary, "duplicates"), 0, "{summary}");
    Ok(())
}

#[test]
fn pktgen_tx_stopped_by_sigterm_prints_its_json_summary() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let mut tx = daemon.pktgen_tx("vale0:tx", &["--rate", "20000"])?;
    wait_until(Duration::from_secs(10), Duration::from_millis(10), || {
        daemon
            .counters("vale0:tx")
            .is_ok_and(|c| c.rx_packets >= 100)
    })
    .context("tx sent nothing")?;
    let seen = daemon.counters("vale0:tx")?.rx_packets;
    tx.kill(libc::SIGTERM)?;
    let summary = pktgen_summary(&mut tx, STOP_TIMEOUT)?;
    let status = tx.try_wait()?.context("tx still running")?;
    assert!(status.success(), "{status}: {}", tx.read_stderr()?);
    assert_eq!(summary["mode"], "tx", "{summary}");
    assert_eq!(summary["stopped_by"], "SIGTERM", "{summary}");
    assert!(field(&summary, "packets") >= seen, "{summary} < {seen}");
    Ok(())
}

#[test]
fn pktgen_pong_stopped_by_sigint_prints_its_summary() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let mut pong = daemon.spawn("pong", &["pktgen", "vale0:pong", "--mode", "pong", "-q"])?;
    daemon.wait_port("vale0:pong", true)?;
    pong.kill(libc::SIGINT)?;
    let status = pong
        .wait_timeout(STOP_TIMEOUT)?
        .context("pong did not stop on SIGINT")?;
    assert!(status.success(), "{status}: {}", pong.read_stderr()?);
    let out = pong.read_stdout()?;
    assert!(out.contains("pong on vale0:pong: 0 packets"), "{out}");
    assert!(out.contains("stopped by SIGINT"), "{out}");
    Ok(())
}

#[test]
fn pktgen_fails_clearly_when_the_daemon_goes_away() -> Result<()> {
    let mut daemon = Daemon::start(&[])?;
    let mut rx = daemon.pktgen_rx("vale0:rx", &["--idle-timeout", "600"])?;
    daemon.proc_mut().kill(libc::SIGKILL)?;
    let status = rx
        .wait_timeout(STOP_TIMEOUT)?
        .context("rx kept waiting after the daemon died")?;
    let stderr = rx.read_stderr()?;
    assert!(!status.success(), "{status}: {stderr}");
    assert!(stderr.contains("the daemon went away"), "{stderr}");
    Ok(())
}

/// The unit with ExecStart pointing at the built binary: `systemd-analyze
/// verify` checks that the command exists and is executable, and the
/// binary is not installed on the test machine.
fn unit_with_built_binary(dir: &Path) -> Result<PathBuf> {
    let unit = std::fs::read_to_string(UNIT).with_context(|| format!("read {UNIT}"))?;
    assert!(unit.contains(INSTALLED_BIN), "ExecStart moved: {unit}");
    let path = dir.join("vswitch.service");
    std::fs::write(
        &path,
        unit.replace(INSTALLED_BIN, &vswitch_bin().display().to_string()),
    )?;
    Ok(path)
}

#[test]
fn systemd_analyze_accepts_the_unit() -> Result<()> {
    let dir = unique_temp_dir("vsw-unit")?;
    let unit = unit_with_built_binary(dir.path())?;
    // It also checks the Documentation= man pages: give it the generated ones.
    let man = dir.path().join("man");
    let mut gen = Command::new(vswitch_bin());
    gen.arg("man").arg("--out").arg(man.join("man1"));
    stdout_of(gen)?;
    let mut verify = Command::new("systemd-analyze");
    verify.arg("verify").arg(&unit).env("MANPATH", &man);
    let out = run_bounded(verify, TOOL_TIMEOUT)
        .context("systemd-analyze (Debian's systemd package; `cargo xtask setup` installs it)")?;
    assert!(
        out.status.success(),
        "systemd-analyze verify refused the unit: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// The `[Service]` settings of the unit named `key`, in order.
fn service_values(unit: &str, key: &str) -> Vec<String> {
    let mut in_service = false;
    let mut values = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            in_service = line == "[Service]";
        } else if let Some((k, v)) = line.split_once('=') {
            if in_service && k.trim() == key {
                values.push(v.trim().to_owned());
            }
        }
    }
    values
}

#[test]
fn the_daemon_started_like_the_unit_reports_ready_then_serves() -> Result<()> {
    let unit = std::fs::read_to_string(UNIT)?;
    assert_eq!(service_values(&unit, "Type"), ["notify"]);
    let exec = service_values(&unit, "ExecStart");
    let words: Vec<&str> = exec
        .first()
        .context("no ExecStart")?
        .split_whitespace()
        .collect();
    assert_eq!(words.first(), Some(&INSTALLED_BIN), "{words:?}");

    // What systemd provides: the runtime and state directories, the group
    // named in the unit, and a notification socket.
    let dir = unique_temp_dir("vsw-service")?;
    let runtime = dir.path().join("run");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&runtime)?;
    std::fs::create_dir_all(&state)?;
    let group = TestGroup::create()?;
    let notify_path = dir.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path)?;
    notify.set_read_timeout(Some(Duration::from_secs(10)))?;

    let mut args: Vec<String> = Vec::new();
    let mut rest = words[1..].iter();
    while let Some(word) = rest.next() {
        if *word == "--socket-group" {
            rest.next().context("--socket-group without a value")?;
            args.extend(["--socket-group".to_owned(), group.name().to_owned()]);
        } else {
            args.push(
                word.replace(RUNTIME_DIR, &runtime.display().to_string())
                    .replace(STATE_DIR, &state.display().to_string()),
            );
        }
    }
    // A daemon that keeps saved state must keep it in the test's directory.
    let mut help = Command::new(vswitch_bin());
    help.args(["daemon", "--help"]);
    if stdout_of(help)?.contains("--state") && !args.iter().any(|a| a == "--state") {
        args.extend([
            "--state".to_owned(),
            state.join("state.json").display().to_string(),
        ]);
    }
    let socket = runtime.join("vswitch.sock");
    assert!(
        args.iter().any(|a| Path::new(a) == socket),
        "ExecStart names no socket in the runtime directory: {args:?}"
    );

    let mut command = Command::new(vswitch_bin());
    command.args(&args).env("NOTIFY_SOCKET", &notify_path);
    for env in service_values(&unit, "Environment") {
        let (key, value) = env.split_once('=').context("Environment without =")?;
        command.env(key, value);
    }
    let mut daemon = Proc::spawn("daemon", command, Capture::Files(dir.path().to_owned()))?;

    let mut buf = [0u8; 256];
    let n = notify
        .recv(&mut buf)
        .with_context(|| format!("no READY=1: {}", daemon.read_stderr().unwrap_or_default()))?;
    let message = String::from_utf8_lossy(&buf[..n]);
    assert!(message.lines().any(|l| l == "READY=1"), "{message}");

    // Ready means serving: the socket answers at once, with the unit's group.
    let mut list = Command::new(vswitch_bin());
    list.arg("list").arg("--json").arg("--socket").arg(&socket);
    let listed: serde_json::Value = serde_json::from_str(&stdout_of(list)?)?;
    assert!(listed["switches"].is_array(), "{listed}");
    assert_eq!(std::fs::metadata(&socket)?.gid(), group.gid());

    daemon.kill(libc::SIGTERM)?;
    let n = notify.recv(&mut buf).context("no STOPPING=1")?;
    assert_eq!(&buf[..n], b"STOPPING=1");
    let status = daemon
        .wait_timeout(STOP_TIMEOUT)?
        .context("the daemon did not stop on SIGTERM")?;
    assert!(status.success(), "{status}: {}", daemon.read_stderr()?);
    assert!(!socket.exists(), "the socket outlived the daemon");
    Ok(())
}

#[test]
fn log_level_overrides_rust_log() -> Result<()> {
    let mut quiet = testbed::Daemon::builder().env("RUST_LOG", "off").start()?;
    let mut loud = testbed::Daemon::builder()
        .env("RUST_LOG", "off")
        .args(["--log-level", "info"])
        .start()?;
    loud.stop()?;
    quiet.stop()?;
    assert!(loud.log().contains("listening on"), "{}", loud.log());
    assert!(!quiet.log().contains("listening on"), "{}", quiet.log());
    Ok(())
}

#[test]
fn completions_and_man_pages_are_generated() -> Result<()> {
    for shell in ["bash", "zsh", "fish"] {
        let mut command = Command::new(vswitch_bin());
        command.args(["completions", shell]);
        let script = stdout_of(command)?;
        for word in ["daemon", "pktgen", "attach", "log-level"] {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
    }
    let dir = unique_temp_dir("vsw-man")?;
    let mut command = Command::new(vswitch_bin());
    command.arg("man").arg("--out").arg(dir.path());
    let listed = stdout_of(command)?;
    for page in ["vswitch.1", "vswitch-daemon.1", "vswitch-pktgen.1"] {
        let path = dir.path().join(page);
        assert!(listed.contains(&path.display().to_string()), "{listed}");
        let text = std::fs::read_to_string(&path)?;
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{text}");
    }
    let daemon_page = std::fs::read_to_string(dir.path().join("vswitch-daemon.1"))?;
    assert!(daemon_page.contains("log\\-level"), "{daemon_page}");
    Ok(())
}
