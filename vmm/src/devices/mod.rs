//! The small platform devices, one file each: the COM1 UART, the exit and
//! idle ports, the poll port, and PCI configuration space.

pub mod exit_port;
pub mod idle_port;
pub mod pci;
pub mod poll_port;
pub mod serial;
