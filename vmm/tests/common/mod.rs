//! Helpers for tests that boot tiny hand-made guests in the real `vmm` binary
//! (processes and directories come from testbed).
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use testbed::{run_bounded, unique_temp_dir, TempDir};

/// tests/guests/serial_exit.S: checks the start_info magic in EBX, prints
/// the command line, exits with 42.
pub const SERIAL_EXIT: &[u8] = &[
    0x81, 0x3b, 0x78, 0xc5, 0x6e, 0x33, 0x75, 0x1c, 0x66, 0xba, 0xf8, 0x03, 0x8b, 0x73, 0x18, 0x8a,
    0x06, 0x84, 0xc0, 0x74, 0x04, 0xee, 0x46, 0xeb, 0xf6, 0xb0, 0x0a, 0xee, 0x66, 0xba, 0x01, 0x05,
    0xb0, 0x2a, 0xee, 0xf4, 0x66, 0xba, 0x01, 0x05, 0xb0, 0x03, 0xee, 0xf4,
];

/// Load address of the test programs (they are linked at 1 MiB).
pub const LOAD_ADDR: u64 = 0x10_0000;

/// Wraps `code` (32-bit code linked at [`LOAD_ADDR`], entry at its first byte)
/// into an ELF64 PVH image; `bss` zero bytes follow the code in memory.
pub fn pvh_elf(code: &[u8], bss: u64) -> Vec<u8> {
    let mut note = Vec::new();
    note.extend_from_slice(&4u32.to_le_bytes());
    note.extend_from_slice(&4u32.to_le_bytes());
    note.extend_from_slice(&18u32.to_le_bytes());
    note.extend_from_slice(b"Xen\0");
    note.extend_from_slice(&(LOAD_ADDR as u32).to_le_bytes());
    let phoff = 64u64;
    let note_off = phoff + 2 * 56;
    let code_off = note_off + note.len() as u64;
    let mut f = vec![0u8; 64];
    f[0..4].copy_from_slice(b"\x7fELF");
    f[4] = 2; // ELF64
    f[5] = 1; // little-endian
    f[6] = 1;
    f[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86-64
    f[24..32].copy_from_slice(&LOAD_ADDR.to_le_bytes());
    f[32..40].copy_from_slice(&phoff.to_le_bytes());
    f[52..54].copy_from_slice(&64u16.to_le_bytes());
    f[54..56].copy_from_slice(&56u16.to_le_bytes());
    f[56..58].copy_from_slice(&2u16.to_le_bytes());
    for (p_type, off, addr, filesz, memsz) in [
        (
            1u32,
            code_off,
            LOAD_ADDR,
            code.len() as u64,
            code.len() as u64 + bss,
        ),
        (4u32, note_off, 0, note.len() as u64, note.len() as u64),
    ] {
        let mut h = vec![0u8; 56];
        h[0..4].copy_from_slice(&p_type.to_le_bytes());
        h[4..8].copy_from_slice(&7u32.to_le_bytes());
        h[8..16].copy_from_slice(&off.to_le_bytes());
        h[16..24].copy_from_slice(&addr.to_le_bytes());
        h[24..32].copy_from_slice(&addr.to_le_bytes());
        h[32..40].copy_from_slice(&filesz.to_le_bytes());
        h[40..48].copy_from_slice(&memsz.to_le_bytes());
        f.extend_from_slice(&h);
    }
    f.extend_from_slice(&note);
    f.extend_from_slice(code);
    f
}

/// Whether this machine can run VMs at all; when not, the test is to be
/// skipped, which this reports (and fails under `CI=true`).
pub fn have_kvm() -> bool {
    let ok = testbed::have_kvm();
    if !ok {
        testbed::skip_or_fail("no /dev/kvm");
    }
    ok
}

/// A fresh directory under the system temp dir, removed on drop.
pub fn scratch(tag: &str) -> TempDir {
    unique_temp_dir(&format!("vmm-test-{tag}")).expect("creating a scratch directory")
}

/// Runs the vmm binary with `args` (output captured), ending it past
/// `timeout`.
pub fn run_vmm(args: &[&str], timeout: Duration) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vmm"));
    command.args(args);
    run_bounded(command, timeout).unwrap_or_else(|e| panic!("running vmm: {e}"))
}

/// Writes `image` into `dir` as `name` and returns its path as a string.
pub fn write_image(dir: &Path, name: &str, image: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, image).unwrap();
    path.to_string_lossy().into_owned()
}

/// The real guest image ([`testbed::guest_image`]: target/guest/guest.elf
/// from `cargo xtask build-guest`, or `$E2E_GUEST_IMAGE` /
/// `$VMM_GUEST_IMAGE`), or `None` (with a message) when it has not been
/// built or there is no /dev/kvm. Panics when the image is older than the
/// guest's sources ([`testbed::check_guest_image`]).
pub fn guest_image() -> Option<String> {
    let path = testbed::guest_image();
    if !have_kvm() {
        return None;
    }
    if path.exists() {
        if let Err(e) = testbed::check_guest_image(&path) {
            panic!("{e}");
        }
        Some(path.to_string_lossy().into_owned())
    } else {
        testbed::skip_or_fail(format_args!(
            "no guest image at {} (cargo xtask build-guest)",
            path.display()
        ));
        None
    }
}
