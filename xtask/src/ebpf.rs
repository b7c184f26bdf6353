//! Builds the XDP program (placeholder until the eBPF crate lands).
use anyhow::{bail, Result};

/// Builds switch-ebpf.
pub fn build() -> Result<()> {
    bail!("not yet")
}
