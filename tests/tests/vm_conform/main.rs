//! The e1000 model against QEMU's: the guest image's `conform` workload
//! runs under our VMM (its peer a port on the same switch) and under QEMU's
//! e1000 (its peer a unix datagram socket, `-netdev dgram`); the peer, this
//! test, answers both with the same frames and records what the guest
//! sends. The two documents (the guest's, plus what the peer received) are
//! compared field by field; every difference must be explained in
//! docs/e1000-differences.md.

mod compare;
mod peer;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use e2e_tests::{guest_image, Daemon, Vm};
use peer::{mac_text, serve, DgramWire, PortWire, Wire, GUEST_MAC, PEER_MAC};
use serde_json::Value;
use testbed::{unique_temp_dir, wait_until, Capture, Proc};

/// Bound of one guest run (it takes seconds; QEMU holds frames back for a
/// second after each of the five RCTL writes).
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

fn guest_args() -> String {
    format!("conform dst={}", mac_text(PEER_MAC))
}

/// Serves the guest on `wire` in a thread while `finish` waits for the
/// VM; returns the guest's document with the peer's log as `peer`.
fn with_peer(
    mut wire: Box<dyn Wire + Send>,
    finish: impl FnOnce() -> Result<Value>,
) -> Result<Value> {
    let server = std::thread::spawn(move || serve(&mut *wire, RUN_TIMEOUT));
    let doc = finish();
    let log = server.join().expect("peer thread")?;
    let mut doc = doc?;
    key_frames(&mut doc);
    doc["peer"] = log.to_json();
    Ok(doc)
}

fn run_ours() -> Result<Value> {
    let daemon = Daemon::start(&[])?;
    let wire = PortWire(daemon.open("vale0:peer")?);
    let mut vm = Vm::start(
        &daemon,
        "vm-conform",
        "vale0:conform",
        &mac_text(GUEST_MAC),
        &[],
        &guest_args(),
    )?;
    with_peer(Box::new(wire), move || Ok(vm.finish(RUN_TIMEOUT)?.0))
}

fn run_qemu(dir: &Path) -> Result<Value> {
    // QEMU is started directly, not through testbed's Vm: check the image here.
    testbed::check_guest_image(&guest_image())?;
    let peer_sock = dir.join("peer.sock");
    let qemu_sock = dir.join("qemu.sock");
    let socket = UnixDatagram::bind(&peer_sock)?;
    let serial = dir.join("qemu.serial");
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-enable-kvm", "-m", "64M", "-display", "none"])
        .args(["-monitor", "none", "-no-reboot"])
        .args(["-bios", "/usr/share/qemu/qboot.rom", "-kernel"])
        .arg(guest_image())
        .args(["-device", "isa-debug-exit,iobase=0x501,iosize=1"])
        .arg("-serial")
        .arg(format!("file:{}", serial.display()))
        .args(["-append", &guest_args()])
        .arg("-netdev")
        .arg(format!(
            "dgram,id=n0,local.type=unix,local.path={},remote.type=unix,remote.path={}",
            qemu_sock.display(),
            peer_sock.display()
        ))
        .arg("-device")
        .arg(format!("e1000,netdev=n0,mac={}", mac_text(GUEST_MAC)));
    let mut proc = Proc::spawn("qemu", cmd, Capture::Files(dir.to_owned()))?;
    wait_until(Duration::from_secs(10), Duration::from_millis(10), || {
        qemu_sock.exists()
    })
    .context("QEMU did not create its datagram socket")?;
    let wire = DgramWire {
        socket,
        qemu: qemu_sock.clone(),
    };
    with_peer(Box::new(wire), move || {
        let status = proc
            .wait_timeout(RUN_TIMEOUT)?
            .context("QEMU did not finish")?;
        let text = std::fs::read_to_string(&serial).unwrap_or_default();
        let stderr = proc.read_stderr().unwrap_or_default();
        // isa-debug-exit: QEMU exits with (code << 1) | 1.
        if status.code() != Some(1) {
            bail!("QEMU exited with {status} (guest code 0 expected):\n{text}\n{stderr}");
        }
        document(&text)
    })
}

