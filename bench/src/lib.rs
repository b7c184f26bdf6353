//! The benchmarks' reusable part: a line-rate traffic source and a counting
//! sink built on eBPF, for `bench nic` and for tests that need a NIC-like
//! load on a veth.
//!
//! - [`line_source::LineSource`]: test frames of one size, MAC pair and flow
//!   spread into an interface, through live XDP frames
//!   ([`live_source`], `BPF_PROG_TEST_RUN`) or, where the kernel refuses
//!   those, a tc clone fan-out ([`clone_source`]);
//! - [`xdp_sink::XdpSink`]: a native XDP program counting every frame (drop
//!   or pass).
#![deny(missing_docs)]

pub mod bpf_syscall;
pub mod clone_source;
pub mod line_source;
pub mod live_source;
pub mod xdp_sink;
