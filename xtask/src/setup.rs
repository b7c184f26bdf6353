//! Sets up a fresh machine (placeholder).
use anyhow::Result;

/// Installs what is missing.
pub fn run() -> Result<()> {
    Ok(())
}
