//! The VMM's network wing: everything between the e1000 model
//! ([`crate::e1000`], free of I/O) and the switch.
//!
//! - [`device`]: the e1000 as the VMM runs it ([`NetDevice`]): the model, its
//!   backend and its DMA behind one mutex, the PCI identity, the moderation
//!   timerfd, and the one decision of who moves frames ([`device`]'s data
//!   path: the threads that touch registers, or the net worker polling the
//!   CSB);
//! - [`worker`]: the net worker's polling policy in CSB mode;
//! - [`dma`]: device DMA into guest RAM;
//! - [`backend`]: the one adapter from the model's `NetBackend` to a port
//!   (a switch port, or the `sink` and `pong` test ports), with its counters;
//! - [`ioevent`]: the KVM ioeventfd that turns the guest's TDT write into a
//!   kick without a userspace exit;
//! - [`offload`]: the hand-over of the CSB data path to the switch daemon
//!   and its return (`--e1000 offload=on`);
//! - [`link`]: the thread that watches the switch daemon and re-opens the
//!   port after a restart, setting the link down and up;
//! - [`register_names`]: register names for the exit accounting;
//! - [`latency_trace`]: per-frame timestamps of test pings and pongs
//!   (`--e1000 trace=N`).

pub mod backend;
pub mod device;
pub mod dma;
pub mod ioevent;
pub mod latency_trace;
pub mod link;
pub mod offload;
pub mod register_names;
pub mod worker;

pub use device::{NetConfig, NetDevice, NetError};
