//! A fixed-size array in its own anonymous mapping, zeroed by the kernel and
//! backed by transparent huge pages where the kernel allows them (the
//! default `madvise` mode of `/sys/kernel/mm/transparent_hugepage/enabled`
//! does): a large table read at random then costs one TLB entry per 2 MiB
//! instead of one per 4 KiB, which is most of the cost of a lookup that
//! misses the cache.

use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::NonNull;

/// Arrays of at least this many bytes ask for huge pages (and start at a
/// huge page boundary).
const HUGE_PAGE: usize = 2 << 20;

/// Types for which all-zero bytes are a valid value.
///
/// # Safety
/// An implementer must be valid when every byte is zero and have no `Drop`.
pub unsafe trait Zeroable: Sized {}

/// `len` values of `T`, all zero when created.
pub struct ZeroedArray<T: Zeroable> {
    ptr: NonNull<T>,
    len: usize,
    map: NonNull<libc::c_void>,
    map_len: usize,
    _owns: PhantomData<T>,
}

// SAFETY: the array owns its values as a `Box<[T]>` would.
unsafe impl<T: Zeroable + Send> Send for ZeroedArray<T> {}
// SAFETY: shared access only hands out `&[T]`.
unsafe impl<T: Zeroable + Sync> Sync for ZeroedArray<T> {}

impl<T: Zeroable> ZeroedArray<T> {
    /// An array of `len` zeroed values (aborts like any allocation when
    /// memory runs out).
    pub fn new(len: usize) -> ZeroedArray<T> {
        let bytes = len
            .checked_mul(size_of::<T>())
            .expect("array size overflows")
            .max(1);
        let huge = bytes >= HUGE_PAGE;
        // Room to start at a huge page boundary (and for T's alignment).
        let slack = if huge {
            HUGE_PAGE
        } else {
            align_of::<T>().saturating_sub(1)
        };
        let map_len = bytes + slack;
        // SAFETY: a fresh private anonymous mapping; the result is checked.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        let Some(map) = NonNull::new(map).filter(|_| map != libc::MAP_FAILED) else {
            let layout = std::alloc::Layout::from_size_align(map_len, HUGE_PAGE)
                .unwrap_or(std::alloc::Layout::new::<T>());
            std::alloc::handle_alloc_error(layout);
        };
        let align = if huge { HUGE_PAGE } else { align_of::<T>() };
        let offset = map.as_ptr().align_offset(align);
        // SAFETY: `offset < align <= slack + 1`, so the array's `bytes` lie
        // inside the mapping.
        let start = unsafe { map.as_ptr().cast::<u8>().add(offset) };
        if huge {
            // SAFETY: advice on our own mapping, before any page is touched
            // (the first touch decides the page size); it changes no
            // contents, and a refusal leaves 4 KiB pages.
            unsafe { libc::madvise(start.cast(), bytes, libc::MADV_HUGEPAGE) };
        }
        ZeroedArray {
            // SAFETY: `start` lies inside a non-null mapping.
            ptr: unsafe { NonNull::new_unchecked(start.cast::<T>()) },
            len,
            map,
            map_len,
            _owns: PhantomData,
        }
    }
}

impl<T: Zeroable> Deref for ZeroedArray<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: `len` values of T, aligned, zero-initialised (valid by
        // `Zeroable`), owned by this array for its lifetime.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Zeroable> Drop for ZeroedArray<T> {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once; `T` has no `Drop`
        // (`Zeroable`), so nothing needs running first.
        unsafe { libc::munmap(self.map.as_ptr(), self.map_len) };
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    #[repr(align(64))]
    struct Line([AtomicU64; 8]);
    // SAFETY: atomics are valid when zero and have no Drop.
    unsafe impl Zeroable for Line {}

    #[test]
    fn small_and_huge_arrays_start_zeroed_aligned_and_writable() {
        for len in [1, 3, 100, (4 << 20) / 64 + 5] {
            let array = ZeroedArray::<Line>::new(len);
            assert_eq!(array.len(), len);
            assert_eq!(array.as_ptr() as usize % 64, 0);
            if len * 64 >= HUGE_PAGE {
                assert_eq!(array.as_ptr() as usize % HUGE_PAGE, 0);
            }
            for line in array.iter() {
                assert!(line.0.iter().all(|w| w.load(Ordering::Relaxed) == 0));
            }
            array[len - 1].0[7].store(7, Ordering::Relaxed);
            assert_eq!(array[len - 1].0[7].load(Ordering::Relaxed), 7);
        }
    }
}
