//! Two VMs running the real guest image on a vswitch daemon: a paced `tx`
//! into an `rx`, and `ping` against `pong`, both through the switch port
//! backend. Needs the guest image (see guest_image.rs) and the `vswitch`
//! binary next to `vmm` (cargo builds it with the workspace); skipped
//! otherwise. The daemon listens on a socket in a fresh directory and is
//! ended by its PID.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

struct Daemon {
    child: Child,
    socket: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn tools() -> Option<(String, PathBuf)> {
    let image = std::env::var_os("VMM_GUEST_IMAGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/guest/guest.elf")
        });
    let vswitch = PathBuf::from(env!("CARGO_BIN_EXE_vmm")).with_file_name("vswitch");
    if image.exists() && vswitch.exists() && have_kvm() {
        Some((image.to_string_lossy().into_owned(), vswitch))
    } else {
        eprintln!(
            "skipped: needs {} (cargo xtask build-guest), {} (cargo build -p switch-user) and /dev/kvm",
            image.display(),
            vswitch.display()
        );
        None
    }
}

fn start_daemon(vswitch: &PathBuf, dir: &Scratch) -> Daemon {
    let socket = dir.path("vswitch.sock");
    let child = Command::new(vswitch)
        .args([
            "--socket",
            socket.to_str().unwrap(),
            "daemon",
            "--threads",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start vswitch daemon");
    let daemon = Daemon { child, socket };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !daemon.socket.exists() {
        assert!(Instant::now() < deadline, "daemon socket never appeared");
        std::thread::sleep(Duration::from_millis(10));
    }
    daemon
}

/// Starts a VM on `port` with `mac` running `args`; its serial goes to a file.
fn start_vm(
    image: &str,
    daemon: &Daemon,
    dir: &Scratch,
    port: &str,
    mac: &str,
    args: &[&str],
) -> (Child, PathBuf) {
    let serial = dir.path(&format!("{}.serial", port.replace(':', "_")));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vmm"));
    cmd.args(["--kernel", image, "--net", port, "--mac", mac, "--serial"])
        .arg(&serial)
        .arg("--socket")
        .arg(&daemon.socket)
        .arg("--")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    (cmd.spawn().expect("start vmm"), serial)
}

/// Waits for a VM with a deadline (killing it by PID past it) and returns
/// its exit code and result line.
fn finish_vm(child: Child, serial: &PathBuf) -> (Option<i32>, serde_json::Value, String) {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("VM {pid} did not finish");
        }
    };
    let text = std::fs::read_to_string(serial).unwrap_or_default();
    let result = text
        .lines()
        .find(|l| l.starts_with("{\"result\":"))
        .map(|l| serde_json::from_str(l).unwrap())
        .unwrap_or(serde_json::Value::Null);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (
        out.status.code(),
        result,
        format!("serial:\n{text}\nstderr:\n{stderr}"),
    )
}

#[test]
fn guest_to_guest_through_the_switch() {
    let Some((image, vswitch)) = tools() else {
        return;
    };
    let dir = Scratch::new("switch");
    let daemon = start_daemon(&vswitch, &dir);

    // Paced one-way traffic: every frame must arrive, in order, intact.
    let (rx_vm, rx_serial) = start_vm(
        &image,
        &daemon,
        &dir,
        "vale0:rx",
        "52:54:00:00:00:02",
        &["rx", "count=2000"],
    );
    std::thread::sleep(Duration::from_millis(300));
    let (tx_vm, tx_serial) = start_vm(
        &image,
        &daemon,
        &dir,
        "vale0:tx",
        "52:54:00:00:00:01",
        &["tx", "count=2000", "rate=4000", "dst=52:54:00:00:00:02"],
    );
    let (code, sent, log) = finish_vm(tx_vm, &tx_serial);
    assert_eq!(code, Some(0), "tx VM: {log}");
    assert_eq!(sent["frames"], 2000, "{log}");
    let (code, got, log) = finish_vm(rx_vm, &rx_serial);
    assert_eq!(code, Some(0), "rx VM: {log}");
    assert_eq!(got["frames"], 2000, "{log}");
    assert_eq!(got["lost"], 0, "{log}");
    assert_eq!(got["corrupt"], 0, "{log}");

    // Ping-pong between the two VMs.
    let (pong_vm, pong_serial) = start_vm(
        &image,
        &daemon,
        &dir,
        "vale0:b",
        "52:54:00:00:00:04",
        &["pong", "count=200"],
    );
    std::thread::sleep(Duration::from_millis(300));
    let (ping_vm, ping_serial) = start_vm(
        &image,
        &daemon,
        &dir,
        "vale0:a",
        "52:54:00:00:00:03",
        &["ping", "count=200", "dst=52:54:00:00:00:04"],
    );
    let (code, ping, log) = finish_vm(ping_vm, &ping_serial);
    assert_eq!(code, Some(0), "ping VM: {log}");
    assert_eq!(ping["lost"], 0, "{log}");
    let (code, _, log) = finish_vm(pong_vm, &pong_serial);
    assert_eq!(code, Some(0), "pong VM: {log}");
    eprintln!("VM to VM: rtt {}", ping["rtt_us"]);
}
