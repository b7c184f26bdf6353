//! The test bed: what end-to-end tests and benchmarks need to run real things
//! safely on a shared machine.
//!
//! - [`Netns`]: a network namespace with a unique name, deleted on drop (also
//!   when the test panics), with helpers for veth pairs, bridges, addresses,
//!   MACs and MTUs ([`link`]), and [`sweep_stale`] for leftovers of processes
//!   that died.
//! - [`Proc`]: a child process that is ended by its PID on drop (SIGTERM, a
//!   bounded wait, then SIGKILL) and always reaped.
//! - [`wait_until`] / [`wait_for`]: bounded polling.
//! - [`unique_temp_dir`]: a fresh directory removed on drop.
//! - [`procfs`]: open fd count and RSS of a process, for leak tests.
//!
//! Everything that changes the system is scoped to a namespace this crate
//! created, or to a link this crate created and removes again.

mod error;
pub mod link;
mod netns;
mod process;
pub mod procfs;
mod tempdir;
mod wait;

pub use error::Error;
pub use link::{Mac, Queues, VethPair};
pub use netns::{sweep_stale, Netns, DEFAULT_PREFIX};
pub use process::{Capture, Proc};
pub use tempdir::{unique_temp_dir, TempDir};
pub use wait::{wait_for, wait_until, WaitTimeout};

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
