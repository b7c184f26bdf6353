//! Who is on the other end of a control connection: the kernel's record of
//! the peer's credentials at `connect()` time (`SO_PEERCRED` for pid, uid
//! and gid, `SO_PEERGROUPS` for the supplementary groups).
//!
//! Both are captured by the kernel when the client connects, so they cannot
//! be raced (no pid reuse as with `/proc/PID/status`) and describe the
//! process itself rather than the groups database (`getgrouplist` would
//! grant a group the user was given after the process started, and needs
//! NSS lookups that can block). `SO_PEERGROUPS` needs Linux 4.13; on an
//! older kernel the peer counts with its primary group only.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

/// Most supplementary groups read (the kernel's NGROUPS_MAX is 65536); a
/// peer with more counts with its primary group only, which can only deny.
const MAX_GROUPS: usize = 4096;

/// The credentials of a connected peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerCred {
    /// Process id (0 when the peer is in a pid namespace the daemon cannot see).
    pub pid: u32,
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

impl PeerCred {
    /// Reads the credentials of `stream`'s peer.
    pub fn of(stream: &UnixStream) -> io::Result<PeerCred> {
        let fd = stream.as_raw_fd();
        let mut cred = libc::ucred {
            pid: 0,
            uid: 0,
            gid: 0,
        };
        let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `cred`.
        let ret = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERCRED,
                (&mut cred as *mut libc::ucred).cast(),
                &mut len,
            )
        };
        if ret != 0 {
            return Err(io::Error::last_os_error());
        }
        let groups = match peer_groups(fd) {
            Ok(groups) => groups,
            Err(e) => {
                log::debug!("SO_PEERGROUPS: {e}; using the peer's primary group only");
                Vec::new()
            }
        };
        Ok(PeerCred {
            pid: cred.pid.max(0) as u32,
            uid: cred.uid,
            gid: cred.gid,
            groups,
        })
    }

    /// Whether the peer has `gid` as its primary or a supplementary group.
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }
}

fn peer_groups(fd: i32) -> io::Result<Vec<u32>> {
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut len = std::mem::size_of_val(groups.as_slice()) as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `groups`.
        let ret = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let count = len as usize / std::mem::size_of::<libc::gid_t>();
        if ret == 0 {
            groups.truncate(count);
            return Ok(groups);
        }
        let err = io::Error::last_os_error();
        // ERANGE: the buffer was too small; `len` says how much is needed.
        if err.raw_os_error() == Some(libc::ERANGE)
            && count > groups.len()
            && groups.len() < MAX_GROUPS
        {
            groups.resize(count.min(MAX_GROUPS), 0);
            continue;
        }
        return Err(err);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_pair_reports_this_process() {
        let (a, _b) = UnixStream::pair().unwrap();
        let cred = PeerCred::of(&a).unwrap();
        // SAFETY: getters without side effects.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        assert_eq!(cred.uid, uid);
        assert_eq!(cred.gid, gid);
        assert_eq!(cred.pid, std::process::id());
        assert!(cred.in_group(gid));
        // SAFETY: getgroups(0, NULL) only counts.
        let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
        assert_eq!(cred.groups.len(), n as usize);
    }
}
