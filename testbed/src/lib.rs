//! The test bed: what end-to-end tests and benchmarks need to run real things
//! safely on a shared machine.
//!
//! - [`Netns`]: a network namespace with a unique name, deleted on drop (also
//!   when the test panics), with helpers for veth pairs, bridges, addresses,
//!   MACs and MTUs ([`link`]), XDP and promiscuity checks, ping, and
//!   [`Netns::run_in`] to run code inside it; [`sweep_stale`] removes
//!   leftovers of processes that died.
//! - [`Proc`]: a child process that is ended by its PID on drop (SIGTERM, a
//!   bounded wait, then SIGKILL) and always reaped; [`run_bounded`] runs a
//!   command to completion within a time limit.
//! - [`Daemon`]: a `vswitch daemon` on a socket of its own (optionally in a
//!   namespace), and the CLI pointed at it.
//! - [`Vm`]: a guest under the project's `vmm` or under QEMU, with its serial
//!   console in a file and a [`VmOutcome`] when it ends.
//! - [`PacketSocket`]: a raw AF_PACKET socket bound to one interface.
//! - [`bin_dir`], [`guest_image`]: where the binaries and the guest image are;
//!   [`check_guest_image`] refuses an image older than the guest's sources
//!   (every [`Vm`] start checks).
//! - [`wait_until`] / [`wait_for`]: bounded polling.
//! - [`unique_temp_dir`]: a fresh directory removed on drop.
//! - [`procfs`]: open fd count and RSS of a process, for leak tests.
//! - [`pin_to_cpu`]: pins the calling thread.
//! - [`skip_or_fail`]: skips a test whose prerequisite is missing, except
//!   in CI (`CI=true`), where it fails.
//!
//! Everything that changes the system is scoped to a namespace this crate
//! created, or to a link this crate created and removes again. The crate
//! depends on no other crate of the project: it starts them as processes.

mod binaries;
mod cpu;
mod daemon;
mod error;
mod guest_staleness;
pub mod link;
mod netns;
pub mod packet_socket;
mod process;
pub mod procfs;
mod run;
mod skip;
mod tempdir;
mod vm;
mod wait;

pub use binaries::{bin_dir, check_guest_image, guest_image, have_kvm, vmm_bin, vswitch_bin};
pub use cpu::pin_to_cpu;
pub use daemon::{Daemon, DaemonBuilder, SOCKET_NAME};
pub use error::Error;
pub use link::{Mac, Queues, VethPair};
pub use netns::{sweep_stale, Netns, DEFAULT_PREFIX};
pub use packet_socket::{PacketSocket, Protocol};
pub use process::{Capture, Proc};
pub use run::run_bounded;
pub use skip::{in_ci, skip_or_fail};
pub use tempdir::{unique_temp_dir, TempDir};
pub use vm::{Hypervisor, Vm, VmBuilder, VmExit, VmOutcome, QEMU_BIN};
pub use wait::{wait_for, wait_until, WaitTimeout};

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
