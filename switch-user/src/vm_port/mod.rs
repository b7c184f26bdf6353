//! VM ports whose e1000 data path the VMM handed to the daemon
//! (`offload_port`): the guest's memory ([`guest_memory`]), the
//! descriptors of the hand-over ([`handover_fds`]) and the port I/O that
//! walks the guest's rings ([`offloaded_port`]).

pub mod guest_memory;
pub mod handover_fds;
pub mod offloaded_port;

pub use guest_memory::{GuestMemory, GuestMemoryError};
pub use handover_fds::{HandoverFds, HandoverFdsError};
pub use offloaded_port::{OffloadError, OffloadedPort};

#[cfg(test)]
mod control_tests;
#[cfg(test)]
pub(crate) mod tests;
