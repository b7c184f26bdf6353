//! The CSB paravirtual extension (`docs/csb.md`): a Common Status Block, one
//! 4 KiB page of guest memory through which the driver and the device
//! exchange ring indices and "need kick" flags instead of register writes
//! and interrupts.
//!
//! The device advertises the extension with PCI subsystem id
//! [`SUBSYSTEM_ID`]. The driver writes the block's address to [`CSBAH`],
//! then [`CSBAL`], whose write (re)maps it; the address must be [`ALIGN`]
//! aligned and the whole page in guest RAM, and 0 turns the extension off.
//! The block is little-endian u32 fields at the offsets of [`field`]: the
//! guest writes the first cache line, the device the second (from
//! [`HOST_HALF`] on). Flags are written as [`FLAG_SET`] or [`FLAG_CLEAR`]
//! and read with [`is_set`] (any non-zero value is set); unused fields hold
//! [`NONE`] or 0. [`FIELDS`] lists every field with its role, and a unit
//! test checks it against the field table of `docs/csb.md` both ways.

/// PCI subsystem id that advertises the extension.
pub const SUBSYSTEM_ID: u16 = 0x1101;
/// PCI subsystem vendor id that goes with [`SUBSYSTEM_ID`].
pub const SUBSYSTEM_VENDOR_ID: u16 = crate::pci::VENDOR_ID;
/// BAR0 offset of CSBAL: the block's address, low 32 bits; writing it
/// (re)maps the block at CSBAH:CSBAL.
pub const CSBAL: u32 = 0x2830;
/// BAR0 offset of CSBAH: the block's address, high 32 bits (written first).
pub const CSBAH: u32 = 0x2834;
/// Bytes in the block: one page.
pub const SIZE: usize = 4096;
/// Required alignment of the block's address (a cache line).
pub const ALIGN: usize = 64;
/// Offset of the host-written half (the second cache line); the guest
/// writes the fields before it.
pub const HOST_HALF: usize = 64;
/// The "none" value of unused index fields.
pub const NONE: u32 = u32::MAX;
/// The value a side stores to set a flag.
pub const FLAG_SET: u32 = 1;
/// The value a side stores to clear a flag.
pub const FLAG_CLEAR: u32 = 0;

/// Whether a flag field holding `value` is set: any non-zero value is (the
/// other side's values are untrusted, so no other value is an error).
pub const fn is_set(value: u32) -> bool {
    value != 0
}

/// What a field holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A ring index, validated against the ring size by the reader.
    Index,
    /// A flag ([`is_set`]).
    Flag,
    /// Unused by this protocol (kept for layout compatibility).
    Unused,
}

/// Which side writes a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writer {
    /// The guest driver (offsets below [`HOST_HALF`]).
    Guest,
    /// The device (offsets from [`HOST_HALF`] on).
    Host,
}

/// One field of the block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// The name of its [`field`] constant (`docs/csb.md` writes it in lower
    /// case).
    pub name: &'static str,
    /// Byte offset in the block.
    pub offset: usize,
    /// What it holds.
    pub kind: Kind,
}

impl Field {
    /// Which side writes it.
    pub const fn writer(&self) -> Writer {
        if self.offset < HOST_HALF {
            Writer::Guest
        } else {
            Writer::Host
        }
    }
}

