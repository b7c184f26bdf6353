//! The PVH `hvm_start_info` block: magic, command line and memory map.
//!
//! Layout (all little-endian): 0 magic (0x336ec578), 4 version, 8 flags,
//! 12 nr_modules, 16 modlist_paddr, 24 cmdline_paddr, 32 rsdp_paddr,
//! 40 memmap_paddr, 48 memmap_entries (version >= 1). A memmap entry is
//! 24 bytes: addr u64, size u64, type u32 (1 = RAM), reserved u32.

/// The PVH start info magic.
pub const MAGIC: u32 = 0x336e_c578;
const MAX_CMDLINE: usize = 4096;
const MAX_MEMMAP: usize = 128;
const RAM: u32 = 1;

/// What the guest takes from the start info.
#[derive(Clone, Copy, Debug)]
pub struct StartInfo {
    /// The command line (empty if none).
    pub cmdline: &'static str,
    /// End of the highest RAM range below 4 GiB (0 if no memory map).
    pub ram_top: u64,
    /// Total RAM in the memory map.
    pub ram_bytes: u64,
}

/// Why the start info is unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartInfoError {
    /// The address is 0 or above 4 GiB.
    BadAddress,
    /// Wrong magic.
    BadMagic(u32),
    /// The command line is not UTF-8.
    BadCmdline,
}

/// Reads the start info at physical address `paddr`.
///
/// # Safety
/// `paddr` must be the address the loader passed in EBX: identity mapped,
/// and the block, command line and memory map must stay untouched.
pub unsafe fn read(paddr: u64) -> Result<StartInfo, StartInfoError> {
    if paddr == 0 || paddr >= 1 << 32 || !paddr.is_multiple_of(4) {
        return Err(StartInfoError::BadAddress);
    }
    let base = paddr as *const u8;
    // SAFETY: the caller vouches for the block; fields are read unaligned-safe.
    let field32 = |off: usize| unsafe { (base.add(off) as *const u32).read_unaligned() };
    // SAFETY: as above.
    let field64 = |off: usize| unsafe { (base.add(off) as *const u64).read_unaligned() };
    let magic = field32(0);
    if magic != MAGIC {
        return Err(StartInfoError::BadMagic(magic));
    }
    let version = field32(4);
    let cmdline_paddr = field64(24);
    let cmdline = if cmdline_paddr != 0 && cmdline_paddr < 1 << 32 {
        let start = cmdline_paddr as *const u8;
        let mut len = 0;
        // SAFETY: a NUL-terminated string in identity-mapped RAM; bounded.
        while len < MAX_CMDLINE && unsafe { *start.add(len) } != 0 {
            len += 1;
        }
        // SAFETY: the `len` bytes just scanned.
        let bytes = unsafe { core::slice::from_raw_parts(start, len) };
        core::str::from_utf8(bytes).map_err(|_| StartInfoError::BadCmdline)?
    } else {
        ""
    };
    let (mut ram_top, mut ram_bytes) = (0, 0);
    if version >= 1 {
        let memmap = field64(40);
        let entries = (field32(48) as usize).min(MAX_MEMMAP);
        if memmap != 0 && memmap < 1 << 32 {
            for i in 0..entries {
                let entry = (memmap as usize + i * 24) as *const u8;
                // SAFETY: entries of the loader's memory map, bounded above.
                let (addr, size, kind) = unsafe {
                    (
                        (entry as *const u64).read_unaligned(),
                        (entry.add(8) as *const u64).read_unaligned(),
                        (entry.add(16) as *const u32).read_unaligned(),
                    )
                };
                if kind == RAM {
                    ram_bytes += size;
                    let end = addr.saturating_add(size);
                    if end <= 1 << 32 {
                        ram_top = ram_top.max(end);
                    }
                }
            }
        }
    }
    Ok(StartInfo {
        cmdline,
        ram_top,
        ram_bytes,
    })
}
