//! Builds the guest image: `vmm/guest` is its own workspace (excluded from
//! ours) with its own flags (`vmm/guest/.cargo/config.toml`, `build.rs`,
//! `link.ld`); this runs cargo there and copies the ELF to
//! `target/guest/guest.elf` of our workspace.
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (the parent of xtask's manifest directory).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the repository root")
        .to_path_buf()
}

/// Where the image ends up.
pub fn elf_path() -> PathBuf {
    repo_root().join("target").join("guest").join("guest.elf")
}

/// True for variables that cargo sets for (or a user sets around) our own
/// build and that would leak into the guest build: compiler, flags, target
/// dir, build target, wrappers. Registry and network settings stay.
fn leaks_into_guest_build(name: &str) -> bool {
    const KEEP: &[&str] = &[
        "CARGO_HOME",
        "CARGO_NET_",
        "CARGO_HTTP_",
        "CARGO_REGISTRIES_",
        "CARGO_REGISTRY_",
    ];
    if KEEP.iter().any(|keep| name.starts_with(keep)) {
        return false;
    }
    name.starts_with("CARGO_")
        || name.starts_with("RUSTC")
        || name.starts_with("RUSTDOC")
        || name == "RUSTFLAGS"
        || name == "RUSTUP_TOOLCHAIN"
}

/// The guest crate's directory.
fn guest_dir() -> PathBuf {
    repo_root().join("vmm").join("guest")
}

/// `cargo ARGS` run in vmm/guest, without the variables of our own build
/// that would leak into the guest's.
fn guest_cargo(args: &[&str]) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(guest_dir()).args(args);
    for (name, _) in std::env::vars_os() {
        if let Some(name) = name.to_str() {
            if leaks_into_guest_build(name) {
                command.env_remove(name);
            }
        }
    }
    command
}

/// Runs `command` (a cargo command in vmm/guest) and requires success.
fn run_in_guest(mut command: Command, what: &str) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("running cargo in {}", guest_dir().display()))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// Runs the guest crate's unit tests on the host target (its library holds
/// the driver, the workloads' logic and their tests; the workspace excludes
/// it, so `cargo test --workspace` does not). `filter` goes to the test
/// harness.
pub fn test(filter: Option<&str>) -> Result<()> {
    let mut command = guest_cargo(&["test", "--locked", "--lib", "--"]);
    command.args(filter);
    run_in_guest(command, "guest unit tests")
}

/// Builds vmm/guest into target/guest/guest.elf.
pub fn build() -> Result<()> {
    let guest_dir = guest_dir();
    run_in_guest(
        guest_cargo(&["build", "--release", "--locked", "--bin", "guest"]),
        "guest build",
    )?;
    let built = guest_dir.join("target").join("release").join("guest");
    let out = elf_path();
    std::fs::create_dir_all(out.parent().expect("has a parent"))?;
    std::fs::copy(&built, &out)
        .with_context(|| format!("copying {} to {}", built.display(), out.display()))?;
    println!("guest image: {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_environment_is_cleaned() {
        for leaking in [
            "RUSTFLAGS",
            "RUSTC",
            "RUSTC_WRAPPER",
            "CARGO_TARGET_DIR",
            "CARGO_ENCODED_RUSTFLAGS",
            "CARGO_BUILD_TARGET",
            "CARGO_MANIFEST_DIR",
        ] {
            assert!(leaks_into_guest_build(leaking), "{leaking}");
        }
        for kept in [
            "CARGO_HOME",
            "CARGO_NET_OFFLINE",
            "CARGO_HTTP_TIMEOUT",
            "PATH",
            "HOME",
        ] {
            assert!(!leaks_into_guest_build(kept), "{kept}");
        }
    }
}
