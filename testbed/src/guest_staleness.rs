//! Refusing a guest image older than the guest's sources: a VM test run
//! against an image that predates a change to `vmm/guest` waits out its
//! timeouts instead of failing, so the test bed compares modification times
//! up front and names the file that changed.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::{Error, Result};

/// What the guest image is built from, relative to the guest crate's
/// directory (its own `target/` is not among them).
const SOURCES: &[&str] = &[
    "src",
    "Cargo.toml",
    "Cargo.lock",
    "build.rs",
    "link.ld",
    ".cargo",
];

/// How deep [`newest_source`] descends into the source directories.
const MAX_DEPTH: usize = 16;

/// The most recently modified file among the guest crate's [`SOURCES`] in
/// `guest_dir`, with its modification time; `None` when there is none.
/// Symbolic links are not followed.
pub fn newest_source(guest_dir: &Path) -> Result<Option<(PathBuf, SystemTime)>> {
    let mut newest = None;
    for source in SOURCES {
        visit(&guest_dir.join(source), 0, &mut newest)?;
    }
    Ok(newest)
}

fn visit(path: &Path, depth: usize, newest: &mut Option<(PathBuf, SystemTime)>) -> Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    if meta.is_dir() {
        if depth >= MAX_DEPTH {
            return Ok(());
        }
        let entries =
            fs::read_dir(path).map_err(|e| Error::io(format!("listing {}", path.display()), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(format!("listing {}", path.display()), e))?;
            visit(&entry.path(), depth + 1, newest)?;
        }
    } else if meta.is_file() {
        let modified = meta
            .modified()
            .map_err(|e| Error::io(format!("reading the time of {}", path.display()), e))?;
        if newest.as_ref().is_none_or(|(_, time)| modified > *time) {
            *newest = Some((path.to_owned(), modified));
        }
    }
    Ok(())
}

/// Fails with [`Error::StaleGuestImage`] when a source file of the guest
/// crate in `guest_dir` was modified after `image`.
pub fn check_fresh(image: &Path, guest_dir: &Path) -> Result<()> {
    let built = fs::metadata(image)
        .and_then(|meta| meta.modified())
        .map_err(|e| Error::io(format!("reading the time of {}", image.display()), e))?;
    match newest_source(guest_dir)? {
        Some((newest, modified)) if modified > built => Err(Error::StaleGuestImage {
            image: image.to_owned(),
            newest,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::time::Duration;

    use super::*;
    use crate::unique_temp_dir;

    fn write_at(path: &Path, modified: SystemTime) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let file = File::create(path).unwrap();
        file.set_modified(modified).unwrap();
    }

    #[test]
    fn an_image_older_than_a_source_is_refused_naming_the_newest_file() {
        let dir = unique_temp_dir("guest-staleness").unwrap();
        let guest = dir.path().join("guest");
        let image = dir.path().join("guest.elf");
        let t = |secs: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs);
        write_at(&guest.join("Cargo.toml"), t(0));
        write_at(&guest.join("link.ld"), t(5));
        write_at(&guest.join("src/main.rs"), t(10));
        write_at(&guest.join("src/net/driver.rs"), t(20));
        // The guest's own build output and files outside the sources do not count.
        write_at(&guest.join("target/release/guest"), t(100));
        write_at(&guest.join("README.md"), t(100));

        write_at(&image, t(30));
        assert_eq!(
            newest_source(&guest).unwrap(),
            Some((guest.join("src/net/driver.rs"), t(20)))
        );
        check_fresh(&image, &guest).unwrap();

        // A source edited after the build.
        write_at(&guest.join("src/main.rs"), t(40));
        let err = check_fresh(&image, &guest).unwrap_err();
        match &err {
            Error::StaleGuestImage { newest, .. } => assert_eq!(*newest, guest.join("src/main.rs")),
            other => panic!("{other}"),
        }
        let message = err.to_string();
        assert!(message.contains("src/main.rs"), "{message}");
        assert!(message.contains("cargo xtask build-guest"), "{message}");

        // Rebuilt: fresh again.
        write_at(&image, t(50));
        check_fresh(&image, &guest).unwrap();
        // The link script counts too.
        write_at(&guest.join("link.ld"), t(60));
        assert!(matches!(
            check_fresh(&image, &guest),
            Err(Error::StaleGuestImage { .. })
        ));
    }

    #[test]
    fn a_missing_source_directory_has_no_newest_file() {
        let dir = unique_temp_dir("guest-staleness-empty").unwrap();
        assert_eq!(newest_source(&dir.path().join("absent")).unwrap(), None);
    }
}
