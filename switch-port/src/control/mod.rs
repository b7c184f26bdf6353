//! The client end of the control socket: message framing with file
//! descriptors ([`wire`]) and connections to the daemon ([`client`]).

pub mod client;
pub mod wire;
