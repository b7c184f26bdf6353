//! Raw AF_PACKET socket calls and the shared mapping of a packet ring.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::AtomicU32;

use super::{AfPacketError, Result};

/// The error of the system call that just failed, with a description.
pub(super) fn last_error(what: impl Into<String>) -> AfPacketError {
    AfPacketError::Io {
        what: what.into(),
        source: std::io::Error::last_os_error(),
    }
}

/// Opens `socket(AF_PACKET, SOCK_RAW, protocol)`; `protocol` in host order.
pub(super) fn packet_socket(protocol: u16) -> Result<OwnedFd> {
    // SAFETY: socket(2) takes plain integers and returns a new descriptor.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            i32::from(protocol.to_be()),
        )
    };
    if fd < 0 {
        return Err(last_error("socket(AF_PACKET)"));
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setsockopt(SOL_PACKET, name, value)`.
pub(super) fn set_option<T>(fd: RawFd, name: libc::c_int, value: &T, what: &str) -> Result<()> {
    // SAFETY: `value` points to a live T of the size passed; the kernel
    // copies it and keeps no pointer.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_PACKET,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(last_error(format!("setsockopt({what})")));
    }
    Ok(())
}

pub(super) fn interface_index(ifname: &str) -> Result<i32> {
    let name = std::ffi::CString::new(ifname)
        .map_err(|_| AfPacketError::Config(format!("interface name {ifname:?}")))?;
    // SAFETY: `name` is a NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(last_error(format!("if_nametoindex({ifname})")));
    }
    Ok(index as i32)
}

/// Binds `fd` to interface `ifindex` for `protocol` (host order; 0 means
/// the socket receives nothing).
pub(super) fn bind_to(fd: RawFd, ifindex: i32, protocol: u16, ifname: &str) -> Result<()> {
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = protocol.to_be();
    addr.sll_ifindex = ifindex;
    // SAFETY: `addr` is a valid sockaddr_ll of the length passed.
    let rc = unsafe {
        libc::bind(
            fd,
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(last_error(format!("bind(AF_PACKET, {ifname})")));
    }
    Ok(())
}

/// A shared mapping of a packet ring, unmapped on drop.
pub(super) struct RingMap {
    pub(super) base: *mut u8,
    len: usize,
}

impl RingMap {
    pub(super) fn new(fd: RawFd, len: usize) -> Result<RingMap> {
        // SAFETY: a fresh shared mapping of the socket's ring; the kernel
        // checks `len` against the ring it set up.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(last_error("mmap(packet ring)"));
        }
        Ok(RingMap {
            base: base.cast(),
            len,
        })
    }

    /// The 32-bit status word at `offset`, shared with the kernel.
    pub(super) fn status(&self, offset: usize) -> &AtomicU32 {
        assert!(offset & 3 == 0 && offset + 4 <= self.len);
        // SAFETY: in bounds and 4-byte aligned (checked above; the mapping is
        // page aligned); the kernel accesses the word concurrently, which is
        // what the atomic type is for; it lives as long as `self`.
        unsafe { &*self.base.add(offset).cast::<AtomicU32>() }
    }
}

impl Drop for RingMap {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are exactly the mapping made in `new`, and no
        // reference into it outlives `self`.
        unsafe {
            libc::munmap(self.base.cast(), self.len);
        }
    }
}

/// Checks that test frames of `frame_len` bytes can be built.
pub(super) fn check_frame_len(frame_len: usize) -> Result<()> {
    if !(testframe::MIN_FRAME_LEN..=testframe::MAX_FRAME_LEN).contains(&frame_len) {
        return Err(AfPacketError::Config(format!(
            "frame length {frame_len} outside {}..={}",
            testframe::MIN_FRAME_LEN,
            testframe::MAX_FRAME_LEN
        )));
    }
    Ok(())
}

/// CLOCK_MONOTONIC in nanoseconds, for frame timestamps.
pub(super) fn monotonic_ns() -> u64 {
    // SAFETY: timespec is plain data; clock_gettime writes it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `ts` is a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Whether a send error means "no room now, try again".
pub(super) fn is_congestion(error: &std::io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::ENOBUFS) | Some(libc::EAGAIN) | Some(libc::EINTR)
    )
}
