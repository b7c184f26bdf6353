//! The contract between the emulated Intel 82540EM (e1000) and its driver:
//! every number both sides must agree on, in one place.
//!
//! Two programs use it:
//! - the device model (`e1000-model/`, used by the VMM and the switch
//!   daemon), which decodes what the guest writes with these offsets and
//!   bits and writes back descriptors, EEPROM words, PHY registers and CSB
//!   fields laid out as here;
//! - the guest image's driver (`vmm/guest/src/e1000/`, a separate no_std
//!   build), which programs the device with the same constants.
//!
//! So a change here changes both sides at once, and neither can drift from
//! the other. The crate is `no_std`, has no dependencies and holds only
//! constants (and a few `const fn` helpers that compute offsets); the
//! behaviour of the device stays in the model and the driver's policy (which
//! causes to enable, ring sizes, moderation values) stays in the driver.
//!
//! Sources: the Intel *PCI/PCI-X Family of Gigabit Ethernet Controllers
//! Software Developer's Manual* (8254x, order number 317453), for the
//! 82540EM:
//! - chapter 3, receive and transmit descriptors: the legacy RX descriptor,
//!   the legacy TX descriptor and the extended TCP/IP context and data
//!   descriptors ([`desc`]), interrupt moderation (3.4);
//! - chapter 4, PCI: vendor, device and subsystem ids ([`pci`]);
//! - chapter 5, the EEPROM: its word map, the checksum word (the 64 words sum
//!   to 0xBABA) and the Microwire protocol ([`eeprom`]);
//! - chapter 13, the registers: BAR0 offsets and bits ([`regs`]), the
//!   statistics registers ([`stats`]) and the internal PHY's registers behind
//!   MDIC (a Marvell 88E1011-compatible PHY, [`phy`]).
//!
//! The paravirtual extension ([`csb`]) is not in the manual: it follows the
//! original e1000 paravirtualization (netmap's `paravirt.h`, the QEMU
//! e1000-paravirt fork, FreeBSD `if_lem`) and is specified in `docs/csb.md`;
//! a unit test of this crate checks that document's field table against
//! [`csb::FIELDS`] in both directions.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod csb;
pub mod desc;
pub mod eeprom;
pub mod pci;
pub mod phy;
pub mod regs;
pub mod stats;
