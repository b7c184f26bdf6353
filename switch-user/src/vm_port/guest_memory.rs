//! A VM's guest memory as the daemon maps it for an offloaded port: the
//! VMM's memfd, mapped shared, reached only through [`Dma`] with every
//! access bounds checked.
//!
//! A memfd that the VMM could shrink would turn the daemon's next access
//! into a SIGBUS, so [`GuestMemory::map`] takes only a memfd sealed against
//! shrinking (`F_SEAL_SHRINK`), and maps no more of it than its size. It
//! must also be ordinary shared memory (tmpfs): a hugetlbfs memfd can still
//! have pages punched out (`fallocate`), and refilling one from an exhausted
//! huge page pool would be a SIGBUS too.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use e1000_model::{Dma, DmaError};

/// The most guest memory the daemon maps for one port.
pub const MAX_GUEST_MEMORY: u64 = 64 << 30;
/// Granularity of the mapped size.
pub const PAGE: u64 = 4096;

/// Why guest memory could not be mapped.
#[derive(Debug, thiserror::Error)]
pub enum GuestMemoryError {
    /// The fd is not a memfd that can be sealed.
    #[error("the guest memory fd is not a memfd")]
    NotMemfd(#[source] io::Error),
    /// The memfd may still shrink.
    #[error("the guest memory memfd is not sealed against shrinking (F_SEAL_SHRINK)")]
    NotSealed,
    /// The memfd is not ordinary shared memory (a hugetlbfs one, say).
    #[error("the guest memory memfd is not ordinary shared memory (file system type {0:#x}; hugetlbfs memory is refused)")]
    NotShmem(i64),
    /// The size asked for is not usable.
    #[error(
        "guest memory size {0} is not a non-zero multiple of {PAGE} of at most {MAX_GUEST_MEMORY}"
    )]
    BadSize(u64),
    /// The memfd is shorter than the size asked for.
    #[error("guest memory size {size} is larger than its memfd ({file} bytes)")]
    TooLarge {
        /// The size asked for.
        size: u64,
        /// The memfd's size.
        file: u64,
    },
    /// A system call failed.
    #[error("{0}")]
    Os(&'static str, #[source] io::Error),
}

/// Guest memory from guest-physical 0, mapped shared.
pub struct GuestMemory {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory owned by this value; every
// access goes through bounds-checked copies or atomics, from any thread.
unsafe impl Send for GuestMemory {}
// SAFETY: as above: no method hands out references into the mapping.
unsafe impl Sync for GuestMemory {}

impl std::fmt::Debug for GuestMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestMemory")
            .field("len", &self.len)
            .finish()
    }
}

impl GuestMemory {
    /// Maps the first `size` bytes of the memfd `fd` after checking that it
    /// is a memfd sealed against shrinking, at least `size` bytes long, and
    /// that `size` is a non-zero page multiple of at most
    /// [`MAX_GUEST_MEMORY`]. The mapping outlives the fd.
    pub fn map(fd: BorrowedFd<'_>, size: u64) -> Result<GuestMemory, GuestMemoryError> {
        if size == 0 || !size.is_multiple_of(PAGE) || size > MAX_GUEST_MEMORY {
            return Err(GuestMemoryError::BadSize(size));
        }
        // SAFETY: fcntl F_GET_SEALS on a valid fd; fails on anything but
        // a memfd (or another sealable file).
        let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
        if seals < 0 {
            return Err(GuestMemoryError::NotMemfd(io::Error::last_os_error()));
        }
        if seals & libc::F_SEAL_SHRINK == 0 {
            return Err(GuestMemoryError::NotSealed);
        }
        // SAFETY: an all-zero statfs is a valid out buffer.
        let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: fstatfs on our fd into a valid out pointer.
        if unsafe { libc::fstatfs(fd.as_raw_fd(), &mut fs) } < 0 {
            return Err(GuestMemoryError::Os(
                "fstatfs guest memory",
                io::Error::last_os_error(),
            ));
        }
        if fs.f_type as i64 != libc::TMPFS_MAGIC {
            return Err(GuestMemoryError::NotShmem(fs.f_type as i64));
        }
        // SAFETY: an all-zero stat is a valid out buffer.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstat on our fd into a valid out pointer.
        if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } < 0 {
            return Err(GuestMemoryError::Os(
                "fstat guest memory",
                io::Error::last_os_error(),
            ));
        }
        let file = st.st_size.max(0) as u64;
        if size > file {
            return Err(GuestMemoryError::TooLarge { size, file });
        }
        let len = usize::try_from(size).map_err(|_| GuestMemoryError::BadSize(size))?;
        // SAFETY: a fresh shared mapping of `len` bytes of the memfd, which is
        // at least that long and sealed so it cannot become shorter.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(GuestMemoryError::Os(
                "mmap guest memory",
                io::Error::last_os_error(),
            ));
        }
        let base = NonNull::new(ptr.cast::<u8>()).ok_or(GuestMemoryError::Os(
            "mmap guest memory",
            io::Error::from(io::ErrorKind::InvalidData),
        ))?;
        Ok(GuestMemory { base, len })
    }

    /// Bytes mapped.
    pub fn len(&self) -> u64 {
        self.len as u64
    }

    /// Whether nothing is mapped (never: a mapping has at least a page).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The host address of `[gpa, gpa + len)`, if it lies entirely in the
    /// mapping.
    #[inline]
    fn host(&self, gpa: u64, len: usize) -> Result<*mut u8, DmaError> {
        let error = DmaError { gpa, len };
        let end = gpa.checked_add(len as u64).ok_or(error)?;
        if end > self.len as u64 {
            return Err(error);
        }
        // SAFETY: `gpa + len <= self.len`: the offset is inside the mapping.
        Ok(unsafe { self.base.as_ptr().add(gpa as usize) })
    }
}

