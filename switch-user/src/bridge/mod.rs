//! The VALE-style bridge: switches, their ports, the forwarding function and
//! the forwarding batch.

pub mod forward;
pub mod learning;
pub mod lookup;
pub mod port;
pub mod switch;
