//! Where the project's binaries and the guest image are, and whether the
//! image is as new as the guest's sources.

use std::path::{Path, PathBuf};

use crate::{guest_staleness, Result};

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

/// Where `cargo xtask build-guest` puts the guest image.
fn built_guest_image() -> PathBuf {
    target_dir().join("guest/guest.elf")
}

/// The guest crate, the image's sources.
fn guest_crate_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../vmm/guest")
}

/// The guest image: `$E2E_GUEST_IMAGE`, else `$VMM_GUEST_IMAGE`, else
/// `target/guest/guest.elf` (where `cargo xtask build-guest` puts it).
pub fn guest_image() -> PathBuf {
    ["E2E_GUEST_IMAGE", "VMM_GUEST_IMAGE"]
        .iter()
        .find_map(std::env::var_os)
        .map(PathBuf::from)
        .unwrap_or_else(built_guest_image)
}

/// Fails with [`crate::Error::StaleGuestImage`] when `image` is the image
/// `cargo xtask build-guest` builds (target/guest/guest.elf) and a file it
/// is built from (see `guest_staleness::newest_source`: the guest
/// crate's and its path dependencies') was modified after it. Any other
/// image, or one that does not exist, passes (the caller reports a missing
/// one).
pub fn check_guest_image(image: &Path) -> Result<()> {
    let (Ok(image), Ok(built), Ok(guest_dir)) = (
        image.canonicalize(),
        built_guest_image().canonicalize(),
        guest_crate_dir().canonicalize(),
    ) else {
        return Ok(());
    };
    if image != built {
        return Ok(());
    }
    guest_staleness::check_fresh(&image, &guest_dir)
}

/// Whether this machine can run VMs (`/dev/kvm` opens read-write).
pub fn have_kvm() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}
