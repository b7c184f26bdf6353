//! The VMM: a KVM virtual machine with one vCPU, PVH boot, a few platform
//! devices, and an emulated Intel e1000 whose backend is a vswitch port.
//!
//! Threads: the vCPU thread runs the guest and dispatches its port and MMIO
//! exits to the devices; the I/O thread waits on the switch port's kicks and
//! the e1000 moderation timer, and in CSB mode is the net worker that polls
//! TX and RX ([`net_worker`]). The e1000 model is shared between them behind
//! one mutex held for one batch at a time.

pub mod backend;
pub mod boot;
pub mod bus;
pub mod devices;
pub mod dma;
pub mod e1000;
pub mod io_thread;
pub mod ioevent;
pub mod irq;
pub mod memory;
pub mod net;
pub mod net_worker;
pub mod platform;
pub mod register_names;
pub mod stats;
pub mod stop_signal;
pub mod timer;
pub mod vcpu;
pub mod vm;
