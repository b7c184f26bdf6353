//! The control socket: framing, the client end and the daemon's server.

pub mod client;
pub mod server;
pub mod wire;
