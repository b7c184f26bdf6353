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
    let mut buffer = vec![0u8; 1024];
    loop {
        // SAFETY: an all-zero `group` is a valid out-parameter.
        let mut entry: libc::group = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::group = std::ptr::null_mut();
        // SAFETY: the entry, buffer and result pointer outlive the call and
        // `buffer.len()` bounds what it writes.
        let ret = unsafe {
            libc::getgrnam_r(
                cname.as_ptr(),
                &mut entry,
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                &mut found,
            )
        };
        if ret == libc::ERANGE && buffer.len() < MAX_BUFFER {
            buffer.resize(buffer.len() * 2, 0);
            continue;
        }
        if ret != 0 {
            return Err(io::Error::from_raw_os_error(ret));
        }
        if found.is_null() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no group {name_or_gid}"),
            ));
        }
        return Ok(Group {
            gid: entry.gr_gid,
            name: name_or_gid.to_owned(),
        });
    }
}

/// The name of group `gid`, if it has one.
pub fn group_name(gid: u32) -> Option<String> {
    let mut buffer = vec![0u8; 1024];
    loop {
        // SAFETY: an all-zero `group` is a valid out-parameter.
        let mut entry: libc::group = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::group = std::ptr::null_mut();
        // SAFETY: as in `group`.
        let ret = unsafe {
            libc::getgrgid_r(
                gid,
                &mut entry,
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                &mut found,
            )
        };
        if ret == libc::ERANGE && buffer.len() < MAX_BUFFER {
            buffer.resize(buffer.len() * 2, 0);
            continue;
        }
        if ret != 0 || found.is_null() || entry.gr_name.is_null() {
            return None;
        }
        // SAFETY: the name points into `buffer`, NUL-terminated by libc.
        return Some(
            unsafe { CStr::from_ptr(entry.gr_name) }
                .to_string_lossy()
                .into_owned(),
        );
    }
}

/// The name of user `uid`, if it has one.
pub fn user_name(uid: u32) -> Option<String> {
    let mut buffer = vec![0u8; 1024];
    loop {
        // SAFETY: an all-zero `passwd` is a valid out-parameter.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: as in `group`.
        let ret = unsafe {
            libc::getpwuid_r(
                uid,
                &mut entry,
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                &mut found,
            )
        };
        if ret == libc::ERANGE && buffer.len() < MAX_BUFFER {
            buffer.resize(buffer.len() * 2, 0);
            continue;
        }
        if ret != 0 || found.is_null() || entry.pw_name.is_null() {
            return None;
        }
        // SAFETY: the name points into `buffer`, NUL-terminated by libc.
        return Some(
            unsafe { CStr::from_ptr(entry.pw_name) }
                .to_string_lossy()
                .into_owned(),
        );
    }
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