/// Turns every receive phase's `frames` array into an object keyed by
/// kind and id (`F7`, `M0`), so that a frame one VMM drops and the other
/// accepts is one difference, not a shift of every later frame.
fn key_frames(doc: &mut Value) {
    let Some(phases) = doc["rx"].as_object_mut() else {
        return;
    };
    for phase in phases.values_mut() {
        let Some(frames) = phase["frames"].as_array() else {
            continue;
        };
        let mut keyed = serde_json::Map::new();
        for f in frames {
            let mut key = format!("{}{}", f["kind"].as_str().unwrap_or("?"), f["id"]);
            while keyed.contains_key(&key) {
                key.push('+');
            }
            keyed.insert(key, f.clone());
        }
        phase["frames"] = Value::Object(keyed);
    }
}

/// The document between the guest's `conform: begin` and `conform: end`.
fn document(serial: &str) -> Result<Value> {
    let body = serial
        .split_once("conform: begin")
        .and_then(|(_, rest)| rest.split_once("conform: end"))
        .map(|(doc, _)| doc.trim())
        .with_context(|| format!("no conform document in:\n{serial}"))?;
    serde_json::from_str(body).with_context(|| format!("bad conform document {body}"))
}

fn differences_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/e1000-differences.md")
}

#[test]
fn the_e1000_model_matches_qemus_or_says_why_not() -> Result<()> {
    let dir = unique_temp_dir("vm-conform")?;
    let qemu = run_qemu(dir.path())?;
    let ours = run_ours()?;
    // Kept for reading after a run.
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::write(
        keep.join("conform-ours.json"),
        serde_json::to_vec_pretty(&ours)?,
    )?;
    std::fs::write(
        keep.join("conform-qemu.json"),
        serde_json::to_vec_pretty(&qemu)?,
    )?;
    for (name, doc) in [("ours", &ours), ("qemu", &qemu)] {
        assert_eq!(doc["peer"]["ended"], true, "{name}: the guest never ended");
        assert_eq!(doc["tx_timeouts"], 0, "{name}: {doc}");
        assert_eq!(doc["eeprom"]["sum"], "0xbaba", "{name}: EEPROM checksum");
        let mac_words = &doc["eeprom"]["words"]
            .as_array()
            .context("no EEPROM words")?[..3];
        let expected: Vec<String> = GUEST_MAC
            .chunks(2)
            .map(|p| format!("{:#06x}", u16::from_le_bytes([p[0], p[1]])))
            .collect();
        assert_eq!(mac_words, expected.as_slice(), "{name}: MAC words");
    }
    let allow_text = std::fs::read_to_string(differences_file())?;
    let allow = compare::parse_allow_list(&allow_text);
    let (diffs, unused) = compare::compare(&ours, &qemu, &allow);
    let mut unexplained = Vec::new();
    for d in &diffs {
        let line = format!(
            "| `{}` | `{}` | `{}` |",
            d.path,
            truncate(&d.ours),
            truncate(&d.qemu)
        );
        eprintln!(
            "{} {line}",
            if d.allowed { "allowed  " } else { "NEW      " }
        );
        if !d.allowed {
            unexplained.push(line);
        }
    }
    for path in &unused {
        eprintln!("note: allow-list row `{path}` matched no difference (fixed?)");
    }
    eprintln!(
        "{} fields differ, {} explained in docs/e1000-differences.md",
        diffs.len(),
        diffs.len() - unexplained.len()
    );
    assert!(
        unexplained.is_empty(),
        "differences from QEMU's e1000 not explained in docs/e1000-differences.md:\n{}",
        unexplained.join("\n")
    );
    Ok(())
}

fn truncate(s: &str) -> &str {
    &s[..s.len().min(60)]
}
