//! The PVH boot information the VMM writes into guest RAM: `hvm_start_info`,
//! its memory map, the command line, and a flat GDT matching the segment
//! state the entry registers describe.

use thiserror::Error;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::elf::LoadSegment;

/// `hvm_start_info.magic`.
pub const HVM_START_MAGIC: u32 = 0x336e_c578;
/// Memory map entry type for usable RAM.
pub const MEMMAP_TYPE_RAM: u32 = 1;
/// Size of the boot information block: one page of structures, one of command line.
const BOOT_BLOCK_SIZE: u64 = 0x2000;
/// Offset of the GDT inside the boot block.
const GDT_OFFSET: u64 = 0x40;
/// Offset of the memory map inside the boot block.
const MEMMAP_OFFSET: u64 = 0x80;
/// Offset of the command line inside the boot block.
const CMDLINE_OFFSET: u64 = 0x1000;
/// Longest command line, without its terminating NUL.
pub const MAX_CMDLINE_LEN: usize = 4095;

/// Selector of the flat 32-bit code segment in the boot GDT.
pub const BOOT_CS: u16 = 0x08;
/// Selector of the flat 32-bit data segment in the boot GDT.
pub const BOOT_DS: u16 = 0x10;
/// Selector of the TSS descriptor in the boot GDT.
pub const BOOT_TSS: u16 = 0x18;
/// The boot GDT: null, flat code, flat data, a 104-byte busy TSS at 0.
pub const BOOT_GDT: [u64; 4] = [
    0,
    0x00CF_9B00_0000_FFFF,
    0x00CF_9300_0000_FFFF,
    0x0000_8B00_0000_0067,
];

/// Why the boot information could not be written.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PvhError {
    /// The command line is too long or holds a NUL byte.
    #[error("guest command line invalid: {0}")]
    BadCmdline(&'static str),
    /// No free page range for the boot information below the end of RAM.
    #[error("no free room in guest RAM for the PVH boot information")]
    NoRoom,
    /// A write to guest memory failed (outside RAM).
    #[error("writing boot information to guest RAM failed: {0}")]
    Memory(String),
}

/// Where the boot information went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootInfo {
    /// Guest-physical address of `hvm_start_info` (EBX at entry).
    pub start_info: u64,
    /// Guest-physical address of the GDT.
    pub gdt: u64,
    /// Size of the GDT minus one (the GDTR limit).
    pub gdt_limit: u16,
}

/// Picks the lowest page-aligned block, from 4 KiB up, that overlaps no image segment.
pub fn place_boot_block(segments: &[LoadSegment], ram_size: u64) -> Result<u64, PvhError> {
    let mut at = 0x1000u64;
    while at + BOOT_BLOCK_SIZE <= ram_size {
        let end = at + BOOT_BLOCK_SIZE;
        match segments.iter().find(|s| s.paddr < end && at < s.end()) {
            // Jump past the overlapping segment, rounded up to a page.
            Some(s) => at = (s.end() + 0xfff) & !0xfff,
            None => return Ok(at),
        }
    }
    Err(PvhError::NoRoom)
}

/// Writes start_info, the memory map (one RAM entry covering all of RAM), the
/// command line and the boot GDT at `block`.
pub fn write_boot_info(
    mem: &GuestMemoryMmap,
    block: u64,
    ram_size: u64,
    cmdline: &str,
) -> Result<BootInfo, PvhError> {
    if cmdline.len() > MAX_CMDLINE_LEN {
        return Err(PvhError::BadCmdline("longer than 4095 bytes"));
    }
    if cmdline.as_bytes().contains(&0) {
        return Err(PvhError::BadCmdline("contains a NUL byte"));
    }
    let write = |addr: u64, bytes: &[u8]| {
        mem.write_slice(bytes, GuestAddress(addr))
            .map_err(|e| PvhError::Memory(e.to_string()))
    };
    let cmdline_addr = block + CMDLINE_OFFSET;
    let mut line = cmdline.as_bytes().to_vec();
    line.push(0);
    write(cmdline_addr, &line)?;

    let memmap_addr = block + MEMMAP_OFFSET;
    let mut entry = Vec::with_capacity(24);
    entry.extend_from_slice(&0u64.to_le_bytes());
    entry.extend_from_slice(&ram_size.to_le_bytes());
    entry.extend_from_slice(&MEMMAP_TYPE_RAM.to_le_bytes());
    entry.extend_from_slice(&0u32.to_le_bytes());
    write(memmap_addr, &entry)?;

    let gdt_addr = block + GDT_OFFSET;
    let gdt: Vec<u8> = BOOT_GDT.iter().flat_map(|d| d.to_le_bytes()).collect();
    write(gdt_addr, &gdt)?;

    // struct hvm_start_info, version 1 (56 bytes).
    let mut info = Vec::with_capacity(56);
    info.extend_from_slice(&HVM_START_MAGIC.to_le_bytes());
    info.extend_from_slice(&1u32.to_le_bytes()); // version
    info.extend_from_slice(&0u32.to_le_bytes()); // flags
    info.extend_from_slice(&0u32.to_le_bytes()); // nr_modules
    info.extend_from_slice(&0u64.to_le_bytes()); // modlist_paddr
    info.extend_from_slice(&cmdline_addr.to_le_bytes());
    info.extend_from_slice(&0u64.to_le_bytes()); // rsdp_paddr
    info.extend_from_slice(&memmap_addr.to_le_bytes());
    info.extend_from_slice(&1u32.to_le_bytes()); // memmap_entries
    info.extend_from_slice(&0u32.to_le_bytes()); // reserved
    write(block, &info)?;

    Ok(BootInfo {
        start_info: block,
        gdt: gdt_addr,
        gdt_limit: (BOOT_GDT.len() * 8 - 1) as u16,
    })
}

