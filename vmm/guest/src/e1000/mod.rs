//! The Intel 82540EM (e1000) driver pieces: registers, descriptors and DMA
//! memory, the TX and RX rings, and device bring-up.

pub mod desc;
pub mod nic;
pub mod regs;
pub mod rx;
pub mod tx;
