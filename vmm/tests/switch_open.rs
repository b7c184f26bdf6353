//! How the VMM opens its switch port: a port that already exists with
//! other ring sizes is opened as it is (the daemon refuses the sizes asked
//! for, and the VMM asks again without them). Needs the guest image, the
//! `vswitch` binary next to `vmm` and /dev/kvm; skipped otherwise.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use testbed::{Daemon, Vm};

#[test]
fn a_port_created_with_other_sizes_is_opened_as_it_is() {
    let image = testbed::guest_image();
    let vswitch = PathBuf::from(env!("CARGO_BIN_EXE_vmm")).with_file_name("vswitch");
    if !(image.exists() && vswitch.exists() && have_kvm()) {
        testbed::skip_or_fail(format_args!(
            "needs {} (cargo xtask build-guest), {} and /dev/kvm",
            image.display(),
            vswitch.display()
        ));
        return;
    }
    let daemon = Daemon::builder()
        .binary(&vswitch)
        .args(["--threads", "1"])
        .start()
        .expect("start vswitch daemon");
    let out = daemon
        .cli(&["create", "vale0:vm", "--ring-size", "512"])
        .expect("vswitch create");
    assert!(out.status.success(), "{out:?}");
    let mut vm = Vm::vmm(env!("CARGO_BIN_EXE_vmm"), &image)
        .label("sized")
        .dir(daemon.dir())
        .net("vale0:vm")
        .mac("52:54:00:00:00:09")
        .socket(daemon.socket())
        .guest_args("tx count=100 rate=1000 dst=52:54:00:00:00:0a")
        .start()
        .expect("start vmm");
    let outcome = vm
        .finish(Duration::from_secs(120))
        .expect("waiting for the VM");
    assert!(!outcome.timed_out(), "the VM did not finish");
    let log = format!("serial:\n{}\nstderr:\n{}", outcome.serial, outcome.stderr);
    assert_eq!(outcome.code(), Some(0), "{log}");
    // The port kept its size: the VMM did not recreate it.
    let list = daemon.cli(&["list", "--json"]).expect("vswitch list");
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).expect("list JSON");
    let port = &list["switches"][0]["ports"][0];
    assert_eq!(port["name"], "vale0:vm", "{list}");
    assert_eq!(port["ring_size"], 512, "{list}");
}
