//! A port region: the memfd shared between the daemon and one client, mapped
//! in both, with typed access to its rings and buffers.
//!
//! The daemon creates the memfd with seals against shrinking and growing, so a
//! client cannot truncate it under the daemon (which would turn the daemon's
//! next access into SIGBUS).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

use thiserror::Error;

use crate::layout::{Layout, LayoutError, REGION_HEADER_SIZE};
use crate::ring::{RingView, Slot};

/// Why a region could not be created or mapped.
#[derive(Debug, Error)]
pub enum RegionError {
    /// A system call failed.
    #[error("{what}")]
    Os {
        /// What was being done.
        what: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The memfd's contents do not describe a valid port region.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The memfd was not sealed against both shrinking and growing.
    #[error("port memfd is not sealed against shrinking and growing")]
    NotSealed,
}

fn os(what: &'static str) -> impl FnOnce(io::Error) -> RegionError {
    move |source| RegionError::Os { what, source }
}

/// A mapped port region. Dropping it unmaps the memory; the ring views it
/// hands out borrow it, so none outlives the mapping.
#[derive(Debug)]
pub struct Region {
    base: NonNull<u8>,
    len: usize,
    layout: Layout,
    /// Start of the TX ring's header (computed once: taking a view costs
    /// two loads).
    tx_ring: NonNull<u8>,
    /// Start of the RX ring's header.
    rx_ring: NonNull<u8>,
    fd: OwnedFd,
}

// SAFETY: the mapping is plain shared memory owned by this value; all access to
// its contents goes through atomics or volatile accesses on raw pointers, which
// are valid from any thread while the mapping lives.
unsafe impl Send for Region {}
// SAFETY: as above; `&Region` only hands out views that borrow it and raw
// buffer pointers.
unsafe impl Sync for Region {}

/// Regions of at least this size ask for transparent huge pages.
const HUGE_PAGE_MIN: usize = 2 << 20;

/// The kernel's transparent huge page mode for shared memory (the selected
/// word of `/sys/kernel/mm/transparent_hugepage/shmem_enabled`): port memory
/// gets huge pages under `advise`, `within_size`, `always` and `force`, not
/// under `never` or `deny`. `None` when the kernel has no such setting.
pub fn shmem_huge_page_mode() -> Option<String> {
    transparent_huge_page_mode("shmem_enabled")
}

/// The selected word of `/sys/kernel/mm/transparent_hugepage/<setting>`
/// (`enabled` for private memory such as the learning table,
/// `shmem_enabled` for port memory).
pub fn transparent_huge_page_mode(setting: &str) -> Option<String> {
    let path = format!("/sys/kernel/mm/transparent_hugepage/{setting}");
    selected_mode(&std::fs::read_to_string(path).ok()?)
}

/// The bracketed word of a sysfs choice list (`a [b] c` gives `b`).
fn selected_mode(text: &str) -> Option<String> {
    let start = text.find('[')? + 1;
    let len = text[start..].find(']')?;
    Some(text[start..start + len].to_owned())
}

/// Faults in a fresh mapping of `len` bytes at `ptr`, on huge pages where
/// the kernel gives them to shared memory (`shmem_enabled` set to `advise`
/// or `always` in `/sys/kernel/mm/transparent_hugepage`): a switch that
/// writes into many ports' buffers otherwise pays a TLB miss for nearly
/// every port it delivers to. The advice must come before the first touch,
/// which decides the page size. Both calls are hints: a kernel that refuses
/// them leaves 4 KiB pages that fault in on first use.
fn populate(ptr: *mut libc::c_void, len: usize) {
    if len >= HUGE_PAGE_MIN {
        // SAFETY: advice on our own fresh mapping of `len` bytes; it changes
        // no contents.
        unsafe { libc::madvise(ptr, len, libc::MADV_HUGEPAGE) };
    }
    // SAFETY: as above; populating writes nothing a reader could see (the
    // pages read as they were).
    unsafe { libc::madvise(ptr, len, libc::MADV_POPULATE_WRITE) };
}

impl Region {
    /// Creates a sealed memfd of the layout's size, maps it and writes the
    /// header and the initial slot-to-buffer assignment.
    pub fn create(name: &str, layout: Layout) -> Result<Region, RegionError> {
        let cname = std::ffi::CString::new(format!("vswitch:{name}"))
            .unwrap_or_else(|_| c"vswitch:port".to_owned());
        // SAFETY: memfd_create with a valid NUL-terminated name; the result is
        // checked before use.
        let raw = unsafe {
            libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
        };
        if raw < 0 {
            return Err(os("memfd_create")(io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: ftruncate on our own fd.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), layout.region_len as libc::off_t) } < 0 {
            return Err(os("ftruncate port memfd")(io::Error::last_os_error()));
        }
        let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
        // SAFETY: fcntl F_ADD_SEALS on our own memfd.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
            return Err(os("seal port memfd")(io::Error::last_os_error()));
        }
        let region = Region::map_fd(fd, layout)?;
        // SAFETY: the header block lies inside the fresh mapping and nobody else
        // has the fd yet.
        let header =
            unsafe { std::slice::from_raw_parts_mut(region.base.as_ptr(), REGION_HEADER_SIZE) };
        layout.write_header(header);
        let (tx, rx) = (region.tx_ring(), region.rx_ring());
        for i in 0..layout.ring_size {
            tx.write_slot(
                i,
                Slot {
                    buf: i,
                    len: 0,
                    flags: 0,
                },
            );
            rx.write_slot(
                i,
                Slot {
                    buf: layout.ring_size + i,
                    len: 0,
                    flags: 0,
                },
            );
        }
        tx.init_indices(0, layout.ring_size - 1);
        rx.init_indices(0, 0);
        Ok(region)
    }

