//! User and group names through the system's databases (NSS):
//! `getgrnam_r` for the daemon's `--socket-group` and `--admin-group`,
//! `getpwuid_r` for the owners shown by `vswitch list`.

use std::ffi::{CStr, CString};
use std::io;

/// Largest buffer tried for one database entry.
const MAX_BUFFER: usize = 1 << 20;

/// A group: its id and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// Group id.
    pub gid: u32,
    /// Name (the number itself when the group has no entry).
    pub name: String,
}

/// Looks a group up by name, or takes a number as its gid.
pub fn group(name_or_gid: &str) -> io::Result<Group> {
    if let Ok(gid) = name_or_gid.parse::<u32>() {
        return Ok(Group {
            gid,
            name: group_name(gid).unwrap_or_else(|| name_or_gid.to_owned()),
        });
    }
    let cname = CString::new(name_or_gid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in a group name"))?;
    // SAFETY: an all-zero `group` is a valid out-parameter.
    let entry: libc::group = unsafe { std::mem::zeroed() };
    let gid = lookup(
        entry,
        // SAFETY: the entry, buffer and result pointer outlive the call and
        // `buffer.len()` bounds what it writes.
        |entry, buffer, found| unsafe {
            libc::getgrnam_r(
                cname.as_ptr(),
                entry,
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                found,
            )
        },
        |entry| entry.gr_gid,
    )?;
    match gid {
        Some(gid) => Ok(Group {
            gid,
            name: name_or_gid.to_owned(),
        }),
        None => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no group {name_or_gid}"),
        )),
    }
}

/// The name of group `gid`, if it has one.
pub fn group_name(gid: u32) -> Option<String> {
    // SAFETY: an all-zero `group` is a valid out-parameter.
    let entry: libc::group = unsafe { std::mem::zeroed() };
    lookup(
        entry,
        // SAFETY: as in `group`.
        |entry, buffer, found| unsafe {
            libc::getgrgid_r(gid, entry, buffer.as_mut_ptr().cast(), buffer.len(), found)
        },
        // SAFETY: a found entry's name is null or points into the lookup's
        // buffer, NUL-terminated by libc.
        |entry| unsafe { owned_name(entry.gr_name) },
    )
    .ok()
    .flatten()
    .flatten()
}

/// The name of user `uid`, if it has one.
pub fn user_name(uid: u32) -> Option<String> {
    // SAFETY: an all-zero `passwd` is a valid out-parameter.
    let entry: libc::passwd = unsafe { std::mem::zeroed() };
    lookup(
        entry,
        // SAFETY: as in `group`.
        |entry, buffer, found| unsafe {
            libc::getpwuid_r(uid, entry, buffer.as_mut_ptr().cast(), buffer.len(), found)
        },
        // SAFETY: as in `group_name`.
        |entry| unsafe { owned_name(entry.pw_name) },
    )
    .ok()
    .flatten()
    .flatten()
}

/// Runs one reentrant database lookup (`get*_r(key, entry, buffer, len,
/// found)`), doubling the buffer up to [`MAX_BUFFER`] while it answers
/// `ERANGE`, and reads the entry found with `read` while the buffer its
/// strings point into is alive. `Ok(None)` when there is no entry.
fn lookup<E, R>(
    mut entry: E,
    mut call: impl FnMut(&mut E, &mut [u8], &mut *mut E) -> libc::c_int,
    read: impl FnOnce(&E) -> R,
) -> io::Result<Option<R>> {
    let mut buffer = vec![0u8; 1024];
    loop {
        let mut found: *mut E = std::ptr::null_mut();
        let ret = call(&mut entry, &mut buffer, &mut found);
        if ret == libc::ERANGE && buffer.len() < MAX_BUFFER {
            buffer.resize(buffer.len() * 2, 0);
            continue;
        }
        if ret != 0 {
            return Err(io::Error::from_raw_os_error(ret));
        }
        if found.is_null() {
            return Ok(None);
        }
        return Ok(Some(read(&entry)));
    }
}

/// Copies a name out of a database entry; `None` when it is null.
///
/// # Safety
/// `name` is null or points to a NUL-terminated string alive for the call.
unsafe fn owned_name(name: *const libc::c_char) -> Option<String> {
    if name.is_null() {
        return None;
    }
    // SAFETY: non-null, and NUL-terminated and alive by the caller's contract.
    Some(
        unsafe { CStr::from_ptr(name) }
            .to_string_lossy()
            .into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_resolves() {
        assert_eq!(user_name(0).as_deref(), Some("root"));
        let root = group("root").unwrap();
        assert_eq!(root.gid, 0);
        assert_eq!(group("0").unwrap().name, "root");
        assert_eq!(group("4294000000").unwrap().gid, 4_294_000_000);
        assert!(group("no-such-group-vswitch-test").is_err());
    }
}
