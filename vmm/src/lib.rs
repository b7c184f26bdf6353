//! The VMM: a KVM virtual machine with one vCPU, PVH boot, a few platform
//! devices, and an emulated Intel e1000 whose backend is a vswitch port.
//!
//! - [`e1000`]: the device model, free of I/O (the `e1000-model` crate,
//!   shared with the switch daemon; registers, EEPROM, PHY, TX,
//!   RX, interrupts, moderation, CSB, statistics);
//! - [`net`]: the network wing between the model and the switch (the device
//!   as the VMM runs it, the net worker, DMA, the port backend);
//! - [`vm`], [`vcpu`], [`memory`], [`boot`], [`platform`], [`bus`],
//!   [`devices`], [`irq`]: the machine;
//! - [`io_thread`], [`timer`], [`stop_signal`], [`stats`], [`stats_file`]:
//!   threads, timers and accounting;
//! - [`metrics`]: the counters in the Prometheus text format, served by
//!   `--metrics-listen`;
//! - [`sandbox`]: per-thread seccomp filters and the drop to an
//!   unprivileged user, entered before the guest runs.
//!
//! Threads: the vCPU thread runs the guest and dispatches its port and MMIO
//! exits to the devices; the I/O thread waits on the switch port's kicks and
//! the e1000 moderation timer, and in CSB mode is the net worker that polls
//! TX and RX ([`net::worker`]). The e1000 model is shared between them behind
//! one mutex held for one batch at a time.

pub mod boot;
pub mod bus;
pub mod devices;
pub use e1000_model as e1000;
pub mod io_thread;
pub mod irq;
pub mod memory;
pub mod metrics;
pub mod net;
pub mod platform;
pub mod sandbox;
pub mod stats;
pub mod stats_file;
pub mod stop_signal;
pub mod timer;
pub mod vcpu;
pub mod vm;
