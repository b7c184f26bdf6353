//! Embeds the XDP steering program (switch-ebpf) into switch-xdp.
//!
//! The object ends up as `$OUT_DIR/switch-ebpf.o`, chosen in this order:
//! 1. `SWITCH_EBPF_OBJECT=/path/to/object`: that file, copied (it must exist);
//! 2. when the eBPF toolchain of `cargo xtask setup` is present (Debian's
//!    rustc with core for bpfel-unknown-none, bpf-linker) and
//!    `SWITCH_EBPF_BUILD` is not `0`: switch-ebpf is built here, in its own
//!    target directory, exactly as `cargo xtask build-ebpf` builds it (a
//!    no-op of a fraction of a second when it is up to date; rerun only when
//!    the sources of switch-ebpf or switch-ebpf-common change);
//! 3. otherwise the object `cargo xtask build-ebpf` left in
//!    switch-ebpf/target, if any;
//! 4. otherwise an empty file: the crate still builds (so `cargo clippy`
//!    works on a fresh clone) and `XdpSteering::attach` returns
//!    `SteeringError::ProgramMissing`.
use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Variables cargo sets for build scripts that would steer the nested build
/// away from switch-ebpf/.cargo/config.toml (xtask/src/ebpf.rs clears the
/// same list, plus what only build scripts see).
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
    "TARGET",
    "HOST",
    "OPT_LEVEL",
    "PROFILE",
    "DEBUG",
    "NUM_JOBS",
    "RUSTDOC",
];

fn main() {
    let out =
        PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("switch-ebpf.o");
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let root = manifest_dir
        .parent()
        .expect("switch-xdp sits in the workspace");
    let ebpf_dir = root.join("switch-ebpf");
    let built = ebpf_dir.join("target/bpfel-unknown-none/release/switch-ebpf");
    println!("cargo:rerun-if-env-changed=SWITCH_EBPF_OBJECT");
    println!("cargo:rerun-if-env-changed=SWITCH_EBPF_BUILD");

    if let Some(path) = env::var_os("SWITCH_EBPF_OBJECT") {
        let path = PathBuf::from(path);
        println!("cargo:rerun-if-changed={}", path.display());
        copy(&path, &out);
        return;
    }

    let build_allowed = env::var("SWITCH_EBPF_BUILD").map_or(true, |v| v != "0");
    if build_allowed && toolchain_present() {
        for watched in [
            ebpf_dir.join("src"),
            ebpf_dir.join("Cargo.toml"),
            ebpf_dir.join("Cargo.lock"),
            ebpf_dir.join(".cargo/config.toml"),
            root.join("switch-ebpf-common/src"),
            root.join("switch-ebpf-common/Cargo.toml"),
        ] {
            println!("cargo:rerun-if-changed={}", watched.display());
        }
        build_ebpf(&ebpf_dir);
        copy(&built, &out);
        return;
    }

    // Picked up as soon as `cargo xtask build-ebpf` creates or updates it.
    println!("cargo:rerun-if-changed={}", built.display());
    if built.is_file() {
        copy(&built, &out);
    } else {
        println!(
            "cargo:warning=switch-xdp built without the XDP program: run `cargo xtask setup` and `cargo xtask build-ebpf`, then rebuild"
        );
        fs::write(&out, b"").expect("writing the empty placeholder object");
    }
}

/// Debian's rustc, `core` for the eBPF target and bpf-linker are all there.
fn toolchain_present() -> bool {
    let linker_on_path = env::var_os("PATH")
        .map(|p| env::split_paths(&p).any(|d| d.join("bpf-linker").is_file()))
        .unwrap_or(false);
    let linker_in_cargo_home = env::var_os("HOME")
        .map(|h| Path::new(&h).join(".cargo/bin/bpf-linker").is_file())
        .unwrap_or(false);
    Path::new("/usr/bin/rustc").is_file()
        && Path::new("/usr/lib/rustlib/bpfel-unknown-none/lib").is_dir()
        && (linker_on_path || linker_in_cargo_home)
}

/// `cargo build --release --locked` in switch-ebpf, with its own config.
fn build_ebpf(ebpf_dir: &Path) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(ebpf_dir)
        .args(["build", "--release", "--locked", "--quiet"]);
    for var in OUTER_BUILD_VARS {
        cmd.env_remove(var);
    }
    if let Some(home) = env::var_os("HOME") {
        // bpf-linker usually lives in ~/.cargo/bin.
        let mut paths: Vec<PathBuf> = env::var_os("PATH")
            .map(|p| env::split_paths(&p).collect())
            .unwrap_or_default();
        paths.push(Path::new(&home).join(".cargo/bin"));
        cmd.env(
            "PATH",
            env::join_paths(paths).expect("PATH entries are valid"),
        );
    }
    let output = cmd.output().expect("starting cargo for switch-ebpf");
    if !output.status.success() {
        panic!(
            "building the XDP program (switch-ebpf) failed ({}); set SWITCH_EBPF_BUILD=0 to build without it\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Copies `from` to `to`, failing the build with a clear message.
fn copy(from: &Path, to: &Path) {
    if let Err(e) = fs::copy(from, to) {
        panic!("copying the XDP program {}: {e}", from.display());
    }
}
