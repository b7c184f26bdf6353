//! Fresh temporary directories.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Error, Result};

static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

/// A directory created for one test, removed with its contents on drop
/// unless [`TempDir::keep`] was called.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl TempDir {
    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the directory on disk (for example to look at logs after a
    /// failure) and returns its path.
    pub fn keep(mut self) -> PathBuf {
        self.keep = true;
        self.path.clone()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Creates a new, empty directory under the system temporary directory,
/// named `<prefix>-<pid>-<counter>`; an existing directory of that name (left
/// by an earlier process with the same PID) is never reused.
pub fn unique_temp_dir(prefix: &str) -> Result<TempDir> {
    let base = std::env::temp_dir();
    let pid = std::process::id();
    for _ in 0..1000 {
        let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        let path = base.join(format!("{prefix}-{pid}-{n}"));
        match std::fs::create_dir(&path) {
            Ok(()) => return Ok(TempDir { path, keep: false }),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(format!("create {}", path.display()), e)),
        }
    }
    Err(Error::InvalidName {
        name: prefix.to_string(),
        reason: "no free temporary directory name after 1000 attempts",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_unique_and_removed() {
        let a = unique_temp_dir("testbed-unit").unwrap();
        let b = unique_temp_dir("testbed-unit").unwrap();
        assert_ne!(a.path(), b.path());
        std::fs::write(a.path().join("file"), b"x").unwrap();
        let path = a.path().to_path_buf();
        drop(a);
        assert!(!path.exists());
        let kept = b.keep();
        assert!(kept.exists());
        std::fs::remove_dir_all(kept).unwrap();
    }
}
