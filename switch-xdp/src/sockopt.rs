//! `setsockopt` with a typed value: the one place this crate's socket
//! options (XDP budgets, busy polling, packet membership) go through.

use std::io;
use std::os::fd::RawFd;

/// Sets option `name` of `level` on `fd` to `value` (a plain C value: an
/// integer or an option struct).
pub(crate) fn set<T: Copy>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: setsockopt reads `size_of::<T>()` bytes from `value`, a
    // borrowed, initialised `T` that lives across the call; a bad `fd`
    // only makes the call fail.
    let ret = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
