//! vswitch: a userspace switch with VALE semantics. This crate is the
//! daemon and its tools; what a client needs (the port's shared-memory
//! layout, the port client, the control protocol, names and MAC addresses)
//! is the `switch_port` crate, which this one builds on.
//!
//! - [`bridge`]: switches, ports, the learning table, the forwarding batch
//!   and the daemon's side of a client port ([`bridge::shm_port`]);
//! - [`engine`]: the forwarding threads, with [`kick_watchdog`] (a client
//!   cannot hold one in a kick);
//! - [`control`]: the control socket's server, with [`peer`] (who connected),
//!   [`access`] (what they may do), [`admission`] (connection caps),
//!   [`deadlines`] (the control timeout) and [`users`] (names);
//! - [`registry`] and [`daemon`]: the daemon's state and main loop, with
//!   [`quota`] (per-user port limits);
//! - [`state`]: the saved configuration (`--state`), restored at start;
//! - [`counters`]: per-port counters, reported as
//!   `switch_port::protocol::CounterSnapshot`;
//! - [`capture`]: captures and mirrors of ports' traffic;
//! - [`metrics`]: the counters in the Prometheus text format, and the
//!   `--metrics-listen` endpoint;
//! - [`nic`]: NIC ports over AF_XDP and the host port;
//! - [`tunnel`]: VXLAN tunnel ports;
//! - [`pktgen`]: the packet generator behind `vswitch pktgen`;
//! - [`sd_notify`]: readiness notification to systemd;
//! - [`vm_port`]: VM ports whose e1000 rings the daemon walks (offload).

pub mod access;
pub mod admission;
pub mod bridge;
pub mod capture;
pub mod clock;
pub mod control;
pub mod counters;
pub mod daemon;
pub mod deadlines;
pub mod engine;
pub mod epoll;
pub mod kick_watchdog;
pub mod metrics;
pub mod nic;
pub mod peer;
pub mod pktgen;
pub mod quota;
pub mod registry;
pub mod sd_notify;
pub mod state;
pub mod tunnel;
pub mod users;
pub mod vm_port;
