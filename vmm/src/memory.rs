//! Guest RAM: one contiguous region at guest-physical 0, backed by a memfd,
//! pre-faulted so the guest never pays a host page fault on first touch.
//!
//! The memfd is sealed at its size (`F_SEAL_SHRINK`, `F_SEAL_GROW`, then
//! `F_SEAL_SEAL`), so that a process it is handed to (the switch daemon
//! walking an offloaded e1000's rings, [`crate::net::offload`]) can map it
//! without fearing that the VMM truncates it under its mapping.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::sync::Arc;

use thiserror::Error;
use vm_memory::mmap::MmapRegionBuilder;
use vm_memory::{FileOffset, GuestAddress, GuestMemoryMmap, GuestRegionMmap, MmapRegion};

/// Host page size assumed for pre-faulting (the kernel maps shmem in 4 KiB pages).
const PAGE_SIZE: usize = 4096;

/// The seals guest RAM's memfd carries: its size is fixed for good.
const SEALS: libc::c_int = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;

/// Highest amount of RAM the layout allows: RAM ends below the 3 GiB MMIO window.
pub const MAX_RAM_BYTES: u64 = 0xC000_0000;

/// Why guest RAM could not be set up.
#[derive(Debug, Error)]
pub enum MemoryError {
    /// The requested size is zero, not page aligned or above [`MAX_RAM_BYTES`].
    #[error("guest RAM size {0:#x} is invalid (must be page aligned, 2 MiB..3 GiB)")]
    BadSize(u64),
    /// memfd_create or ftruncate failed.
    #[error("cannot create the guest RAM memfd")]
    Memfd(#[source] std::io::Error),
    /// The memfd could not be sealed at its size.
    #[error("cannot seal the guest RAM memfd")]
    Seal(#[source] std::io::Error),
    /// mmap of the memfd failed.
    #[error("cannot map guest RAM")]
    Mmap(#[source] vm_memory::mmap::MmapRegionError),
}

/// Guest RAM: a memfd mapped shared into the VMM, covering guest-physical
/// `0..size`.
///
/// Besides the vm-memory view (used to load the image), it exposes the base
/// pointer and size so that the hot DMA path can translate an address with one
/// bounds check.
pub struct GuestRam {
    memory: GuestMemoryMmap,
    mapping: Arc<MmapRegion>,
    size: u64,
}

impl GuestRam {
    /// Creates `size` bytes of RAM in a memfd, maps it and touches every page.
    pub fn new(size: u64) -> Result<GuestRam, MemoryError> {
        if !(2 << 20..=MAX_RAM_BYTES).contains(&size) || !size.is_multiple_of(PAGE_SIZE as u64) {
            return Err(MemoryError::BadSize(size));
        }
        // SAFETY: memfd_create takes a NUL-terminated name and flags; we check the result.
        let fd = unsafe {
            libc::memfd_create(
                c"vmm-guest-ram".as_ptr(),
                libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
            )
        };
        if fd < 0 {
            return Err(MemoryError::Memfd(std::io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let file = unsafe { File::from_raw_fd(fd) };
        file.set_len(size).map_err(MemoryError::Memfd)?;
        // SAFETY: F_ADD_SEALS on a memfd we own takes an integer; checked.
        let sealed = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, SEALS) };
        if sealed < 0 {
            return Err(MemoryError::Seal(std::io::Error::last_os_error()));
        }
        let mapping = MmapRegionBuilder::new(size as usize)
            .with_file_offset(FileOffset::new(file, 0))
            .with_mmap_prot(libc::PROT_READ | libc::PROT_WRITE)
            .with_mmap_flags(libc::MAP_SHARED | libc::MAP_POPULATE | libc::MAP_NORESERVE)
            .build()
            .map_err(MemoryError::Mmap)?;
        let mapping = Arc::new(mapping);
        let base = mapping.as_ptr();
        for offset in (0..size as usize).step_by(PAGE_SIZE) {
            // SAFETY: `offset < size`, inside the mapping we just created; a
            // volatile write of zero over fresh zeroed memory makes the page
            // present and writable without changing its content.
            unsafe { std::ptr::write_volatile(base.add(offset), 0u8) };
        }
        let region = GuestRegionMmap::with_arc(Arc::clone(&mapping), GuestAddress(0))
            .expect("a region at 0 of at most 3 GiB cannot overflow");
        let memory = GuestMemoryMmap::from_regions(vec![region])
            .expect("a single region cannot overlap another");
        Ok(GuestRam {
            memory,
            mapping,
            size,
        })
    }

    /// The vm-memory view of guest RAM (bounds-checked reads and writes).
    pub fn memory(&self) -> &GuestMemoryMmap {
        &self.memory
    }

    /// Size of guest RAM in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The memfd behind guest RAM (sealed at [`GuestRam::size`]), for
    /// handing to another process; it stays open as long as `self`.
    pub fn memfd(&self) -> RawFd {
        self.mapping
            .file_offset()
            .expect("guest RAM is mapped from its memfd")
            .file()
            .as_raw_fd()
    }

    /// Host address of guest-physical 0.
    pub fn host_base(&self) -> *mut u8 {
        self.mapping.as_ptr()
    }

    /// Host pointer to `len` bytes at guest-physical `gpa`, or `None` if any
    /// byte of the range is outside guest RAM.
    pub fn host_range(&self, gpa: u64, len: usize) -> Option<*mut u8> {
        let end = gpa.checked_add(len as u64)?;
        if end > self.size {
            return None;
        }
        // SAFETY: `gpa + len <= size`, so the offset stays inside the mapping.
        Some(unsafe { self.host_base().add(gpa as usize) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::Bytes;

    #[test]
    fn ram_is_zeroed_and_bounds_checked() {
        let ram = GuestRam::new(4 << 20).unwrap();
        let mut buf = [1u8; 16];
        ram.memory()
            .read_slice(&mut buf, GuestAddress(0x1000))
            .unwrap();
        assert_eq!(buf, [0u8; 16]);
        assert!(ram.host_range(4 << 20, 1).is_none());
        assert!(ram.host_range((4 << 20) - 16, 16).is_some());
        assert!(ram.host_range(u64::MAX, 2).is_none());
    }

    #[test]
    fn the_memfd_is_sealed_at_its_size() {
        let ram = GuestRam::new(4 << 20).unwrap();
        let fd = ram.memfd();
        // SAFETY: F_GET_SEALS on a descriptor `ram` keeps open.
        let seals = unsafe { libc::fcntl(fd, libc::F_GET_SEALS) };
        assert_eq!(seals, SEALS);
        // SAFETY: ftruncate on that descriptor; both must be refused.
        assert!(unsafe { libc::ftruncate(fd, 1 << 20) } < 0, "shrink");
        // SAFETY: as above.
        assert!(unsafe { libc::ftruncate(fd, 8 << 20) } < 0, "grow");
        let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: fstat writes one stat into our buffer.
        assert_eq!(unsafe { libc::fstat(fd, stat.as_mut_ptr()) }, 0);
        // SAFETY: fstat succeeded and filled it.
        assert_eq!(unsafe { stat.assume_init() }.st_size, 4 << 20);
    }

    #[test]
    fn bad_sizes_are_rejected() {
        assert!(GuestRam::new(0).is_err());
        assert!(GuestRam::new((4 << 20) + 1).is_err());
        assert!(GuestRam::new(MAX_RAM_BYTES + 4096).is_err());
    }
}
