//! vswitch: a userspace switch with VALE semantics.
//!
//! - [`bridge`]: switches, ports, the learning table and the forwarding batch;
//! - [`engine`]: the forwarding threads;
//! - [`port`]: the port protocol (shared-memory layout, rings, kicks) and the
//!   client library;
//! - [`protocol`] and [`control`]: the control socket;
//! - [`registry`] and [`daemon`]: the daemon's state and main loop;
//! - [`pktgen`]: the packet generator behind `vswitch pktgen`;
//! - `nic` (feature `nic`): NIC ports over AF_XDP and the host port.

pub mod bridge;
pub mod clock;
pub mod control;
pub mod counters;
pub mod daemon;
pub mod engine;
pub mod epoll;
pub mod mac;
pub mod names;
#[cfg(feature = "nic")]
pub mod nic;
pub mod pktgen;
pub mod port;
pub mod protocol;
pub mod registry;
