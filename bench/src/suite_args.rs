//! Checks of the options the suites share.

use std::time::Duration;

use anyhow::{ensure, Result};

/// The measuring time per case from `--seconds`, which must be in (0, 60].
pub fn duration(seconds: f64) -> Result<Duration> {
    ensure!(
        seconds > 0.0 && seconds <= 60.0,
        "--seconds must be in (0, 60]"
    );
    Ok(Duration::from_secs_f64(seconds))
}

/// Checks that every frame size is an Ethernet frame without FCS (60..=1514).
pub fn check_sizes(sizes: &[usize]) -> Result<()> {
    ensure!(
        sizes.iter().all(|s| (60..=1514).contains(s)),
        "frame sizes must be in 60..=1514"
    );
    Ok(())
}