/// Builds the guest command line: the guest arguments joined by spaces, with
/// `tsc_khz=N` appended when no argument sets it.
pub fn build_cmdline(args: &[String], tsc_khz: Option<u32>) -> String {
    let mut words: Vec<String> = args.to_vec();
    let has_tsc = words.iter().any(|w| w.starts_with("tsc_khz="));
    if let (false, Some(khz)) = (has_tsc, tsc_khz) {
        words.push(format!("tsc_khz={khz}"));
    }
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::GuestRam;

    fn seg(paddr: u64, size: u64) -> LoadSegment {
        LoadSegment {
            paddr,
            file_offset: 0,
            file_size: size,
            mem_size: size,
        }
    }

    #[test]
    fn boot_block_avoids_segments() {
        assert_eq!(
            place_boot_block(&[seg(0x10_0000, 0x1000)], 4 << 20),
            Ok(0x1000)
        );
        assert_eq!(place_boot_block(&[seg(0x1800, 0x100)], 4 << 20), Ok(0x2000));
        assert_eq!(
            place_boot_block(&[seg(0, 4 << 20)], 4 << 20),
            Err(PvhError::NoRoom)
        );
    }

    #[test]
    fn start_info_layout() {
        let ram = GuestRam::new(4 << 20).unwrap();
        let info = write_boot_info(ram.memory(), 0x1000, 4 << 20, "tx count=5").unwrap();
        let mut raw = [0u8; 56];
        ram.memory()
            .read_slice(&mut raw, GuestAddress(0x1000))
            .unwrap();
        assert_eq!(
            u32::from_le_bytes(raw[0..4].try_into().unwrap()),
            HVM_START_MAGIC
        );
        assert_eq!(u32::from_le_bytes(raw[4..8].try_into().unwrap()), 1);
        let cmdline = u64::from_le_bytes(raw[24..32].try_into().unwrap());
        let memmap = u64::from_le_bytes(raw[40..48].try_into().unwrap());
        assert_eq!(u32::from_le_bytes(raw[48..52].try_into().unwrap()), 1);
        let mut line = [0u8; 11];
        ram.memory()
            .read_slice(&mut line, GuestAddress(cmdline))
            .unwrap();
        assert_eq!(&line, b"tx count=5\0");
        let mut entry = [0u8; 24];
        ram.memory()
            .read_slice(&mut entry, GuestAddress(memmap))
            .unwrap();
        assert_eq!(
            u64::from_le_bytes(entry[8..16].try_into().unwrap()),
            4 << 20
        );
        assert_eq!(u32::from_le_bytes(entry[16..20].try_into().unwrap()), 1);
        assert_eq!(info.gdt_limit, 31);
        assert!(write_boot_info(ram.memory(), 0x1000, 4 << 20, "a\0b").is_err());
    }

    #[test]
    fn tsc_khz_is_appended_once() {
        let args = vec!["tx".to_string(), "count=3".to_string()];
        assert_eq!(
            build_cmdline(&args, Some(2_000_000)),
            "tx count=3 tsc_khz=2000000"
        );
        let args = vec!["tx".to_string(), "tsc_khz=5".to_string()];
        assert_eq!(build_cmdline(&args, Some(2_000_000)), "tx tsc_khz=5");
        assert_eq!(build_cmdline(&[], None), "");
    }
}
