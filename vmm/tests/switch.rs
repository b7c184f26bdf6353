//! Two VMs running the real guest image on a vswitch daemon: a paced `tx`
//! into an `rx`, and `ping` against `pong`, both through the switch port
//! backend. Needs the guest image (see guest_image.rs) and the `vswitch`
//! binary next to `vmm` (cargo builds it with the workspace); skipped
//! otherwise. The daemon and the VMs are testbed's launchers: the daemon
//! listens on a socket in a fresh directory, everything is ended by PID.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use testbed::{Daemon, Vm};

/// How long a VM may run.
const VM_TIMEOUT: Duration = Duration::from_secs(120);

fn tools() -> Option<(PathBuf, PathBuf)> {
    let image = testbed::guest_image();
    let vswitch = PathBuf::from(env!("CARGO_BIN_EXE_vmm")).with_file_name("vswitch");
    if image.exists() && vswitch.exists() && have_kvm() {
        Some((image, vswitch))
    } else {
        testbed::skip_or_fail(format_args!(
            "needs {} (cargo xtask build-guest), {} (cargo build -p switch-user) and /dev/kvm",
            image.display(),
            vswitch.display()
        ));
        None
    }
}

fn start_daemon(vswitch: &Path) -> Daemon {
    Daemon::builder()
        .binary(vswitch)
        .args(["--threads", "1"])
        .start()
        .expect("start vswitch daemon")
}

/// Starts a VM on `port` with `mac` running `args`; its serial goes to a file.
fn start_vm(image: &Path, daemon: &Daemon, port: &str, mac: &str, args: &[&str]) -> Vm {
    start_vm_with(image, daemon, port, mac, &[], args)
}

/// [`start_vm`] with `--e1000` options, writing its stats.
fn start_vm_with(
    image: &Path,
    daemon: &Daemon,
    port: &str,
    mac: &str,
    e1000: &[&str],
    args: &[&str],
) -> Vm {
    let mut builder = Vm::vmm(env!("CARGO_BIN_EXE_vmm"), image)
        .label(&port.replace(':', "_"))
        .dir(daemon.dir())
        .net(port)
        .mac(mac)
        .socket(daemon.socket())
        .stats_json()
        .guest_args(&args.join(" "));
    for option in e1000 {
        builder = builder.e1000(option);
    }
    builder.start().expect("start vmm")
}

/// Waits for a VM with a deadline (ending it by PID past it) and returns
/// its exit code and result line.
fn finish_vm(vm: Vm) -> (Option<i32>, serde_json::Value, String) {
    let (code, result, log, _) = finish_vm_with_stats(vm);
    (code, result, log)
}

/// [`finish_vm`], with the VMM's final stats.
fn finish_vm_with_stats(mut vm: Vm) -> (Option<i32>, serde_json::Value, String, serde_json::Value) {
    let outcome = vm.finish(VM_TIMEOUT).expect("waiting for the VM");
    assert!(!outcome.timed_out(), "VM {} did not finish", vm.label());
    let result = outcome
        .result_line()
        .map(|l| serde_json::from_str(l).unwrap())
        .unwrap_or(serde_json::Value::Null);
    let stats = outcome
        .stats
        .as_deref()
        .map(|s| serde_json::from_str(s).unwrap())
        .unwrap_or(serde_json::Value::Null);
    let log = format!("serial:\n{}\nstderr:\n{}", outcome.serial, outcome.stderr);
    (outcome.code(), result, log, stats)
}

/// Waits until `vm`'s guest printed `needle` (bounded).
fn ready(vm: &Vm, needle: &str) {
    if let Err(e) = vm.wait_for_serial(needle, Duration::from_secs(60)) {
        panic!("VM {}: {e}", vm.label());
    }
}

#[test]
fn guest_to_guest_through_the_switch() {
    let Some((image, vswitch)) = tools() else {
        return;
    };
    let daemon = start_daemon(&vswitch);

    // Paced one-way traffic: every frame must arrive, in order, intact.
    let rx_vm = start_vm(
        &image,
        &daemon,
        "vale0:rx",
        "52:54:00:00:00:02",
        &["rx", "count=2000"],
    );
    // The receiver is ready once its guest says so (its driver is up); a
    // fixed sleep let a loaded machine start the sender's traffic first.
    ready(&rx_vm, "guest: rx");
    let tx_vm = start_vm(
        &image,
        &daemon,
        "vale0:tx",
        "52:54:00:00:00:01",
        &["tx", "count=2000", "rate=4000", "dst=52:54:00:00:00:02"],
    );
    let (code, sent, log) = finish_vm(tx_vm);
    assert_eq!(code, Some(0), "tx VM: {log}");
    assert_eq!(sent["frames"], 2000, "{log}");
    let (code, got, log) = finish_vm(rx_vm);
    assert_eq!(code, Some(0), "rx VM: {log}");
    assert_eq!(got["frames"], 2000, "{log}");
    assert_eq!(got["lost"], 0, "{log}");
    assert_eq!(got["corrupt"], 0, "{log}");

    // Ping-pong between the two VMs.
    let pong_vm = start_vm(
        &image,
        &daemon,
        "vale0:b",
        "52:54:00:00:00:04",
        &["pong", "count=200"],
    );
    ready(&pong_vm, "guest: pong");
    let ping_vm = start_vm(
        &image,
        &daemon,
        "vale0:a",
        "52:54:00:00:00:03",
        &["ping", "count=200", "dst=52:54:00:00:00:04"],
    );
    let (code, ping, log) = finish_vm(ping_vm);
    assert_eq!(code, Some(0), "ping VM: {log}");
    assert_eq!(ping["lost"], 0, "{log}");
    let (code, _, log) = finish_vm(pong_vm);
    assert_eq!(code, Some(0), "pong VM: {log}");
    eprintln!("VM to VM: rtt {}", ping["rtt_us"]);
}

