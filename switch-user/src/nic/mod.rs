//! NIC ports: a network interface attached to a switch through AF_XDP
//! sockets steered by the XDP program, and the host stack's port (a TAP).

pub mod checksum;
pub mod frame_plan;
pub mod host_port;
pub mod manager;
pub mod nic_port;
pub mod staging;
