//! NIC-port claims of the README: `attach` warns when receive queues are
//! left without a socket, and frames arriving there are dropped and counted
//! as `xdp_dropped`; a daemon built without the XDP program says so when
//! asked to attach.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use e2e_tests::nic::{send_test_frames, NicBed, HOST_IF};
use testbed::{run_bounded, Mac, Netns, Queues};

#[test]
fn attach_warns_about_queues_without_a_socket_and_their_frames_are_counted() -> Result<()> {
    const FRAMES: u64 = 500;
    let bed = NicBed::new(&["q0"], Some(Queues { rx: 2, tx: 2 }))?;
    let out = bed.try_attach("q0", &["--queues", "1"])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "attach failed: {stderr}");
    assert!(
        stderr.contains(
            "warning: q0 has 2 receive queues; frames arriving on the 1 without a socket are dropped \
             (use --queues all, or shrink the NIC's channels with `ethtool -L q0 combined 1`)"
        ),
        "{stderr}"
    );
    bed.daemon.wait_port("vale0:q0", true)?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    ensure!(cpus >= 2, "this test needs two CPUs to reach queue 1");
    // A sender pinned to CPU 1 transmits on queue 1 of the host's end, and
    // the switch's end receives on queue 1: no socket there.
    let src = Mac([0x02, 0x76, 0x73, 0x6e, 0x20, 0x01]);
    let dst = Mac([0x02, 0x76, 0x73, 0x6e, 0xff, 0x01]);
    let sent = send_test_frames(&bed.hosts[0].ns, HOST_IF, src, dst, 0..FRAMES, 60, Some(1))?;
    assert_eq!(sent, FRAMES);
    let mut extra = bed.extra_counters("vale0:q0")?;
    testbed::wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
        extra = bed.extra_counters("vale0:q0").unwrap_or_default();
        extra.get("xdp_dropped").copied().unwrap_or(0) >= FRAMES
    })
    .with_context(|| format!("frames on the queue without a socket not counted: {extra:?}"))?;
    assert_eq!(extra["xdp_dropped"], FRAMES, "{extra:?}");
    assert_eq!(extra["xsk_queues"], 1, "{extra:?}");
    assert_eq!(extra["xsk_rx"], 0, "{extra:?}");
    // Serving every queue: no warning.
    bed.detach("q0")?;
    let out = bed.try_attach("q0", &["--queues", "all"])?;
    ensure!(out.status.success(), "{out:?}");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("warning"),
        "{out:?}"
    );
    Ok(())
}

/// Builds `vswitch` with an empty XDP object (`SWITCH_EBPF_OBJECT`, see
/// switch-xdp/build.rs) into a target directory of its own (kept between
/// runs, so only the first build is slow) and returns the binary.
fn vswitch_without_xdp_object() -> Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("tests/ sits in the workspace")?
        .to_owned();
    let target = root.join("target").join("no-xdp-object");
    std::fs::create_dir_all(&target)?;
    let empty = target.join("empty-switch-ebpf.o");
    std::fs::write(&empty, b"")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(&root)
        .args(["build", "--locked", "-p", "switch-user", "--bin", "vswitch"])
        .arg("--target-dir")
        .arg(&target)
        .env("SWITCH_EBPF_OBJECT", &empty)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    let out = run_bounded(build, Duration::from_secs(1200))?;
    ensure!(
        out.status.success(),
        "building vswitch without the XDP object failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(target.join("debug").join("vswitch"))
}

#[test]
fn a_daemon_built_without_the_xdp_program_says_so_on_attach() -> Result<()> {
    let binary = vswitch_without_xdp_object()?;
    let ns = Netns::new(testbed::DEFAULT_PREFIX)?;
    ns.add_veth("x0", "x1", None, None)?;
    ns.set_up("x0")?;
    ns.set_up("x1")?;
    let daemon = testbed::Daemon::builder()
        .binary(&binary)
        .netns(&ns)
        .start()?;
    let out = daemon.cli(&["attach", "vale0", "x0"])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "attach succeeded: {out:?}");
    assert!(
        stderr.contains("built without the XDP program: run `cargo xtask build-ebpf` and rebuild"),
        "{stderr}"
    );
    // Nothing was attached, and the daemon still serves ports.
    assert!(!ns.has_xdp("x0")?, "an XDP program was left on x0");
    let out = daemon.cli(&["create", "vale0:p"])?;
    assert!(out.status.success(), "{out:?}");
    Ok(())
}
