//! Device DMA into guest RAM for the e1000 model.
//!
//! Guest RAM is one contiguous region at guest-physical 0, so translating an
//! address is one bounds check and an add to the base pointer; copies move
//! 64-byte chunks (a cache line at a time, which the compiler turns into wide
//! vector moves) and then the tail. Nothing outside guest RAM is ever touched:
//! every access that is not entirely inside RAM fails as a whole. Aligned
//! 32-bit accesses ([`Dma::read_u32`], [`Dma::write_u32`], used for the CSB's
//! fields) are single atomic loads and stores, so the guest and the device
//! never see a torn field.

use std::sync::atomic::{AtomicU32, Ordering};
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

    fn read_u32(&self, gpa: u64) -> Result<u32, DmaError> {
        let error = DmaError { gpa, len: 4 };
        if !gpa.is_multiple_of(4) {
            let mut bytes = [0u8; 4];
            self.read(gpa, &mut bytes)?;
            return Ok(u32::from_le_bytes(bytes));
        }
        let ptr = self.ram.host_range(gpa, 4).ok_or(error)?;
        // SAFETY: `host_range` checked that the 4 bytes are inside the RAM
        // mapping, which lives as long as `self.ram`; the RAM base is page
        // aligned and `gpa` is a multiple of 4, so the pointer is aligned for
        // an AtomicU32 (same size and layout as u32). The guest writes this
        // memory concurrently: an atomic load is the access that allows it.
        let word = unsafe { &*(ptr as *const AtomicU32) };
        Ok(u32::from_le(word.load(Ordering::Acquire)))
    }

    fn write_u32(&self, gpa: u64, value: u32) -> Result<(), DmaError> {
        let error = DmaError { gpa, len: 4 };
        if !gpa.is_multiple_of(4) {
            return self.write(gpa, &value.to_le_bytes());
        }
        let ptr = self.ram.host_range(gpa, 4).ok_or(error)?;
        // SAFETY: as in `read_u32`: in bounds, aligned, shared with the guest.
        let word = unsafe { &*(ptr as *const AtomicU32) };
        word.store(value.to_le(), Ordering::Release);
        Ok(())
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
        dma.write_u32(0x2000, 0x1234_5678).unwrap();
        assert_eq!(dma.read_u32(0x2000).unwrap(), 0x1234_5678);
        let mut bytes = [0u8; 4];
        dma.read(0x2000, &mut bytes).unwrap();
        assert_eq!(bytes, [0x78, 0x56, 0x34, 0x12], "little-endian");
        dma.write_u32(0x2001, 0xAABB_CCDD).unwrap();
        assert_eq!(
            dma.read_u32(0x2001).unwrap(),
            0xAABB_CCDD,
            "unaligned works"
        );
        assert!(dma.read_u32(end - 2).is_err());
        assert!(dma.write_u32(end, 0).is_err());
    }
}
