//! Builds the guest image (placeholder until the guest crate lands).
use anyhow::{bail, Result};

/// Builds vmm/guest into target/guest/guest.elf.
pub fn build() -> Result<()> {
    bail!("not yet")
}
