//! The shared mapping of a packet ring and small helpers of the ring
//! sender and receiver (the socket itself is testbed's [`testbed::PacketSocket`]).

use std::os::fd::RawFd;
use std::sync::atomic::AtomicU32;

use super::{AfPacketError, Result};

/// The error of the system call that just failed, with a description.
pub(super) fn last_error(what: impl Into<String>) -> AfPacketError {
    AfPacketError::Io {
        what: what.into(),
        source: std::io::Error::last_os_error(),
    }
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