impl Drop for GuestMemory {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping this value owns; nothing
        // refers into it any more (no method hands out references).
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

impl Dma for GuestMemory {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), DmaError> {
        let src = self.host(gpa, buf.len())?;
        // SAFETY: `host` checked the range is inside the mapping; `buf` is
        // the daemon's own memory, distinct from it. The guest may change
        // the bytes meanwhile: they are untrusted data either way.
        unsafe { std::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), DmaError> {
        let dst = self.host(gpa, data.len())?;
        // SAFETY: as in `read`, with the roles swapped.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
        Ok(())
    }

    fn contains(&self, gpa: u64, len: u64) -> bool {
        gpa.checked_add(len)
            .is_some_and(|end| end <= self.len as u64)
    }

    fn read_u32(&self, gpa: u64) -> Result<u32, DmaError> {
        if !gpa.is_multiple_of(4) {
            let mut bytes = [0u8; 4];
            self.read(gpa, &mut bytes)?;
            return Ok(u32::from_le_bytes(bytes));
        }
        let ptr = self.host(gpa, 4)?;
        // SAFETY: in bounds (checked by `host`); the mapping is page aligned
        // and `gpa` a multiple of 4, so the pointer is aligned for an
        // AtomicU32; the guest writes this memory concurrently, which an
        // atomic access allows.
        let word = unsafe { &*ptr.cast::<AtomicU32>() };
        Ok(u32::from_le(word.load(Ordering::Acquire)))
    }

    fn write_u32(&self, gpa: u64, value: u32) -> Result<(), DmaError> {
        if !gpa.is_multiple_of(4) {
            return self.write(gpa, &value.to_le_bytes());
        }
        let ptr = self.host(gpa, 4)?;
        // SAFETY: as in `read_u32`: in bounds, aligned, shared with the guest.
        let word = unsafe { &*ptr.cast::<AtomicU32>() };
        word.store(value.to_le(), Ordering::Release);
        Ok(())
    }
}

/// A sealed memfd of `size` bytes, as a VMM would hand over (for tests).
#[cfg(test)]
pub(crate) fn sealed_memfd(size: u64, seals: libc::c_int) -> std::os::fd::OwnedFd {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: memfd_create with a valid name; checked below.
    let raw = unsafe { libc::memfd_create(c"guest".as_ptr(), libc::MFD_ALLOW_SEALING) };
    assert!(raw >= 0);
    // SAFETY: a fresh fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ftruncate and F_ADD_SEALS on our own memfd.
    unsafe {
        assert_eq!(libc::ftruncate(fd.as_raw_fd(), size as libc::off_t), 0);
        if seals != 0 {
            assert_eq!(libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals), 0);
        }
    }
    fd
}

#[cfg(test)]
mod tests {
    use std::os::fd::{AsFd, OwnedFd};

