//! PCI identity of the 82540EM (manual chapter 4): what a driver scans for,
//! and what the device's EEPROM loads into configuration space.

/// PCI vendor id of Intel.
pub const VENDOR_ID: u16 = 0x8086;
/// PCI device id of the 82540EM (desktop, copper).
pub const DEVICE_ID: u16 = 0x100E;
/// PCI subsystem id of the PRO/1000 MT Desktop adapter (a stock device; the
/// CSB extension advertises itself with [`crate::csb::SUBSYSTEM_ID`]).
pub const SUBSYSTEM_ID: u16 = 0x001E;
/// PCI subsystem vendor id (Intel, with either subsystem id).
pub const SUBSYSTEM_VENDOR_ID: u16 = VENDOR_ID;
