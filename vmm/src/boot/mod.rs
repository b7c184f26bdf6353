//! PVH boot: load an ELF image's segments into guest RAM, write the boot
//! information and put the vCPU at the 32-bit entry (docs/guest-contract.md).

pub mod elf;
pub mod pvh;
pub mod regs;

use thiserror::Error;
use vm_memory::{Bytes, GuestAddress};

use crate::memory::GuestRam;
pub use elf::PvhImage;
pub use pvh::BootInfo;

/// Why the image could not be loaded.
#[derive(Debug, Error)]
pub enum BootError {
    /// The file is not a usable PVH ELF image.
    #[error("bad kernel image")]
    Elf(#[from] elf::ElfError),
    /// A segment does not fit in guest RAM.
    #[error("bad kernel image: segment at {paddr:#x}+{size:#x} does not fit in {ram:#x} bytes of guest RAM")]
    SegmentOutsideRam {
        /// Load address of the segment.
        paddr: u64,
        /// Memory size of the segment.
        size: u64,
        /// Guest RAM size.
        ram: u64,
    },
    /// The boot information could not be written.
    #[error(transparent)]
    Pvh(#[from] pvh::PvhError),
}

/// What the vCPU set-up needs after loading.
#[derive(Clone, Copy, Debug)]
pub struct Loaded {
    /// The PVH 32-bit entry point.
    pub entry: u32,
    /// Where the boot information went.
    pub boot: BootInfo,
}

/// Parses `image`, copies its PT_LOAD segments into `ram` (zero-filling the
/// bss), and writes start_info with `cmdline`.
pub fn load(ram: &GuestRam, image: &[u8], cmdline: &str) -> Result<Loaded, BootError> {
    let parsed = elf::parse(image)?;
    for seg in &parsed.segments {
        if seg.end() > ram.size() {
            return Err(BootError::SegmentOutsideRam {
                paddr: seg.paddr,
                size: seg.mem_size,
                ram: ram.size(),
            });
        }
    }
    for seg in &parsed.segments {
        let start = seg.file_offset as usize;
        let bytes = &image[start..start + seg.file_size as usize];
        let fill = vec![0u8; (seg.mem_size - seg.file_size) as usize];
        ram.memory()
            .write_slice(bytes, GuestAddress(seg.paddr))
            .and_then(|_| {
                ram.memory()
                    .write_slice(&fill, GuestAddress(seg.paddr + seg.file_size))
            })
            .map_err(|_| BootError::SegmentOutsideRam {
                paddr: seg.paddr,
                size: seg.mem_size,
                ram: ram.size(),
            })?;
    }
    let block = pvh::place_boot_block(&parsed.segments, ram.size())?;
    let boot = pvh::write_boot_info(ram.memory(), block, ram.size(), cmdline)?;
    Ok(Loaded {
        entry: parsed.entry,
        boot,
    })
}
