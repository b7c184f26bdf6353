//! `cargo xtask build-ebpf`: builds the XDP steering program (switch-ebpf)
//! for `bpfel-unknown-none` with Debian's rustc and bpf-linker, into
//! `switch-ebpf/target/bpfel-unknown-none/release/switch-ebpf`, the object
//! switch-xdp embeds.
use crate::setup;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Variables cargo sets for the processes it starts that would steer the
/// nested build away from switch-ebpf/.cargo/config.toml (`RUSTC` overrides
/// `build.rustc`, the target directory and flags are the outer build's).
/// switch-xdp's build script clears the same list.
const OUTER_BUILD_VARS: &[&str] = &[
    "RUSTC",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_RUSTC",
    "CARGO_MAKEFLAGS",
];

/// Builds switch-ebpf in release mode (after checking the toolchain).
pub fn build() -> Result<()> {
    setup::ensure_ebpf_toolchain()?;
    let crate_dir = workspace_root().join("switch-ebpf");
    let started = Instant::now();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    // cargo reads .cargo/config.toml from the working directory only.
    cmd.current_dir(&crate_dir)
        .args(["build", "--release", "--locked"]);
    for var in OUTER_BUILD_VARS {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .with_context(|| format!("starting cargo in {}", crate_dir.display()))?;
    if !status.success() {
        bail!("building switch-ebpf failed ({status})");
    }
    let object = object_path();
    let size = std::fs::metadata(&object)
        .with_context(|| format!("the build left no {}", object.display()))?
        .len();
    println!(
        "build-ebpf: {} ({size} bytes) in {:.1} s",
        object.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The object the build produces (and switch-xdp's build script embeds).
pub fn object_path() -> PathBuf {
    workspace_root().join("switch-ebpf/target/bpfel-unknown-none/release/switch-ebpf")
}

/// The repository root (xtask lives one level below it).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits inside the workspace")
        .to_path_buf()
}
