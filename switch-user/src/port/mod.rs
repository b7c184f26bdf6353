//! The port protocol: the shared-memory layout of a port, its rings, the
//! kick eventfds, the daemon's side of a client port and the client library.

pub mod client;
pub mod eventfd;
pub mod layout;
pub mod region;
pub mod ring;
pub mod shm_port;

pub use client::{Interest, PortClient, PortConfig};