#[test]
fn a_stopped_and_continued_vmm_keeps_running() {
    let Some((image, vswitch)) = tools() else {
        return;
    };
    let daemon = start_daemon(&vswitch);
    let mut vm = start_vm(
        &image,
        &daemon,
        "vale0:stopcont",
        "52:54:00:00:0c:01",
        &["tx", "duration=3", "size=60", "rate=10000"],
    );
    if let Err(e) = vm.wait_for_serial("guest: tx", Duration::from_secs(60)) {
        let (_, _, log) = finish_vm(vm);
        panic!("{e}\n{log}");
    }
    // Stopped and continued under the default seccomp filters (a shell's
    // Ctrl-Z and fg, a debugger, a cgroup freezer): the timed waits it
    // interrupted resume through restart_syscall.
    for _ in 0..5 {
        vm.proc_mut().kill(libc::SIGSTOP).expect("SIGSTOP");
        std::thread::sleep(Duration::from_millis(100));
        vm.proc_mut().kill(libc::SIGCONT).expect("SIGCONT");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (code, result, log) = finish_vm(vm);
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(result["result"], "tx", "{log}");
}

/// A port that already exists with other ring sizes is opened as it is:
/// the daemon refuses the sizes the VMM asks for, and the VMM asks again
/// without them.
#[test]
fn a_port_created_with_other_sizes_is_opened_as_it_is() {
    let Some((image, vswitch)) = tools() else {
        return;
    };
    let daemon = start_daemon(&vswitch);
    let out = daemon
        .cli(&["create", "vale0:vm", "--ring-size", "512"])
        .expect("vswitch create");
    assert!(out.status.success(), "{out:?}");
    let vm = start_vm(
        &image,
        &daemon,
        "vale0:vm",
        "52:54:00:00:00:09",
        &["tx", "count=100", "rate=1000", "dst=52:54:00:00:00:0a"],
    );
    let (code, _, log) = finish_vm(vm);
    assert_eq!(code, Some(0), "{log}");
    // The port kept its size: the VMM did not recreate it.
    let list = daemon.cli(&["list", "--json"]).expect("vswitch list");
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).expect("list JSON");
    let port = &list["switches"][0]["ports"][0];
    assert_eq!(port["name"], "vale0:vm", "{list}");
    assert_eq!(port["ring_size"], 512, "{list}");
}

/// With `--e1000 offload=on` (and the guests in CSB mode) the daemon walks
/// the guests' rings: the same traffic arrives whole, and every VM handed
/// its data path over (the daemon refused none).
#[test]
fn guest_to_guest_with_the_data_path_offloaded() {
    let Some((image, vswitch)) = tools() else {
        return;
    };
    let daemon = start_daemon(&vswitch);
    let offload = ["offload=on"];
    let rx_vm = start_vm_with(
        &image,
        &daemon,
        "vale0:rx",
        "52:54:00:00:00:02",
        &offload,
        &["rx", "count=2000", "txmode=csb"],
    );
    ready(&rx_vm, "guest: rx");
    let tx_vm = start_vm_with(
        &image,
        &daemon,
        "vale0:tx",
        "52:54:00:00:00:01",
        &offload,
        &[
            "tx",
            "count=2000",
            "rate=4000",
            "dst=52:54:00:00:00:02",
            "txmode=csb",
        ],
    );
    let mut offloaded = Vec::new();
    let (code, sent, log, stats) = finish_vm_with_stats(tx_vm);
    assert_eq!(code, Some(0), "tx VM: {log}");
    assert_eq!(sent["frames"], 2000, "{log}");
    offloaded.push(("tx", stats));
    let (code, got, log, stats) = finish_vm_with_stats(rx_vm);
    assert_eq!(code, Some(0), "rx VM: {log}");
    assert_eq!(got["frames"], 2000, "{log}");
    assert_eq!(got["lost"], 0, "{log}");
    assert_eq!(got["corrupt"], 0, "{log}");
    offloaded.push(("rx", stats));

    let pong_vm = start_vm_with(
        &image,
        &daemon,
        "vale0:b",
        "52:54:00:00:00:04",
        &offload,
        &["pong", "count=200", "txmode=csb"],
    );
    ready(&pong_vm, "guest: pong");
    let ping_vm = start_vm_with(
        &image,
        &daemon,
        "vale0:a",
        "52:54:00:00:00:03",
        &offload,
        &["ping", "count=200", "dst=52:54:00:00:00:04", "txmode=csb"],
    );
    let (code, ping, log, stats) = finish_vm_with_stats(ping_vm);
    assert_eq!(code, Some(0), "ping VM: {log}");
    assert_eq!(ping["lost"], 0, "{log}");
    offloaded.push(("ping", stats));
    let (code, _, log, stats) = finish_vm_with_stats(pong_vm);
    assert_eq!(code, Some(0), "pong VM: {log}");
    offloaded.push(("pong", stats));
    for (vm, stats) in &offloaded {
        let counters = &stats["offload"];
        assert_eq!(counters["refusals"], 0, "{vm}: {counters}");
        assert!(
            counters["handovers"].as_u64().unwrap_or(0) >= 1,
            "{vm} never handed over: {counters}"
        );
        eprintln!("offload, {vm} VM: {counters}");
    }
    eprintln!("VM to VM, offloaded: rtt {}", ping["rtt_us"]);
}
