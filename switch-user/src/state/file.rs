//! The state file on disk: read with its version checked, written
//! atomically (a temporary file in the same directory, fsync, rename over
//! the old one, fsync of the directory), so a crash at any moment leaves
//! either the old file or the new one, never a mix.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::snapshot::{SavedState, BASE_VERSION, FORMAT_VERSION};

/// The state file could not be read or written.
#[derive(Debug, Error)]
pub enum StateFileError {
    /// Reading failed.
    #[error("cannot read the state file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file is not a state file vswitch can use.
    #[error("the state file {path} is corrupt: {problem} (fix or remove it, or start with another --state)")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A newer vswitch wrote the file.
    #[error("the state file {path} has version {found}, this vswitch reads version {FORMAT_VERSION} (written by a newer vswitch?)")]
    FutureVersion {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u64,
    },
    /// Writing failed.
    #[error("cannot write the state file {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// Reads the state at `path`; `None` when there is no file yet.
pub fn read(path: &Path) -> Result<Option<SavedState>, StateFileError> {
    let text = match fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateFileError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    parse(path, &text).map(Some)
}

/// Parses the contents `text` of the state file `path`.
pub fn parse(path: &Path, text: &[u8]) -> Result<SavedState, StateFileError> {
    let corrupt = |problem: String| StateFileError::Corrupt {
        path: path.to_owned(),
        problem,
    };
    let value: serde_json::Value =
        serde_json::from_slice(text).map_err(|e| corrupt(format!("not JSON: {e}")))?;
    let version = value
        .get("version")
        .ok_or_else(|| corrupt("no \"version\" field".into()))?
        .as_u64()
        .ok_or_else(|| corrupt("\"version\" is not a positive integer".into()))?;
    if version > FORMAT_VERSION {
        return Err(StateFileError::FutureVersion {
            path: path.to_owned(),
            found: version,
        });
    }
    if version < BASE_VERSION {
        return Err(corrupt(format!("unknown version {version}")));
    }
    serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))
}

/// Writes `state` to `path` atomically, creating its directory if needed.
pub fn write(path: &Path, state: &SavedState) -> Result<(), StateFileError> {
    let err = |source: io::Error| StateFileError::Write {
        path: path.to_owned(),
        source,
    };
    let mut text = serde_json::to_vec_pretty(state).map_err(|e| err(e.into()))?;
    text.push(b'\n');
    write_atomically(path, &text).map_err(err)
}

/// Replaces `path` with `contents`: a temporary file in the same directory
/// is written and flushed to disk, renamed over `path`, and the directory
/// flushed so the rename itself is durable.
pub fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    fs::create_dir_all(&dir)?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".tmp.{}", std::process::id()));
    let temp = dir.join(temp_name);
    let result = (|| {
        // A symbolic link planted at the temporary path is refused.
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&temp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, path)?;
        File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("state.json");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomically(&path, b"old").unwrap();
        // A directory where the file should go makes the rename fail.
        let blocked = dir.path().join("blocked");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("x"), b"").unwrap();
        assert!(write_atomically(&blocked, b"new").is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["blocked", "state.json"],
            "a temporary file was left"
        );
    }

    #[test]
    fn a_missing_file_is_no_state() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(&dir.path().join("none.json")).unwrap().is_none());
    }

    #[test]
    fn state_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let state = super::super::snapshot::tests::sample();
        write(&path, &state).unwrap();
        assert_eq!(read(&path).unwrap().unwrap(), state);
    }

    #[test]
    fn garbage_is_a_corrupt_file_named_in_the_error() {
        let path = Path::new("/var/lib/vswitch/state.json");
        for text in [
            &b"\x00garbage"[..],
            b"{\"ports\": []}",
            b"{\"version\": \"1\"}",
            b"{\"version\": 0}",
            b"{\"version\": 1, \"ports\": 3}",
            b"{\"version\": 1, \"ports\": [], \"attachments\": [], \"extra\": 1}",
        ] {
            let e = parse(path, text).unwrap_err();
            assert!(matches!(e, StateFileError::Corrupt { .. }), "{e}");
            assert!(
                e.to_string()
                    .starts_with("the state file /var/lib/vswitch/state.json is corrupt: "),
                "{e}"
            );
        }
    }

    #[test]
    fn a_future_version_is_refused() {
        let e = parse(Path::new("s.json"), b"{\"version\": 3, \"whatever\": true}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "the state file s.json has version 3, this vswitch reads version 2 (written by a newer vswitch?)"
        );
    }
}
