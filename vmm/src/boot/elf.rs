//! A small ELF reader for PVH images: the PT_LOAD segments and the Xen PVH
//! entry note (type 18, name "Xen", the 32-bit physical entry address).
//!
//! Everything in the file is untrusted: every offset and size is checked
//! against the file and against overflow, and a malformed image is an error.

use thiserror::Error;

/// ELF note type of the PVH 32-bit physical entry point (XEN_ELFNOTE_PHYS32_ENTRY).
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const SHT_NOTE: u32 = 7;
const EM_386: u16 = 3;
const EM_X86_64: u16 = 62;
/// Cap on program and section headers, so a hostile count cannot make us loop long.
const MAX_HEADERS: usize = 4096;

/// Why an image was rejected.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ElfError {
    /// The file does not start with the ELF magic.
    #[error("not an ELF file (bad magic)")]
    BadMagic,
    /// Unsupported class, byte order or machine.
    #[error("unsupported ELF: {0}")]
    Unsupported(&'static str),
    /// A header, segment or note lies (partly) outside the file or overflows.
    #[error("malformed ELF: {0}")]
    Malformed(&'static str),
    /// No PVH entry note: the image cannot be booted the PVH way.
    #[error("no PVH entry note (ELF note type 18, name \"Xen\"): not a PVH image")]
    NoPvhNote,
    /// The PVH entry is not inside any loadable segment.
    #[error("PVH entry {0:#x} is outside every PT_LOAD segment")]
    EntryOutsideImage(u64),
    /// The image has nothing to load.
    #[error("no PT_LOAD segment")]
    NoLoadSegment,
}

/// One PT_LOAD segment: `file_size` bytes at `file_offset` go to guest-physical
/// `paddr`, followed by zeroes up to `mem_size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadSegment {
    /// Guest-physical load address (p_paddr).
    pub paddr: u64,
    /// Offset of the segment's bytes in the file.
    pub file_offset: u64,
    /// Bytes taken from the file.
    pub file_size: u64,
    /// Bytes the segment occupies in memory (the rest is zeroed).
    pub mem_size: u64,
}

impl LoadSegment {
    /// End (exclusive) of the segment in guest-physical memory.
    pub fn end(&self) -> u64 {
        self.paddr + self.mem_size
    }
}

/// A parsed PVH image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PvhImage {
    /// The loadable segments, in file order.
    pub segments: Vec<LoadSegment>,
    /// The 32-bit physical entry point from the PVH note.
    pub entry: u32,
}

/// Field reader over the file, in the ELF's class (32 or 64 bit), little-endian.
struct Reader<'a> {
    data: &'a [u8],
    is64: bool,
}

