//! PCI: a configuration-space model of bus 0 (host bridge and the e1000
//! function) reached through configuration mechanism #1 at 0xCF8/0xCFC.

pub mod config;
pub mod host;

pub use config::{BarKind, BarMapping, BarSpec, PciFunction, PciHeader};
pub use host::{ConfigWrite, PciConfigIo, PciSlot, CONFIG_ADDRESS_PORT, CONFIG_PORTS_LEN};
