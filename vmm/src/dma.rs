//! Device DMA into guest RAM for the e1000 model.
//!
//! Guest RAM is one contiguous region at guest-physical 0, so translating an
//! address is one bounds check and an add to the base pointer; copies move
//! 64-byte chunks (a cache line at a time, which the compiler turns into wide
//! vector moves) and then the tail. Nothing outside guest RAM is ever touched:
//! every access that is not entirely inside RAM fails as a whole.

use std::sync::Arc;

use crate::e1000::dma::{Dma, DmaError};
use crate::memory::GuestRam;

const CHUNK: usize = 64;

/// DMA over guest RAM.
#[derive(Clone)]
pub struct GuestDma {
    ram: Arc<GuestRam>,
}

impl GuestDma {
    /// DMA into `ram`.
    pub fn new(ram: Arc<GuestRam>) -> GuestDma {
        GuestDma { ram }
    }
}

/// Copies `len` bytes from `src` to `dst` in 64-byte chunks, then the tail.
///
/// # Safety
/// `src` must be valid for `len` bytes of reads and `dst` for `len` bytes of
/// writes, and the two ranges must not overlap.
#[inline]
unsafe fn copy_chunked(src: *const u8, dst: *mut u8, len: usize) {
    let chunks = len / CHUNK;
    for i in 0..chunks {
        // SAFETY: `i * CHUNK + CHUNK <= len`, inside both ranges (caller contract).
        unsafe {
            let block = std::ptr::read_unaligned(src.add(i * CHUNK) as *const [u8; CHUNK]);
            std::ptr::write_unaligned(dst.add(i * CHUNK) as *mut [u8; CHUNK], block);
        }
    }
    let done = chunks * CHUNK;
    // SAFETY: the tail `done..len` is inside both ranges (caller contract).
    unsafe { std::ptr::copy_nonoverlapping(src.add(done), dst.add(done), len - done) };
}

impl Dma for GuestDma {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), DmaError> {
        let src = self.ram.host_range(gpa, buf.len()).ok_or(DmaError {
            gpa,
            len: buf.len(),
        })?;
        // SAFETY: `host_range` checked that `gpa..gpa+len` is inside the RAM
        // mapping; `buf` is a distinct host buffer. The guest may change the
        // bytes concurrently; they are untrusted data either way.
        unsafe { copy_chunked(src, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), DmaError> {
        let dst = self.ram.host_range(gpa, data.len()).ok_or(DmaError {
            gpa,
            len: data.len(),
        })?;
        // SAFETY: as in `read`, with the roles swapped.
        unsafe { copy_chunked(data.as_ptr(), dst, data.len()) };
        Ok(())
    }

    fn contains(&self, gpa: u64, len: u64) -> bool {
        usize::try_from(len).is_ok_and(|len| self.ram.host_range(gpa, len).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_every_length_and_checks_bounds() {
        let ram = Arc::new(GuestRam::new(2 << 20).unwrap());
        let dma = GuestDma::new(Arc::clone(&ram));
        for len in [0usize, 1, 63, 64, 65, 127, 128, 1514, 2048] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let at = 0x1000 + len as u64;
            dma.write(at, &data).unwrap();
            let mut back = vec![0u8; len];
            dma.read(at, &mut back).unwrap();
            assert_eq!(back, data, "len {len}");
        }
        let end = 2u64 << 20;
        assert!(dma.write(end - 4, &[0; 4]).is_ok());
        assert_eq!(
            dma.write(end - 3, &[0; 4]),
            Err(DmaError {
                gpa: end - 3,
                len: 4
            })
        );
        assert!(dma.read(u64::MAX - 1, &mut [0; 4]).is_err());
        assert!(dma.contains(0, end));
        assert!(!dma.contains(0, end + 1));
        assert!(!dma.contains(u64::MAX, 1));
    }
}
