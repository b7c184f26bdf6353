//! The JSON summary a `vswitch pktgen --json` process prints last.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;
use testbed::Proc;

/// Waits at most `timeout` for `proc` (a pktgen with `--json`) to finish
/// and parses the last line it printed.
pub fn summary(proc: &mut Proc, timeout: Duration) -> Result<Value> {
    proc.wait_timeout(timeout)?
        .with_context(|| format!("{} did not finish", proc.label()))?;
    let out = proc.read_stdout()?;
    serde_json::from_str(out.lines().last().unwrap_or("")).with_context(|| {
        format!(
            "{} printed no summary: {out:?} {}",
            proc.label(),
            proc.read_stderr().unwrap_or_default()
        )
    })
}
