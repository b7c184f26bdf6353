//! The `pvh_elf` target: the VMM's kernel-image loader on arbitrary bytes:
//! [`elf::parse`] and then [`boot::load`] into 2 MiB of guest RAM with a
//! command line from the input. Checked: no crash; a parsed image's segments
//! lie inside the file and its entry inside a segment; a loaded image's
//! segments and boot information lie inside RAM, and the boot block
//! overlaps no segment.

use vmm::boot::{self, elf};

use crate::guest_memory::{GuestMemory, RAM_SIZE};
use crate::input::Input;

/// Bytes of the boot block the loader reserves (start_info, memory map,
/// command line, GDT).
const BOOT_BLOCK: u64 = 0x2000;

/// Runs one input: a command-line run (at most 4200 bytes, lossy UTF-8),
/// then the image.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let cmdline = String::from_utf8_lossy(input.run(4200)).into_owned();
    let image = input.bytes(usize::MAX);
    let Ok(parsed) = elf::parse(image) else {
        return;
    };
    assert!(!parsed.segments.is_empty());
    for seg in &parsed.segments {
        let end = seg.file_offset.checked_add(seg.file_size);
        assert!(
            end.is_some_and(|end| end <= image.len() as u64),
            "{seg:?} past the file"
        );
        assert!(seg.file_size <= seg.mem_size, "{seg:?}");
        assert!(
            seg.paddr.checked_add(seg.mem_size).is_some(),
            "{seg:?} wraps"
        );
    }
    let entry = u64::from(parsed.entry);
    assert!(
        parsed
            .segments
            .iter()
            .any(|s| s.paddr <= entry && entry < s.end()),
        "entry {entry:#x} outside every segment"
    );
    let mem = GuestMemory::new(&[]);
    let Ok(loaded) = boot::load(mem.ram(), image, &cmdline) else {
        return;
    };
    assert_eq!(loaded.entry, parsed.entry);
    let block = loaded.boot.start_info;
    assert!(block + BOOT_BLOCK <= RAM_SIZE, "boot block at {block:#x}");
    for seg in &parsed.segments {
        assert!(seg.end() <= RAM_SIZE, "{seg:?} loaded outside RAM");
        assert!(
            seg.end() <= block || block + BOOT_BLOCK <= seg.paddr,
            "boot block at {block:#x} overlaps {seg:?}"
        );
    }
}
