//! The sandbox is enforced: a system call outside the vCPU thread's list
//! kills the VMM (`--seccomp-selftest`), the filters are on by default and
//! the VM runs under them, and `--user` leaves the running VMM without root.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use common::*;
use testbed::{TempDir, Vm};

const TIMEOUT: Duration = Duration::from_secs(60);

/// Boots the serial-exit guest with `extra` options; returns the output.
fn serial_exit(dir: &TempDir, extra: &[&str]) -> std::process::Output {
    let kernel = write_image(dir.path(), "exit.elf", &pvh_elf(SERIAL_EXIT, 0));
    let stats = dir.path().join("stats.json");
    let mut args = vec![
        "--kernel",
        &kernel,
        "--mem",
        "8",
        "--stats-json",
        stats.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args.extend(["--", "hello"]);
    run_vmm(&args, TIMEOUT)
}

#[test]
fn a_forbidden_syscall_on_the_vcpu_thread_kills_the_vmm() {
    if !have_kvm() {
        return;
    }
    let dir = scratch("seccomp-kill");
    for args in [
        &["--seccomp-selftest"][..],
        &["--seccomp", "kill", "--seccomp-selftest"],
    ] {
        let out = serial_exit(&dir, args);
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGSYS),
            "{args:?}: {:?}, stderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "the guest never ran");
    }
    // The same call is allowed (and logged) without the kill action.
    for mode in ["log", "off"] {
        let out = serial_exit(&dir, &["--seccomp", mode, "--seccomp-selftest"]);
        assert_eq!(
            out.status.code(),
            Some(42),
            "--seccomp {mode}: stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("hello "));
    }
}

#[test]
fn the_vm_runs_under_the_default_filters() {
    if !have_kvm() {
        return;
    }
    let dir = scratch("seccomp-default");
    let out = serial_exit(&dir, &[]);
    assert_eq!(
        out.status.code(),
        Some(42),
        "stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The guest echoes its command line (tsc_khz= appended) on stdout.
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("hello "));
    // Written at exit by the filtered vCPU thread.
    let stats: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("stats.json")).unwrap()).unwrap();
    assert_eq!(stats["exit_code"], 42);
}

/// A `/proc/PID/status` line's fields (`Uid:`, `Gid:`, `Groups:`).
fn status_fields(pid: u32, key: &str) -> Option<Vec<u32>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    Some(
        line[key.len()..]
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect(),
    )
}

fn nobody_ids() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let line = passwd
        .lines()
        .find(|l| l.starts_with("nobody:"))
        .expect("a nobody user");
    let fields: Vec<&str> = line.split(':').collect();
    (fields[2].parse().unwrap(), fields[3].parse().unwrap())
}

#[test]
fn user_drops_root_before_the_guest_runs() {
    let Some(image) = guest_image() else {
        return;
    };
    let (uid, gid) = nobody_ids();
    let dir = scratch("user");
    // The stats file is written after the drop: nobody must be able to.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut vm = Vm::vmm(env!("CARGO_BIN_EXE_vmm"), &image)
        .label("user")
        .dir(dir.path())
        .net("sink")
        .args(["--user", "nobody"])
        .stats_json()
        .guest_args("tx duration=2 size=60 rate=10000")
        .start()
        .expect("start vmm");
    let pid = vm.pid();
    // Once the guest printed, the VMM has dropped root (it drops before the
    // guest's first instruction).
    if let Err(e) = vm.wait_for_serial("guest:", TIMEOUT) {
        let outcome = vm.finish(Duration::ZERO).expect("ending the VM");
        panic!("{e}\n{}", outcome.report());
    }
    let uids = status_fields(pid, "Uid:");
    let gids = status_fields(pid, "Gid:");
    let groups = status_fields(pid, "Groups:");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let caps: Vec<&str> = status
        .lines()
        .filter(|l| l.starts_with("CapEff:") || l.starts_with("CapPrm:"))
        .collect();
    let outcome = vm.finish(TIMEOUT).expect("waiting for the VM");
    assert_eq!(uids, Some(vec![uid; 4]), "real, effective, saved, fs uid");
    assert_eq!(gids, Some(vec![gid; 4]), "real, effective, saved, fs gid");
    assert_eq!(groups, Some(vec![]), "no supplementary groups");
    assert_eq!(caps.len(), 2, "{status}");
    for line in caps {
        assert!(
            line.ends_with("0000000000000000"),
            "no capabilities: {line}"
        );
    }
    assert_eq!(outcome.code(), Some(0), "{}", outcome.report());
    assert!(outcome.result_line().is_some(), "{}", outcome.report());
    let stats = outcome.stats.as_deref().expect("the stats file");
    let json: serde_json::Value = serde_json::from_str(stats).unwrap();
    assert_eq!(json["exit_code"], 0);
    let meta = std::fs::metadata(dir.path().join("user.stats.json")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(meta.uid(), uid, "written by the dropped VMM");
}
