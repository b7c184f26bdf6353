//! The Intel 82540EM (e1000) driver pieces: registers, descriptors and DMA
//! memory, the TX and RX rings, device bring-up, and the CSB paravirtual
//! extension's shared block.

pub mod csb;
pub mod desc;
pub mod nic;
pub mod regs;
pub mod rx;
pub mod tx;
