//! NIC ports over AF_XDP for vswitch.
//!
//! - [`XdpSteering`] loads the XDP steering program (switch-ebpf, embedded at
//!   build time, see [`program`]) with aya and attaches it to an interface
//!   through a bpf_link this process owns: frames go to the AF_XDP socket of
//!   their receive queue, a pass list goes to the kernel stack, and per-queue
//!   counters say what happened. The program's rare events (aya-log,
//!   target `xdp`) reach this process's `log` logger.
//! - [`XskQueue`] is one AF_XDP socket on one (interface, queue) with its
//!   UMEM, behind a safe batch API (`receive`, `transmit`, `fd`, `stats`).
//! - [`busy_poll`] turns on busy polling of a socket and drives it.
//! - [`iface`] has the interface helpers (queues, MTU, promiscuous mode) and
//!   [`Tap`] the host port's TAP.
//!
//! Everything acts in the calling thread's network namespace and needs
//! CAP_NET_ADMIN, CAP_BPF and CAP_NET_RAW (root in practice).

#![deny(missing_docs)]

pub mod busy_poll;
mod gather;
pub mod iface;
mod log_reader;
mod maps;
pub mod program;
mod sockopt;
mod steering;
mod tap;
mod umem_rings;
mod xsk;

pub use iface::{IfaceError, Promiscuous};
pub use log_reader::LogReaderError;
pub use steering::{
    AttachMode, AttachPolicy, NoSocketAction, PassList, SteeringConfig, SteeringError, XdpSteering,
};
pub use switch_ebpf_common::{QueueCounters, MAX_QUEUES};
pub use tap::{Tap, TapError, TapStats};
pub use xsk::{XskConfig, XskError, XskQueue, XskStats, MAX_PIECES, XDP_HEADROOM};
