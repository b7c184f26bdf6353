//! Where the project's binaries and the guest image are.

use std::path::{Path, PathBuf};

/// The workspace's `target` directory.
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// Where the project's binaries are: `$E2E_BIN_DIR`, else the workspace's
/// `target/release` (when it has `vswitch`), else `target/debug`.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("E2E_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let release = target_dir().join("release");
    if release.join("vswitch").exists() {
        release
    } else {
        target_dir().join("debug")
    }
}

/// The `vswitch` binary in [`bin_dir`].
pub fn vswitch_bin() -> PathBuf {
    bin_dir().join("vswitch")
}

/// The `vmm` binary in [`bin_dir`].
pub fn vmm_bin() -> PathBuf {
    bin_dir().join("vmm")
}

/// The guest image: `$E2E_GUEST_IMAGE`, else `$VMM_GUEST_IMAGE`, else
/// `target/guest/guest.elf` (where `cargo xtask build-guest` puts it).
pub fn guest_image() -> PathBuf {
    ["E2E_GUEST_IMAGE", "VMM_GUEST_IMAGE"]
        .iter()
        .find_map(std::env::var_os)
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("guest/guest.elf"))
}

/// Whether this machine can run VMs (`/dev/kvm` opens read-write).
pub fn have_kvm() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}