/// Defines the offsets in [`field`] and the [`FIELDS`] table from one list,
/// so the two cannot disagree.
macro_rules! fields {
    ($($(#[doc = $doc:literal])+ $name:ident = $offset:literal, $kind:ident;)+) => {
        /// Byte offsets of the fields in the block (each a little-endian u32).
        pub mod field {
            $($(#[doc = $doc])+ pub const $name: usize = $offset;)+
        }

        /// Every field of the block, in layout order.
        pub const FIELDS: &[Field] = &[$(Field {
            name: stringify!($name),
            offset: field::$name,
            kind: Kind::$kind,
        }),+];
    };
}

fields! {
    /// The TDT the guest would have written (its TX producer index).
    GUEST_TDT = 0, Index;
    /// The guest sleeps waiting for TX completions: interrupt it on TX
    /// progress.
    GUEST_NEED_TXKICK = 4, Flag;
    /// The guest sleeps waiting for RX frames: interrupt it when frames
    /// arrive.
    GUEST_NEED_RXKICK = 8, Flag;
    /// Set while the guest driver uses the block.
    GUEST_CSB_ON = 12, Flag;
    /// The RDT the guest would have written (RX buffers returned).
    GUEST_RDT = 16, Index;
    /// Unused ([`NONE`](super::NONE)).
    GUEST_TXKICK_AT = 20, Unused;
    /// Unused (0).
    GUEST_USE_MSIX = 24, Unused;
    /// TX descriptors the device has consumed (its TDH).
    HOST_TDH = 64, Index;
    /// The device's TX worker sleeps: the guest must write the TDT register
    /// to wake it.
    HOST_NEED_TXKICK = 68, Flag;
    /// Unused.
    HOST_TXCYCLES_LIM = 72, Unused;
    /// Unused.
    HOST_TXCYCLES = 76, Unused;
    /// The device's RDH: the RX descriptors before it are filled.
    HOST_RDH = 80, Index;
    /// The device has frames but no RX buffers: the guest must write the RDT
    /// register after returning buffers.
    HOST_NEED_RXKICK = 84, Flag;
    /// Unused.
    HOST_ISR = 88, Unused;
    /// Unused ([`NONE`](super::NONE)).
    HOST_RXKICK_AT = 92, Unused;
    /// Set while the switch walks the rings (an offloaded data path): frames
    /// reach the RX ring and leave the TX ring with no VMM thread in
    /// between, so polling the ring pays and poll-port exits do nothing.
    HOST_OFFLOADED = 96, Flag;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification this module must agree with.
    const DOC: &str = include_str!("../../docs/csb.md");

    /// A row of the document's field table.
    #[derive(Debug)]
    struct Row {
        offset: usize,
        name: String,
        meaning: String,
        writer: Writer,
    }

    /// The rows of the layout table: `| offset | name | meaning |` lines
    /// whose first cell is a number, under the heading of their half.
    fn doc_rows() -> Vec<Row> {
        let mut writer = None;
        let mut rows = Vec::new();
        for line in DOC.lines() {
            if line.starts_with("Guest-written half") {
                writer = Some(Writer::Guest);
            } else if line.starts_with("Host-written half") {
                writer = Some(Writer::Host);
            }
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let [_, offset, name, meaning, ..] = cells[..] else {
                continue;
            };
            let Ok(offset) = offset.parse() else {
                continue;
            };
            rows.push(Row {
                offset,
                name: name.to_string(),
                meaning: meaning.to_string(),
                writer: writer.expect("a table row before the half headings"),
            });
        }
        rows
    }

    #[test]
    fn every_documented_field_matches_a_constant() {
        let rows = doc_rows();
        assert!(!rows.is_empty(), "no field table found in docs/csb.md");
        for row in &rows {
            let field = FIELDS
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(&row.name))
                .unwrap_or_else(|| panic!("docs/csb.md field {row:?} has no constant"));
            assert_eq!(field.offset, row.offset, "offset of {}", row.name);
            assert_eq!(field.writer(), row.writer, "half of {}", row.name);
            assert_eq!(
                field.kind == Kind::Unused,
                row.meaning.starts_with("unused"),
                "{} is unused in exactly one of the crate and the document",
                row.name
            );
        }
    }

    #[test]
    fn every_constant_is_documented_once() {
        let rows = doc_rows();
        for field in FIELDS {
            let count = rows
                .iter()
                .filter(|row| field.name.eq_ignore_ascii_case(&row.name))
                .count();
            assert_eq!(count, 1, "{} in docs/csb.md's field table", field.name);
        }
    }

    #[test]
    fn documented_registers_ids_and_values_match() {
        for fact in [
            format!("subsystem device id {SUBSYSTEM_ID:#x}"),
            format!("(subsystem vendor {SUBSYSTEM_VENDOR_ID:#x})"),
            format!("CSBAL {CSBAL:#07x}, CSBAH {CSBAH:#07x}"),
            format!("must be {ALIGN}-byte aligned"),
            format!("the whole {} KiB page", SIZE / 1024),
            format!("(second cache line, offset {HOST_HALF})"),
            format!("\"None\" is {NONE:#X}"),
            "flags are read as `!= 0`".to_string(),
        ] {
            assert!(DOC.contains(&fact), "docs/csb.md does not say {fact:?}");
        }
        assert!(is_set(FLAG_SET) && !is_set(FLAG_CLEAR) && is_set(0x8000_0000));
    }

    #[test]
    fn layout_is_one_u32_per_field_inside_the_page() {
        for (i, field) in FIELDS.iter().enumerate() {
            assert_eq!(field.offset % 4, 0, "{}", field.name);
            assert!(field.offset + 4 <= HOST_HALF * 2, "{}", field.name);
            if let Some(next) = FIELDS.get(i + 1) {
                assert!(
                    field.offset < next.offset,
                    "{} before {}",
                    field.name,
                    next.name
                );
            }
        }
        const { assert!(HOST_HALF.is_multiple_of(ALIGN) && SIZE.is_multiple_of(ALIGN)) };
        const { assert!(CSBAH == CSBAL + 4) };
    }
}
