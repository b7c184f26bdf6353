//! VXLAN tunnel ports (RFC 7348): a switch port that carries frames to
//! other hosts' switches (or Linux vxlan devices, or hardware VTEPs) inside
//! UDP datagrams, flood-and-learn as Linux does.
//!
//! - [`header`]: the 8-byte VXLAN header, its checks and the overhead;
//! - [`flow_hash`]: the outer UDP source port from the inner flow;
//! - [`vteps`]: which remote VTEP each learned MAC is behind;
//! - [`socket`]: the UDP and raw sockets, `recvmmsg` and `sendmmsg`;
//! - [`decap`]: one received datagram: header checks, VNI demultiplexing,
//!   learning and counting;
//! - [`demux`]: one receiving socket per address and port, shared by the
//!   tunnels of different VNIs;
//! - [`outer`], [`neighbours`], [`xdp_underlay`]: the AF_XDP underlay
//!   (`--underlay-xdp`): outer headers, next-hop MACs and the sockets;
//! - [`port`]: the tunnel as a switch port ([`crate::bridge::port::PortIo`]);
//! - [`manager`]: `tunnel add`, `del` and `list`.

pub mod decap;
pub mod demux;
pub mod flow_hash;
pub mod header;
pub mod manager;
pub mod neighbours;
pub mod outer;
pub mod port;
pub mod socket;
pub mod vteps;
pub mod xdp_underlay;
