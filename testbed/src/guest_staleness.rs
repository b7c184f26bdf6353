//! Refusing a guest image older than the guest's sources: a VM test run
//! against an image that predates a change to `vmm/guest` (or to a crate it
//! depends on by path, such as the e1000 register definitions) waits out
//! its timeouts instead of failing, so the test bed compares modification
//! times up front and names the file that changed.

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

/// What a crate the guest depends on by path is built from, relative to its
/// directory.
const DEPENDENCY_SOURCES: &[&str] = &["src", "Cargo.toml", "build.rs"];

/// How deep [`newest_source`] descends into the source directories.
const MAX_DEPTH: usize = 16;

/// How many crates deep [`newest_source`] follows path dependencies.
const MAX_DEPENDENCY_DEPTH: usize = 8;

/// The most recently modified file among the guest crate's [`SOURCES`] in
/// `guest_dir` and the [`DEPENDENCY_SOURCES`] of every crate it depends on
/// by path (`name = { path = "..." }` in a manifest, followed through
/// those crates' own manifests), with its modification time; `None` when
/// there is none. Symbolic links are not followed.
pub fn newest_source(guest_dir: &Path) -> Result<Option<(PathBuf, SystemTime)>> {
    let mut newest = None;
    for source in SOURCES {
        visit(&guest_dir.join(source), 0, &mut newest)?;
    }
    let mut seen: Vec<PathBuf> = Vec::new();
    let mut pending: Vec<(PathBuf, usize)> = path_dependencies(guest_dir)?
        .into_iter()
        .map(|d| (d, 1))
        .collect();
    while let Some((dir, depth)) = pending.pop() {
        let key = fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone());
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        for source in DEPENDENCY_SOURCES {
            visit(&dir.join(source), 0, &mut newest)?;
        }
        if depth < MAX_DEPENDENCY_DEPTH {
            pending.extend(path_dependencies(&dir)?.into_iter().map(|d| (d, depth + 1)));
        }
    }
    Ok(newest)
}

/// The directories of the crates `crate_dir`'s manifest depends on by path
/// (inline tables only: `name = { path = "...", ... }`); none without a
/// manifest.
fn path_dependencies(crate_dir: &Path) -> Result<Vec<PathBuf>> {
    let manifest = crate_dir.join("Cargo.toml");
    let text = match fs::read_to_string(&manifest) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("reading {}", manifest.display()), e)),
    };
    Ok(text
        .lines()
        .filter_map(|line| inline_path(line.split('#').next().unwrap_or("")))
        .map(|path| crate_dir.join(path))
        .collect())
}

/// The `path` value of a manifest line holding an inline table, if any.
fn inline_path(line: &str) -> Option<&str> {
    let table = &line[line.find('{')? + 1..];
    let at = table.find("path")?;
    let rest = table[at + "path".len()..].trim_start().strip_prefix('=')?;
    let rest = rest.trim_start().strip_prefix('"')?;
    Some(&rest[..rest.find('"')?])
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
    fn a_crate_the_guest_depends_on_by_path_counts_too() {
        let dir = unique_temp_dir("guest-staleness-deps").unwrap();
        let guest = dir.path().join("vmm/guest");
        let spec = dir.path().join("spec");
        let leaf = dir.path().join("leaf");
        let image = dir.path().join("guest.elf");
        let t = |secs: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs);
        write_at(&guest.join("src/main.rs"), t(0));
        fs::write(
            guest.join("Cargo.toml"),
            "[[bin]]\npath = \"src/main.rs\"\n[dependencies]\n\
             spec = { path = \"../../spec\" } # the registers\n",
        )
        .unwrap();
        File::open(guest.join("Cargo.toml"))
            .unwrap()
            .set_modified(t(0))
            .unwrap();
        write_at(&spec.join("src/lib.rs"), t(0));
        fs::write(
            spec.join("Cargo.toml"),
            "[dependencies]\nleaf = { version = \"1\", path = \"../leaf\" }\n",
        )
        .unwrap();
        File::open(spec.join("Cargo.toml"))
            .unwrap()
            .set_modified(t(0))
            .unwrap();
        write_at(&leaf.join("src/lib.rs"), t(0));
        write_at(&leaf.join("tests/other.rs"), t(90));
        write_at(&image, t(10));
        check_fresh(&image, &guest).unwrap();
        // A change two path dependencies away.
        write_at(&leaf.join("src/lib.rs"), t(20));
        match check_fresh(&image, &guest) {
            Err(Error::StaleGuestImage { newest, .. }) => {
                assert_eq!(newest, guest.join("../../spec/../leaf/src/lib.rs"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn inline_tables_give_their_path() {
        assert_eq!(inline_path(r#"a = { path = "../a" }"#), Some("../a"));
        assert_eq!(inline_path(r#"a = {version="1",path="x/y"}"#), Some("x/y"));
        assert_eq!(inline_path(r#"path = "src/lib.rs""#), None);
        assert_eq!(inline_path(r#"a = { version = "1" }"#), None);
        assert_eq!(inline_path(r#"a = { path = "unterminated }"#), None);
    }

    #[test]
    fn a_missing_source_directory_has_no_newest_file() {
        let dir = unique_temp_dir("guest-staleness-empty").unwrap();
        assert_eq!(newest_source(&dir.path().join("absent")).unwrap(), None);
    }
}
