//! Fuzz harnesses for the surfaces that take untrusted input: each module
//! decodes a fuzz input into a sequence of operations on the real code and
//! checks invariants after every one. The `fuzz_targets/` binaries are thin
//! libFuzzer wrappers around each module's `run`; `seeds` builds the
//! checked-in seed inputs in the same encoding.
//!
//! - [`e1000`]: the e1000 model over guest RAM with unmapped holes;
//! - [`csb`]: the e1000 as the VMM runs it, with the CSB rewritten between
//!   (and during) the steps of the device and of the net worker;
//! - [`offload`]: the e1000 data path as the switch daemon runs it for an
//!   offloaded VM port, from a hostile hand-over back to the device;
//! - [`port_rings`]: shared-memory ports and a fake NIC port forwarding
//!   through the real bridge while the clients rewrite their rings;
//! - [`control`]: the daemon's control socket over a socket pair, and a
//!   hostile daemon's answers and regions as a client sees them;
//! - [`pvh_elf`]: the PVH/ELF kernel-image loader;
//! - [`frames`]: arbitrary frames through a VLAN-aware switch of access,
//!   trunk and untagged ports;
//! - [`nic_checksum`]: frames from a NIC's peer into the NIC port's
//!   software checksum completion;
//! - [`vxlan`]: datagrams from remote hosts into a VXLAN tunnel's receive
//!   step (header checks, VNI demultiplexing, VTEP learning);
//! - [`vxlan_outer`]: frames from the underlay into an AF_XDP tunnel's
//!   outer Ethernet/IPv4/UDP header check.

pub mod control;
pub mod csb;
pub mod e1000;
pub mod frames;
pub mod guest_memory;
pub mod input;
pub mod nic_checksum;
pub mod offload;
pub mod port_rings;
pub mod pvh_elf;
pub mod seeds;
pub mod vxlan;
pub mod vxlan_outer;
