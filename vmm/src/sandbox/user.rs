//! `--user`: becoming an unprivileged user after set-up. The user is looked
//! up when the command line is parsed; the drop happens while the VMM has a
//! single thread: supplementary groups cleared, then the group id, then the
//! user id (real, effective and saved), then a check that root cannot be
//! regained.

use std::ffi::{CStr, CString};
use std::io;

use thiserror::Error;

/// The ids to become.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// The user's name, for messages.
    pub name: String,
    /// User id.
    pub uid: libc::uid_t,
    /// Primary group id.
    pub gid: libc::gid_t,
}

/// Why the user could not be found or become.
#[derive(Debug, Error)]
pub enum UserError {
    /// No such user.
    #[error("no user {0:?}")]
    Unknown(String),
    /// getpwnam_r failed.
    #[error("cannot look up user {name:?}")]
    Lookup {
        /// The name.
        name: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Refusing to "drop" to root.
    #[error("--user {0:?} is root: nothing would be dropped")]
    Root(String),
    /// A set*id call failed.
    #[error("cannot drop privileges to {name:?}: {step} failed")]
    Drop {
        /// The user.
        name: String,
        /// The call that failed.
        step: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// After the drop, the process could still become root again.
    #[error("privileges not dropped: {0}")]
    StillPrivileged(&'static str),
}

impl Credentials {
    /// Looks `name` up in the user database.
    pub fn lookup(name: &str) -> Result<Credentials, UserError> {
        let c_name = CString::new(name).map_err(|_| UserError::Unknown(name.to_string()))?;
        let mut buf = vec![0u8; 16 * 1024];
        // SAFETY: an all-zero passwd is valid storage for getpwnam_r to fill.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call; the strings getpwnam_r
        // stores in `pwd` point into `buf`, which outlives their use here.
        let rc = unsafe {
            libc::getpwnam_r(
                c_name.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc != 0 {
            return Err(UserError::Lookup {
                name: name.to_string(),
                source: io::Error::from_raw_os_error(rc),
            });
        }
        if result.is_null() {
            return Err(UserError::Unknown(name.to_string()));
        }
        // SAFETY: getpwnam_r succeeded, so pw_name is a NUL-terminated string in `buf`.
        let found = unsafe { CStr::from_ptr(pwd.pw_name) };
        let credentials = Credentials {
            name: found.to_string_lossy().into_owned(),
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
        };
        if credentials.uid == 0 {
            return Err(UserError::Root(name.to_string()));
        }
        Ok(credentials)
    }

    /// Becomes this user: no supplementary groups, then the group id, then
    /// the user id; fails unless getting root back is impossible afterwards.
    /// Call while the process has one thread (or let the C library
    /// synchronise the ids across threads).
    pub fn drop_privileges(&self) -> Result<(), UserError> {
        let fail = |step| {
            let source = io::Error::last_os_error();
            UserError::Drop {
                name: self.name.clone(),
                step,
                source,
            }
        };
        // SAFETY: setgroups with an empty list reads no memory.
        if unsafe { libc::setgroups(0, std::ptr::null()) } != 0 {
            return Err(fail("setgroups"));
        }
        // SAFETY: plain id-setting calls; results are checked.
        if unsafe { libc::setresgid(self.gid, self.gid, self.gid) } != 0 {
            return Err(fail("setresgid"));
        }
        // SAFETY: as above.
        if unsafe { libc::setresuid(self.uid, self.uid, self.uid) } != 0 {
            return Err(fail("setresuid"));
        }
        self.check_dropped()
    }

    fn check_dropped(&self) -> Result<(), UserError> {
        let (mut r, mut e, mut s) = (0, 0, 0);
        // SAFETY: getresuid writes three ids to valid pointers.
        unsafe { libc::getresuid(&mut r, &mut e, &mut s) };
        if [r, e, s] != [self.uid; 3] {
            return Err(UserError::StillPrivileged(
                "a user id is not the new user's",
            ));
        }
        let (mut r, mut e, mut s) = (0, 0, 0);
        // SAFETY: as above, for the group ids.
        unsafe { libc::getresgid(&mut r, &mut e, &mut s) };
        if [r, e, s] != [self.gid; 3] {
            return Err(UserError::StillPrivileged(
                "a group id is not the user's group",
            ));
        }
        // SAFETY: getgroups with a zero size only counts.
        if unsafe { libc::getgroups(0, std::ptr::null_mut()) } != 0 {
            return Err(UserError::StillPrivileged("supplementary groups remain"));
        }
        // SAFETY: plain id-setting calls that must fail now.
        if unsafe { libc::setuid(0) } == 0 || unsafe { libc::seteuid(0) } == 0 {
            return Err(UserError::StillPrivileged("setuid(0) succeeded"));
        }
        // SAFETY: as above.
        if unsafe { libc::setgid(0) } == 0 {
            return Err(UserError::StillPrivileged("setgid(0) succeeded"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup() {
        let nobody = Credentials::lookup("nobody").unwrap();
        assert_eq!(nobody.name, "nobody");
        assert_ne!(nobody.uid, 0);
        assert!(matches!(
            Credentials::lookup("root"),
            Err(UserError::Root(_))
        ));
        assert!(matches!(
            Credentials::lookup("no-such-user-here"),
            Err(UserError::Unknown(_))
        ));
        assert!(Credentials::lookup("a\0b").is_err());
    }
}
