//! The `--stats-json` file, written atomically (a temporary file renamed
//! over it) through a descriptor of its directory opened at set-up.
//!
//! Writing relative to that descriptor (`openat`, `renameat`) lets the
//! seccomp filters of the VMM's threads allow file creation only there: the
//! filter compares the directory argument with this descriptor
//! ([`crate::sandbox`]).

use std::ffi::CString;
use std::io::{self, BufWriter, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Flags of the `openat` that creates the temporary file (the seccomp
/// filters allow exactly these).
pub const CREATE_FLAGS: i32 = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC;

/// A JSON file rewritten atomically in a directory opened once.
#[derive(Debug)]
pub struct StatsFile {
    dir: OwnedFd,
    name: CString,
    tmp: CString,
}

impl StatsFile {
    /// Opens the directory of `path` (which must exist); the file itself is
    /// created at the first [`StatsFile::write`].
    pub fn open(path: &Path) -> io::Result<StatsFile> {
        let invalid = || io::Error::new(io::ErrorKind::InvalidInput, "not a file path");
        let file_name = path.file_name().ok_or_else(invalid)?;
        let dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let c = |bytes: &[u8]| CString::new(bytes).map_err(|_| invalid());
        let dir_name = c(dir.as_os_str().as_bytes())?;
        let name = c(file_name.as_bytes())?;
        let mut tmp_bytes = file_name.as_bytes().to_vec();
        tmp_bytes.extend_from_slice(b".tmp");
        let tmp = c(&tmp_bytes)?;
        // SAFETY: open on a NUL-terminated path with valid flags; the result
        // is checked.
        let raw = unsafe {
            libc::open(
                dir_name.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor we own.
        let dir = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(StatsFile { dir, name, tmp })
    }

    /// The directory's descriptor (for the seccomp filters).
    pub fn dir_fd(&self) -> RawFd {
        self.dir.as_raw_fd()
    }

    /// Writes `value` (pretty-printed, with a final newline) to the
    /// temporary file and renames it over the file.
    pub fn write(&self, value: &serde_json::Value) -> io::Result<()> {
        // SAFETY: openat relative to our directory descriptor with a
        // NUL-terminated name; the result is checked.
        let raw = unsafe {
            libc::openat(
                self.dir.as_raw_fd(),
                self.tmp.as_ptr(),
                CREATE_FLAGS,
                0o644 as libc::c_uint,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor we own.
        let file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(raw) });
        let mut out = BufWriter::new(file);
        serde_json::to_writer_pretty(&mut out, value)?;
        out.write_all(b"\n")?;
        out.flush()?;
        drop(out);
        // SAFETY: renameat between two NUL-terminated names in our directory.
        let r = unsafe {
            libc::renameat(
                self.dir.as_raw_fd(),
                self.tmp.as_ptr(),
                self.dir.as_raw_fd(),
                self.name.as_ptr(),
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_replaces() {
        let dir = std::env::temp_dir().join(format!("vmm-stats-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.json");
        let file = StatsFile::open(&path).unwrap();
        file.write(&serde_json::json!({"a": 1})).unwrap();
        file.write(&serde_json::json!({"a": 2})).unwrap();
        let back: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back["a"], 2);
        assert!(!dir.join("s.json.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(StatsFile::open(&dir.join("missing/s.json")).is_err());
        assert!(StatsFile::open(Path::new("/")).is_err());
    }
}
