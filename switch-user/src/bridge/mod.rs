//! The VALE-style bridge: switches, their ports, the forwarding function,
//! the forwarding batch, and the daemon's side of a shared-memory client
//! port.

pub mod forward;
pub mod frame_copy;
pub mod learning;
pub mod lookup;
pub mod port;
pub mod port_security;
pub mod prefetch;
pub mod shm_port;
pub mod switch;
pub mod vlan;
pub mod zeroed_array;