    /// Maps a region received from the daemon, validating its header and seals.
    pub fn from_fd(fd: OwnedFd) -> Result<Region, RegionError> {
        // SAFETY: fcntl F_GET_SEALS on an fd we own.
        let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
        let needed = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW;
        if seals < 0 || seals & needed != needed {
            return Err(RegionError::NotSealed);
        }
        // SAFETY: fstat into a zeroed stat buffer.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid fd and out pointer.
        if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } < 0 {
            return Err(os("fstat port memfd")(io::Error::last_os_error()));
        }
        let len = st.st_size as usize;
        if len < REGION_HEADER_SIZE {
            return Err(LayoutError::Header("memfd shorter than a header").into());
        }
        let mut header = vec![0u8; REGION_HEADER_SIZE];
        // SAFETY: pread into our own buffer of the given length.
        let n = unsafe { libc::pread(fd.as_raw_fd(), header.as_mut_ptr().cast(), header.len(), 0) };
        if n != REGION_HEADER_SIZE as isize {
            return Err(os("read port header")(io::Error::last_os_error()));
        }
        let layout = Layout::from_header(&header, len)?;
        Region::map_fd(fd, layout)
    }

    fn map_fd(fd: OwnedFd, layout: Layout) -> Result<Region, RegionError> {
        // SAFETY: a fresh shared mapping of `region_len` bytes of our memfd,
        // which is at least that long (created so, or checked by fstat).
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                layout.region_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(os("mmap port memfd")(io::Error::last_os_error()));
        }
        populate(ptr, layout.region_len);
        let base = NonNull::new(ptr.cast::<u8>()).ok_or(RegionError::NotSealed)?;
        // SAFETY: both ring offsets lie inside the mapping, as the layout
        // guarantees (and `from_header` checked against the memfd's size).
        let (tx_ring, rx_ring) = unsafe {
            (
                base.add(layout.tx_ring_offset),
                base.add(layout.rx_ring_offset),
            )
        };
        Ok(Region {
            base,
            len: layout.region_len,
            layout,
            tx_ring,
            rx_ring,
            fd,
        })
    }

    /// The region's geometry.
    #[inline]
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The memfd, for passing to the client.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The TX ring (client to switch), borrowed from the region.
    #[inline]
    pub fn tx_ring(&self) -> RingView<'_> {
        // SAFETY: the ring lies inside the mapping (see map_fd), which stays
        // mapped while `self` is borrowed.
        unsafe { RingView::new(self.tx_ring, self.layout.ring_size) }
    }

    /// The RX ring (switch to client), borrowed from the region.
    #[inline]
    pub fn rx_ring(&self) -> RingView<'_> {
        // SAFETY: as in tx_ring.
        unsafe { RingView::new(self.rx_ring, self.layout.ring_size) }
    }

    /// Pointer to buffer `index`, or `None` when the index is out of range.
    /// It points into the mapping, valid while the region lives; the other
    /// side may write the buffer at any time, so turning it into a slice is
    /// for code that owns the buffer's slot by the ring protocol.
    #[inline]
    pub fn buffer(&self, index: u32) -> Option<NonNull<u8>> {
        if index >= self.layout.num_bufs {
            return None;
        }
        // SAFETY: index < num_bufs, so the buffer lies inside the mapping.
        Some(unsafe {
            NonNull::new_unchecked(self.base.as_ptr().add(self.layout.buffer_offset(index)))
        })
    }

    /// Bytes mapped.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true: a region holds at least its header.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping this value created; every
        // view borrows the region, so none is left.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_selected_huge_page_mode_is_the_bracketed_word() {
        let text = "always within_size advise [never] deny force\n";
        assert_eq!(selected_mode(text).as_deref(), Some("never"));
        assert_eq!(selected_mode("[advise] never").as_deref(), Some("advise"));
        assert_eq!(selected_mode("always never"), None);
    }

    /// A copy of a valid region's memfd with only `seals` added.
    fn memfd_with_seals(seals: libc::c_int) -> OwnedFd {
        let layout = Layout::new(64, 2048).unwrap();
        let region = Region::create("seals", layout).unwrap();
        // SAFETY: memfd_create with a valid name; checked below.
        let raw = unsafe { libc::memfd_create(c"seals".as_ptr(), libc::MFD_ALLOW_SEALING) };
        assert!(raw >= 0);
        // SAFETY: a fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let len = layout.region_len;
        // SAFETY: the region's mapping holds `len` readable bytes.
        let bytes = unsafe { std::slice::from_raw_parts(region.base.as_ptr(), len) };
        // SAFETY: writing our own buffer to our own memfd.
        let written = unsafe { libc::write(fd.as_raw_fd(), bytes.as_ptr().cast(), len) };
        assert_eq!(written, len as isize);
        // SAFETY: fcntl on our own memfd.
        let sealed = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) };
        assert_eq!(sealed, 0);
        fd
    }

    #[test]
    fn a_client_requires_both_resize_seals() {
        for seals in [0, libc::F_SEAL_SHRINK, libc::F_SEAL_GROW] {
            assert!(
                matches!(
                    Region::from_fd(memfd_with_seals(seals)),
                    Err(RegionError::NotSealed)
                ),
                "seals {seals:#x}"
            );
        }
        let both = memfd_with_seals(libc::F_SEAL_SHRINK | libc::F_SEAL_GROW);
        assert!(Region::from_fd(both).is_ok());
    }
}
