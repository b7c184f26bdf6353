//! The XDP steering program (switch-ebpf), embedded at build time.
//!
//! `build.rs` puts the object into `OUT_DIR` (building it when the eBPF
//! toolchain is installed, else taking what `cargo xtask build-ebpf` left, else
//! an empty placeholder so that the crate still compiles).

/// The object bytes, 8-byte aligned as aya wants them; empty when the crate
/// was built without the program.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/switch-ebpf.o"));

/// The embedded ELF object of the XDP program, or `None` when this build has
/// none (see [`crate::SteeringError::ProgramMissing`]).
pub fn object() -> Option<&'static [u8]> {
    (!OBJECT.is_empty()).then_some(OBJECT)
}
