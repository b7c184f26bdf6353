//! Bounded polling.

use std::time::{Duration, Instant};

/// A bounded wait ran out before its condition held.
#[derive(Debug, Clone, thiserror::Error)]
#[error("condition not met within {timeout:?} ({attempts} checks)")]
pub struct WaitTimeout {
    /// The time allowed.
    pub timeout: Duration,
    /// How often the condition was checked.
    pub attempts: u64,
}

/// Checks `condition` every `interval` until it returns true or `timeout`
/// has passed. The condition is checked at least once, and once more at the
/// deadline.
pub fn wait_until<F>(
    timeout: Duration,
    interval: Duration,
    mut condition: F,
) -> Result<(), WaitTimeout>
where
    F: FnMut() -> bool,
{
    wait_for(timeout, interval, || condition().then_some(()))
}

/// Like [`wait_until`], for a condition that produces a value when it holds.
pub fn wait_for<T, F>(
    timeout: Duration,
    interval: Duration,
    mut condition: F,
) -> Result<T, WaitTimeout>
where
    F: FnMut() -> Option<T>,
{
    let start = Instant::now();
    let mut attempts = 0u64;
    loop {
        attempts += 1;
        if let Some(value) = condition() {
            return Ok(value);
        }
        let elapsed = start.elapsed();
        if elapsed >= timeout {
            return Err(WaitTimeout { timeout, attempts });
        }
        std::thread::sleep(interval.min(timeout - elapsed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_as_soon_as_the_condition_holds() {
        let mut calls = 0;
        let result = wait_until(Duration::from_secs(5), Duration::from_millis(1), || {
            calls += 1;
            calls == 3
        });
        assert!(result.is_ok());
        assert_eq!(calls, 3);
    }

    #[test]
    fn gives_up_after_the_timeout() {
        let start = Instant::now();
        let err = wait_until(Duration::from_millis(50), Duration::from_millis(10), || {
            false
        })
        .unwrap_err();
        assert!(start.elapsed() >= Duration::from_millis(50));
        assert!(start.elapsed() < Duration::from_secs(2));
        assert!(err.attempts >= 2);
    }

    #[test]
    fn wait_for_returns_the_value() {
        let mut n = 0;
        let value = wait_for(Duration::from_secs(1), Duration::from_millis(1), || {
            n += 1;
            (n > 2).then_some(n * 10)
        });
        assert_eq!(value.unwrap(), 30);
    }
}