impl Reader<'_> {
    fn bytes(&self, offset: u64, len: u64) -> Result<&[u8], ElfError> {
        let end = offset
            .checked_add(len)
            .ok_or(ElfError::Malformed("offset overflow"))?;
        if end > self.data.len() as u64 {
            return Err(ElfError::Malformed(
                "a structure extends past the end of the file",
            ));
        }
        Ok(&self.data[offset as usize..end as usize])
    }

    fn u16(&self, offset: u64) -> Result<u16, ElfError> {
        let b = self.bytes(offset, 2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&self, offset: u64) -> Result<u32, ElfError> {
        let b = self.bytes(offset, 4)?;
        Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }

    fn u64(&self, offset: u64) -> Result<u64, ElfError> {
        let b = self.bytes(offset, 8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
}

/// Parses an ELF32 or ELF64 x86 image and finds its PVH entry.
pub fn parse(data: &[u8]) -> Result<PvhImage, ElfError> {
    if data.len() < 16 || data[0..4] != *b"\x7fELF" {
        return Err(ElfError::BadMagic);
    }
    let is64 = match data[4] {
        1 => false,
        2 => true,
        _ => return Err(ElfError::Unsupported("unknown ELF class")),
    };
    if data[5] != 1 {
        return Err(ElfError::Unsupported("big-endian ELF"));
    }
    let r = Reader { data, is64 };
    let machine = r.u16(18)?;
    if machine != EM_X86_64 && machine != EM_386 {
        return Err(ElfError::Unsupported("not an x86 image"));
    }
    // Header field offsets differ between the classes.
    let (phoff, shoff, phentsize_at) = if is64 {
        (r.u64(32)?, r.u64(40)?, 54)
    } else {
        (u64::from(r.u32(28)?), u64::from(r.u32(32)?), 42)
    };
    let phentsize = u64::from(r.u16(phentsize_at)?);
    let phnum = usize::from(r.u16(phentsize_at + 2)?);
    let shentsize = u64::from(r.u16(phentsize_at + 4)?);
    let shnum = usize::from(r.u16(phentsize_at + 6)?);
    let min_phent = if is64 { 56 } else { 32 };
    let min_shent = if is64 { 64 } else { 40 };
    if phnum > MAX_HEADERS || shnum > MAX_HEADERS {
        return Err(ElfError::Malformed("too many headers"));
    }
    if phnum > 0 && phentsize < min_phent {
        return Err(ElfError::Malformed("program header entries too small"));
    }

    let mut segments = Vec::new();
    let mut entry = None;
    for i in 0..phnum as u64 {
        let ph = phoff
            .checked_add(i * phentsize)
            .ok_or(ElfError::Malformed("program header offset overflow"))?;
        if ph > data.len() as u64 {
            return Err(ElfError::Malformed(
                "program headers past the end of the file",
            ));
        }
        let p_type = r.u32(ph)?;
        let (offset, paddr, filesz, memsz) = if is64 {
            (
                r.u64(ph + 8)?,
                r.u64(ph + 24)?,
                r.u64(ph + 32)?,
                r.u64(ph + 40)?,
            )
        } else {
            (
                u64::from(r.u32(ph + 4)?),
                u64::from(r.u32(ph + 12)?),
                u64::from(r.u32(ph + 16)?),
                u64::from(r.u32(ph + 20)?),
            )
        };
        match p_type {
            PT_LOAD => {
                if filesz > memsz {
                    return Err(ElfError::Malformed(
                        "PT_LOAD with file size above memory size",
                    ));
                }
                r.bytes(offset, filesz)?;
                paddr
                    .checked_add(memsz)
                    .ok_or(ElfError::Malformed("PT_LOAD address overflow"))?;
                if memsz > 0 {
                    segments.push(LoadSegment {
                        paddr,
                        file_offset: offset,
                        file_size: filesz,
                        mem_size: memsz,
                    });
                }
            }
            PT_NOTE if entry.is_none() => entry = find_pvh_note(&r, r.bytes(offset, filesz)?)?,
            _ => {}
        }
    }
    // Some linkers leave notes only in sections: look there as a fallback.
    if entry.is_none() && shnum > 0 {
        if shentsize < min_shent {
            return Err(ElfError::Malformed("section header entries too small"));
        }
        for i in 0..shnum as u64 {
            let sh = shoff
                .checked_add(i * shentsize)
                .ok_or(ElfError::Malformed("section header offset overflow"))?;
            if sh > data.len() as u64 {
                return Err(ElfError::Malformed(
                    "section headers past the end of the file",
                ));
            }
            if r.u32(sh + 4)? != SHT_NOTE {
                continue;
            }
            let (offset, size) = if is64 {
                (r.u64(sh + 24)?, r.u64(sh + 32)?)
            } else {
                (u64::from(r.u32(sh + 16)?), u64::from(r.u32(sh + 20)?))
            };
            entry = find_pvh_note(&r, r.bytes(offset, size)?)?;
            if entry.is_some() {
                break;
            }
        }
    }
    if segments.is_empty() {
        return Err(ElfError::NoLoadSegment);
    }
    let entry = entry.ok_or(ElfError::NoPvhNote)?;
    let entry64 = u64::from(entry);
    if !segments
        .iter()
        .any(|s| entry64 >= s.paddr && entry64 < s.end())
    {
        return Err(ElfError::EntryOutsideImage(entry64));
    }
    Ok(PvhImage { segments, entry })
}

/// Walks the notes in `notes` and returns the PVH entry if one is there.
fn find_pvh_note(r: &Reader<'_>, notes: &[u8]) -> Result<Option<u32>, ElfError> {
    let n = Reader {
        data: notes,
        is64: r.is64,
    };
    let align4 = |x: u64| (x + 3) & !3;
    let mut at = 0u64;
    while at + 12 <= notes.len() as u64 {
        let namesz = u64::from(n.u32(at)?);
        let descsz = u64::from(n.u32(at + 4)?);
        let n_type = n.u32(at + 8)?;
        let name_at = at + 12;
        let desc_at = name_at + align4(namesz);
        let name = n.bytes(name_at, namesz)?;
        let desc = n.bytes(desc_at, descsz)?;
        if n_type == XEN_ELFNOTE_PHYS32_ENTRY && name == b"Xen\0" {
            // The entry is 32-bit; some images store it in a 64-bit word.
            let value = match desc.len() {
                4 => u64::from(n.u32(desc_at)?),
                8 => n.u64(desc_at)?,
                _ => return Err(ElfError::Malformed("PVH note of unexpected size")),
            };
            let entry =
                u32::try_from(value).map_err(|_| ElfError::Malformed("PVH entry above 4 GiB"))?;
            return Ok(Some(entry));
        }
        at = desc_at + align4(descsz);
    }
    Ok(None)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a minimal ELF64 image: one PT_LOAD of `code` at `paddr` and a
    /// PT_NOTE with the PVH entry `entry` (if given).
    pub(crate) fn build_elf64(code: &[u8], paddr: u64, entry: Option<u32>) -> Vec<u8> {
        let mut note = Vec::new();
        if let Some(entry) = entry {
            note.extend_from_slice(&4u32.to_le_bytes());
            note.extend_from_slice(&4u32.to_le_bytes());
            note.extend_from_slice(&XEN_ELFNOTE_PHYS32_ENTRY.to_le_bytes());
            note.extend_from_slice(b"Xen\0");
            note.extend_from_slice(&entry.to_le_bytes());
        }
        let phoff = 64u64;
        let phnum = 2u64;
        let note_off = phoff + 56 * phnum;
        let code_off = note_off + note.len() as u64;
        let mut f = vec![0u8; 64];
        f[0..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[6] = 1;
        f[16..18].copy_from_slice(&2u16.to_le_bytes());
        f[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        f[24..32].copy_from_slice(&paddr.to_le_bytes());
        f[32..40].copy_from_slice(&phoff.to_le_bytes());
        f[52..54].copy_from_slice(&64u16.to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());
        let mut ph = |p_type: u32, off: u64, addr: u64, size: u64, memsz: u64| {
            let mut h = vec![0u8; 56];
            h[0..4].copy_from_slice(&p_type.to_le_bytes());
            h[8..16].copy_from_slice(&off.to_le_bytes());
            h[16..24].copy_from_slice(&addr.to_le_bytes());
            h[24..32].copy_from_slice(&addr.to_le_bytes());
            h[32..40].copy_from_slice(&size.to_le_bytes());
            h[40..48].copy_from_slice(&memsz.to_le_bytes());
            f.extend_from_slice(&h);
        };
        ph(
            PT_LOAD,
            code_off,
            paddr,
            code.len() as u64,
            code.len() as u64 + 64,
        );
        ph(PT_NOTE, note_off, 0, note.len() as u64, note.len() as u64);
        f.extend_from_slice(&note);
        f.extend_from_slice(code);
        f
    }

    #[test]
    fn parses_segments_and_pvh_note() {
        let elf = build_elf64(&[0xf4; 32], 0x10_0000, Some(0x10_0004));
        let image = parse(&elf).unwrap();
        assert_eq!(image.entry, 0x10_0004);
        assert_eq!(image.segments.len(), 1);
        assert_eq!(image.segments[0].paddr, 0x10_0000);
        assert_eq!(image.segments[0].file_size, 32);
        assert_eq!(image.segments[0].mem_size, 96);
    }

    #[test]
    fn rejects_bad_images() {
        assert_eq!(parse(b"hello world, not elf"), Err(ElfError::BadMagic));
        let no_note = build_elf64(&[0xf4; 32], 0x10_0000, None);
        assert_eq!(parse(&no_note), Err(ElfError::NoPvhNote));
        let outside = build_elf64(&[0xf4; 32], 0x10_0000, Some(0x20_0000));
        assert_eq!(parse(&outside), Err(ElfError::EntryOutsideImage(0x20_0000)));
        let good = build_elf64(&[0xf4; 32], 0x10_0000, Some(0x10_0000));
        for cut in [20, 64, 100, 150] {
            assert!(parse(&good[..cut]).is_err(), "truncated at {cut}");
        }
    }

    #[test]
    fn never_panics_on_mutated_images() {
        let good = build_elf64(&[0xf4; 32], 0x10_0000, Some(0x10_0000));
        let mut seed = 0x1234_5678_9abc_def0u64;
        for _ in 0..20_000 {
            let mut m = good.clone();
            for _ in 0..4 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let at = (seed as usize) % m.len();
                m[at] = (seed >> 32) as u8;
            }
            let _ = parse(&m);
        }
    }
}
