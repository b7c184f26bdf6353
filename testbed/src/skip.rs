//! Skipping a test whose prerequisite is missing, but never silently in CI.

use std::fmt::Display;

/// True when the environment says this is a CI run: `CI` set to anything
/// but empty, `0` or `false` (CI systems set `CI=true`; `.ci/run` too).
pub fn in_ci() -> bool {
    means_ci(std::env::var("CI").ok().as_deref())
}

/// Whether a value of `CI` means a CI run.
fn means_ci(value: Option<&str>) -> bool {
    value.is_some_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// A test cannot run because `reason` (a missing prerequisite: no
/// /dev/kvm, an image not built). Outside CI this prints `skipped: REASON`
/// and the caller returns; in CI ([`in_ci`]) it panics, so a missing
/// prerequisite fails the run instead of passing it unnoticed.
#[track_caller]
pub fn skip_or_fail(reason: impl Display) {
    if in_ci() {
        panic!("{reason} (CI is set: a missing prerequisite fails instead of skipping)");
    }
    eprintln!("skipped: {reason}");
}

#[cfg(test)]
mod tests {
    use super::means_ci;

    #[test]
    fn ci_values() {
        for yes in ["true", "1", "yes", "TRUE"] {
            assert!(means_ci(Some(yes)), "{yes}");
        }
        for no in [None, Some(""), Some("0"), Some("false"), Some("False")] {
            assert!(!means_ci(no), "{no:?}");
        }
    }
}