    use super::*;

    /// A hugetlbfs memfd, sealed, is refused (where the kernel makes one).
    #[test]
    fn refuses_hugetlbfs_memory() {
        use std::os::fd::FromRawFd;
        let flags = libc::MFD_ALLOW_SEALING | libc::MFD_HUGETLB;
        // SAFETY: memfd_create with a valid name; checked below.
        let raw = unsafe { libc::memfd_create(c"huge".as_ptr(), flags) };
        if raw < 0 {
            eprintln!("no hugetlbfs memfd here: {}", io::Error::last_os_error());
            return;
        }
        // SAFETY: a fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: ftruncate and F_ADD_SEALS on our own memfd.
        unsafe {
            assert_eq!(libc::ftruncate(fd.as_raw_fd(), 2 << 20), 0);
            assert_eq!(
                libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, libc::F_SEAL_SHRINK),
                0
            );
        }
        let err = GuestMemory::map(fd.as_fd(), 2 << 20).unwrap_err();
        assert!(matches!(err, GuestMemoryError::NotShmem(_)), "{err}");
    }

    #[test]
    fn maps_a_sealed_memfd_and_checks_every_access() {
        let fd = sealed_memfd(1 << 20, libc::F_SEAL_SHRINK);
        let mem = GuestMemory::map(fd.as_fd(), 1 << 20).unwrap();
        let data: Vec<u8> = (0..1514).map(|i| i as u8).collect();
        mem.write(0x1000, &data).unwrap();
        let mut back = vec![0; data.len()];
        mem.read(0x1000, &mut back).unwrap();
        assert_eq!(back, data);
        let end = 1u64 << 20;
        assert!(mem.write(end - 4, &[0; 4]).is_ok());
        assert!(mem.write(end - 3, &[0; 4]).is_err());
        assert!(mem.read(u64::MAX - 1, &mut [0; 4]).is_err());
        assert!(mem.contains(0, end) && !mem.contains(0, end + 1));
        assert!(!mem.contains(u64::MAX, 2));
        mem.write_u32(0x2000, 0x1234_5678).unwrap();
        assert_eq!(mem.read_u32(0x2000).unwrap(), 0x1234_5678);
        mem.write_u32(0x2001, 0xAABB_CCDD).unwrap();
        assert_eq!(mem.read_u32(0x2001).unwrap(), 0xAABB_CCDD);
        assert!(mem.read_u32(end - 2).is_err());
        assert!(mem.write_u32(end, 1).is_err());
    }

    #[test]
    fn refuses_what_a_hostile_vmm_could_hand_over() {
        let unsealed = sealed_memfd(1 << 20, 0);
        assert!(matches!(
            GuestMemory::map(unsealed.as_fd(), 1 << 20),
            Err(GuestMemoryError::NotSealed)
        ));
        let grow_only = sealed_memfd(1 << 20, libc::F_SEAL_GROW);
        assert!(matches!(
            GuestMemory::map(grow_only.as_fd(), 1 << 20),
            Err(GuestMemoryError::NotSealed)
        ));
        for bad in [0, 100, MAX_GUEST_MEMORY + PAGE] {
            let fd = sealed_memfd(1 << 20, libc::F_SEAL_SHRINK);
            assert!(matches!(
                GuestMemory::map(fd.as_fd(), bad),
                Err(GuestMemoryError::BadSize(s)) if s == bad
            ));
        }
        let fd = sealed_memfd(1 << 20, libc::F_SEAL_SHRINK);
        assert!(matches!(
            GuestMemory::map(fd.as_fd(), 2 << 20),
            Err(GuestMemoryError::TooLarge { .. })
        ));
        // Not a memfd: a pipe cannot be sealed.
        let mut pipe = [0; 2];
        // SAFETY: pipe into a valid array; both fds are then ours.
        let (r, w) = unsafe {
            use std::os::fd::FromRawFd;
            assert_eq!(libc::pipe(pipe.as_mut_ptr()), 0);
            (OwnedFd::from_raw_fd(pipe[0]), OwnedFd::from_raw_fd(pipe[1]))
        };
        drop(w);
        assert!(matches!(
            GuestMemory::map(r.as_fd(), 1 << 20),
            Err(GuestMemoryError::NotMemfd(_))
        ));
    }
}
