//! Guest RAM for the e1000 harness: the VMM's own [`GuestRam`] (a memfd
//! mapping) reached through the VMM's DMA path ([`GuestDma`]), with holes:
//! pages the input chooses are mapped `PROT_NONE` and refused by the DMA
//! layer, as addresses outside RAM are, so an access that slipped past the
//! bounds checks faults instead of passing unnoticed (AddressSanitizer does
//! not see inside an mmap). A guard mapping after the end of RAM does the
//! same for accesses past it. Every device write is logged for the
//! harness's "writes only where the guest allowed" check.

use std::cell::RefCell;
use std::sync::Arc;

use vmm::e1000::{Dma, DmaError};
use vmm::memory::GuestRam;
use vmm::net::dma::GuestDma;

/// Guest RAM size (the smallest the VMM allows).
pub const RAM_SIZE: u64 = 2 << 20;
/// Page size of the holes.
pub const PAGE: u64 = 4096;
/// Bytes of `PROT_NONE` guard mapped after the end of RAM (when free).
const GUARD: usize = 64 << 10;

thread_local! {
    static RAM: Arc<GuestRam> = new_ram();
}

fn new_ram() -> Arc<GuestRam> {
    let ram = Arc::new(GuestRam::new(RAM_SIZE).expect("2 MiB of guest RAM"));
    let end = ram.host_base() as usize + RAM_SIZE as usize;
    // SAFETY: a fresh anonymous PROT_NONE mapping at a fixed address that
    // MAP_FIXED_NOREPLACE refuses if anything is mapped there; nothing is
    // replaced, and the mapping is never touched (it only makes stray
    // accesses fault).
    let guard = unsafe {
        libc::mmap(
            end as *mut libc::c_void,
            GUARD,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if guard != libc::MAP_FAILED && guard as usize != end {
        // An old kernel took the address as a hint: not a guard, undo it.
        // SAFETY: unmapping exactly the mapping just created.
        unsafe { libc::munmap(guard, GUARD) };
    }
    ram
}

/// One device write to guest memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Write {
    /// Guest-physical address.
    pub gpa: u64,
    /// Length in bytes.
    pub len: usize,
    /// The value of a 4-byte write (little-endian).
    pub value: Option<u32>,
}

/// Guest RAM with holes, as the device model sees it.
pub struct GuestMemory {
    ram: Arc<GuestRam>,
    dma: GuestDma,
    holes: Vec<u64>,
    log: RefCell<Vec<Write>>,
}

fn protect(ram: &GuestRam, page: u64, prot: libc::c_int) {
    // SAFETY: `page` is a page index below RAM_SIZE / PAGE, so the range is
    // inside the RAM mapping, which stays mapped while `ram` lives; only the
    // protection changes.
    let rc = unsafe {
        libc::mprotect(
            ram.host_base().add((page * PAGE) as usize).cast(),
            PAGE as usize,
            prot,
        )
    };
    assert_eq!(rc, 0, "mprotect of guest RAM");
}

impl GuestMemory {
    /// The thread's guest RAM, zeroed, with the pages `holes` (page indices,
    /// taken modulo the RAM size; page 0 is never a hole) unmapped.
    pub fn new(holes: &[u16]) -> Self {
        let ram = RAM.with(Arc::clone);
        // SAFETY: the whole mapping is writable (every hole of a previous
        // run was restored when its GuestMemory dropped).
        unsafe { std::ptr::write_bytes(ram.host_base(), 0, RAM_SIZE as usize) };
        let pages = RAM_SIZE / PAGE;
        let mut list: Vec<u64> = holes
            .iter()
            .map(|&h| u64::from(h) % pages)
            .filter(|&p| p != 0)
            .collect();
        list.sort_unstable();
        list.dedup();
        for &page in &list {
            protect(&ram, page, libc::PROT_NONE);
        }
        Self {
            dma: GuestDma::new(Arc::clone(&ram)),
            ram,
            holes: list,
            log: RefCell::new(Vec::new()),
        }
    }

    /// The underlying RAM.
    pub fn ram(&self) -> &Arc<GuestRam> {
        &self.ram
    }

    /// Whether `[gpa, gpa + len)` touches a hole.
    pub fn in_hole(&self, gpa: u64, len: u64) -> bool {
        let end = gpa.saturating_add(len.max(1));
        self.holes
            .iter()
            .any(|&p| gpa < (p + 1) * PAGE && end > p * PAGE)
    }

    /// The guest writes `bytes` at `gpa` (not logged); false if refused.
    pub fn poke(&self, gpa: u64, bytes: &[u8]) -> bool {
        !self.in_hole(gpa, bytes.len() as u64) && self.dma.write(gpa, bytes).is_ok()
    }

    /// The guest stores the u32 at `gpa` with one atomic store (as a guest
    /// updating a shared field does); false if refused.
    pub fn poke_u32(&self, gpa: u64, value: u32) -> bool {
        !self.in_hole(gpa, 4) && self.dma.write_u32(gpa, value).is_ok()
    }

    /// The guest reads `buf.len()` bytes at `gpa`; false if refused.
    pub fn peek(&self, gpa: u64, buf: &mut [u8]) -> bool {
        !self.in_hole(gpa, buf.len() as u64) && self.dma.read(gpa, buf).is_ok()
    }

    /// The guest reads the u32 at `gpa`.
    pub fn peek_u32(&self, gpa: u64) -> Option<u32> {
        let mut b = [0u8; 4];
        self.peek(gpa, &mut b).then(|| u32::from_le_bytes(b))
    }

    /// The device writes logged since the last call.
    pub fn take_log(&self) -> Vec<Write> {
        std::mem::take(&mut *self.log.borrow_mut())
    }

    fn refuse(&self, gpa: u64, len: usize) -> Result<(), DmaError> {
        if self.in_hole(gpa, len as u64) {
            Err(DmaError { gpa, len })
        } else {
            Ok(())
        }
    }

    fn record(&self, gpa: u64, len: usize, value: Option<u32>) {
        self.log.borrow_mut().push(Write { gpa, len, value });
    }
}

impl Drop for GuestMemory {
    fn drop(&mut self) {
        for &page in &self.holes {
            protect(&self.ram, page, libc::PROT_READ | libc::PROT_WRITE);
        }
    }
}

impl Dma for GuestMemory {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), DmaError> {
        self.refuse(gpa, buf.len())?;
        self.dma.read(gpa, buf)
    }

    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), DmaError> {
        self.refuse(gpa, data.len())?;
        self.dma.write(gpa, data)?;
        let value = <[u8; 4]>::try_from(data).ok().map(u32::from_le_bytes);
        self.record(gpa, data.len(), value);
        Ok(())
    }

    fn contains(&self, gpa: u64, len: u64) -> bool {
        !self.in_hole(gpa, len) && self.dma.contains(gpa, len)
    }

    fn read_u32(&self, gpa: u64) -> Result<u32, DmaError> {
        self.refuse(gpa, 4)?;
        self.dma.read_u32(gpa)
    }

    fn write_u32(&self, gpa: u64, value: u32) -> Result<(), DmaError> {
        self.refuse(gpa, 4)?;
        self.dma.write_u32(gpa, value)?;
        self.record(gpa, 4, Some(value));
        Ok(())
    }
}
