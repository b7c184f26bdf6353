//! What the XDP steering program (`switch-ebpf`) and its loader (`switch-xdp`)
//! must agree on: the names of the maps, the slots of the configuration
//! array, the layout of the per-queue counters and the pass-list keys.
//!
//! `no_std` and dependency-free: it is compiled for `bpfel-unknown-none` by
//! Debian's rustc and for the host by rustup's.
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]

/// Name of the `XSKMAP`: AF_XDP socket fds indexed by receive queue.
pub const XSK_MAP: &str = "XSKS";
/// Name of the configuration array (`u32` values, see [`config`]).
pub const CONFIG_MAP: &str = "CONFIG";
/// Name of the per-CPU array of [`QueueCounters`], indexed by receive queue.
pub const COUNTERS_MAP: &str = "COUNTERS";
/// Name of the hash map of EtherTypes passed to the kernel stack
/// (key: EtherType in host byte order, value: [`PASS`]).
pub const PASS_ETHERTYPES_MAP: &str = "PASS_ETHERTYPES";
/// Name of the hash map of destination MACs passed to the kernel stack
/// (key: [`MacKey`], value: [`PASS`]).
pub const PASS_MACS_MAP: &str = "PASS_MACS";
/// The `log` target of the program's aya-log lines.
pub const LOG_TARGET: &str = "xdp";
/// Name of the XDP program inside the object file.
pub const PROGRAM_NAME: &str = "switch_steer";
/// Name of the same program loaded with multi-buffer support (section
/// `xdp.frags`, `BPF_F_XDP_HAS_FRAGS`), for MTUs beyond one page.
pub const PROGRAM_FRAGS_NAME: &str = "switch_steer_frags";

/// Number of receive queues the maps cover (XSKMAP and counters).
pub const MAX_QUEUES: u32 = 256;
/// Capacity of each pass list.
pub const MAX_PASS_ENTRIES: u32 = 64;
/// The value stored for every pass-list entry.
pub const PASS: u8 = 1;

/// Slots of the configuration array (`CONFIG_MAP`, `u32` values).
pub mod config {
    /// The XDP action for a frame whose receive queue has no socket:
    /// [`super::action::PASS`] or [`super::action::DROP`] (default 0 = DROP).
    pub const NO_SOCKET_ACTION: u32 = 0;
    /// Which pass lists hold entries ([`super::pass_flags`]), so that the
    /// fast path skips hash lookups while the lists are empty.
    pub const PASS_LIST_FLAGS: u32 = 1;
    /// UDP steering (a tunnel's underlay): the local IPv4 address as its
    /// four wire bytes read as a little-endian `u32` (what the program
    /// loads from the packet); 0 = off. When on, only IPv4 UDP datagrams
    /// without options or fragmentation to this address and
    /// [`UDP_STEER_PORT`] are redirected to the sockets; every other frame
    /// goes to the kernel stack, and the pass lists are not consulted.
    pub const UDP_STEER_ADDR: u32 = 2;
    /// The UDP destination port of UDP steering, in host byte order.
    pub const UDP_STEER_PORT: u32 = 3;
    /// Number of slots.
    pub const LEN: u32 = 4;
}

/// Bits of the [`config::PASS_LIST_FLAGS`] slot.
pub mod pass_flags {
    /// The EtherType pass list is not empty.
    pub const ETHERTYPES: u32 = 1 << 0;
    /// The destination MAC pass list is not empty.
    pub const MACS: u32 = 1 << 1;
}

/// The XDP actions the configuration may name (values of the kernel's
/// `enum xdp_action`).
pub mod action {
    /// `XDP_DROP`.
    pub const DROP: u32 = 1;
    /// `XDP_PASS`.
    pub const PASS: u32 = 2;
}

/// What the program did with the frames of one receive queue, on one CPU.
///
/// Userspace sums the per-CPU copies.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueCounters {
    /// Frames handed to the XSKMAP redirect (a socket sat at the queue's slot).
    pub redirected: u64,
    /// Frames passed to the kernel stack (pass list, or no socket with the
    /// PASS fallback).
    pub passed: u64,
    /// Frames dropped (no socket with the DROP fallback).
    pub dropped: u64,
    /// Redirects that found no socket at the queue's slot (or a queue beyond
    /// [`MAX_QUEUES`]); each is also counted as passed or dropped.
    pub redirect_failures: u64,
}

impl QueueCounters {
    /// Adds `other` field by field (wrapping, as the kernel's counters do).
    pub fn accumulate(&mut self, other: &QueueCounters) {
        self.redirected = self.redirected.wrapping_add(other.redirected);
        self.passed = self.passed.wrapping_add(other.passed);
        self.dropped = self.dropped.wrapping_add(other.dropped);
        self.redirect_failures = self.redirect_failures.wrapping_add(other.redirect_failures);
    }
}

/// Key of the destination MAC pass list: the six address bytes, padded to
/// eight so that both sides agree on the key size.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MacKey {
    /// The MAC address, in wire order.
    pub addr: [u8; 6],
    /// Always zero.
    pub pad: [u8; 2],
}

impl MacKey {
    /// The key for `addr`.
    pub const fn new(addr: [u8; 6]) -> Self {
        Self { addr, pad: [0; 2] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_accumulate_field_by_field() {
        let mut sum = QueueCounters::default();
        let one = QueueCounters {
            redirected: 1,
            passed: 2,
            dropped: 3,
            redirect_failures: 4,
        };
        sum.accumulate(&one);
        sum.accumulate(&one);
        assert_eq!(
            sum,
            QueueCounters {
                redirected: 2,
                passed: 4,
                dropped: 6,
                redirect_failures: 8
            }
        );
    }

    #[test]
    fn layouts_are_what_the_program_expects() {
        assert_eq!(core::mem::size_of::<QueueCounters>(), 32);
        assert_eq!(core::mem::size_of::<MacKey>(), 8);
    }
}
