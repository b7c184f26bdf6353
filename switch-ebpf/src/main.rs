//! The XDP steering program of vswitch's NIC ports.
//!
//! For every frame received on the interface it is attached to:
//! 1. if a pass list holds the frame's EtherType or destination MAC, the frame
//!    goes to the kernel stack (`XDP_PASS`);
//! 2. otherwise it is redirected to the AF_XDP socket sitting at the slot of
//!    its receive queue in the XSKMAP;
//! 3. a queue without a socket gets the configured fallback action (pass or
//!    drop, `XDP_DROP` until the daemon says otherwise).
//!
//! Every outcome is counted per receive queue in a per-CPU array. Map names,
//! configuration slots and the counter layout live in `switch-ebpf-common`.
//! No logging: nothing slows the fast path.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::{Array, HashMap, PerCpuArray, XskMap},
    programs::XdpContext,
};
use switch_ebpf_common::{
    action, config, pass_flags, MacKey, QueueCounters, MAX_PASS_ENTRIES, MAX_QUEUES,
};

/// AF_XDP sockets by receive queue (`switch_ebpf_common::XSK_MAP`).
#[map(name = "XSKS")]
static XSKS: XskMap = XskMap::with_max_entries(MAX_QUEUES, 0);

/// Configuration slots written by the daemon (`switch_ebpf_common::CONFIG_MAP`).
#[map(name = "CONFIG")]
static CONFIG: Array<u32> = Array::with_max_entries(config::LEN, 0);

/// Counters by receive queue; slot `MAX_QUEUES` collects the queues beyond
/// (`switch_ebpf_common::COUNTERS_MAP`).
#[map(name = "COUNTERS")]
static COUNTERS: PerCpuArray<QueueCounters> = PerCpuArray::with_max_entries(MAX_QUEUES + 1, 0);

/// EtherTypes (host byte order) passed to the kernel stack.
#[map(name = "PASS_ETHERTYPES")]
static PASS_ETHERTYPES: HashMap<u16, u8> = HashMap::with_max_entries(MAX_PASS_ENTRIES, 0);

/// Destination MACs passed to the kernel stack.
#[map(name = "PASS_MACS")]
static PASS_MACS: HashMap<MacKey, u8> = HashMap::with_max_entries(MAX_PASS_ENTRIES, 0);

/// Length of the Ethernet header: destination, source, EtherType.
const ETH_HEADER_LEN: usize = 14;

/// The program's entry point (`switch_ebpf_common::PROGRAM_NAME`).
#[xdp]
pub fn switch_steer(ctx: XdpContext) -> u32 {
    let queue = ctx.rx_queue_index();
    let counters = counters_of(queue);

    if matches_pass_list(&ctx) {
        count(counters, |c| c.passed += 1);
        return xdp_action::XDP_PASS;
    }

    match XSKS.redirect(queue, u64::from(no_socket_action())) {
        Ok(verdict) => {
            count(counters, |c| c.redirected += 1);
            verdict
        }
        Err(fallback) => {
            count(counters, |c| {
                c.redirect_failures += 1;
                if fallback == action::PASS {
                    c.passed += 1;
                } else {
                    c.dropped += 1;
                }
            });
            fallback
        }
    }
}

/// The action for frames of a queue without a socket: PASS or DROP.
#[inline(always)]
fn no_socket_action() -> u32 {
    match CONFIG.get(config::NO_SOCKET_ACTION) {
        Some(&action::PASS) => action::PASS,
        _ => action::DROP,
    }
}

/// Whether the frame's EtherType or destination MAC is on a pass list.
/// Frames shorter than an Ethernet header never match.
#[inline(always)]
fn matches_pass_list(ctx: &XdpContext) -> bool {
    let flags = match CONFIG.get(config::PASS_LIST_FLAGS) {
        Some(&flags) if flags != 0 => flags,
        _ => return false,
    };
    let start = ctx.data();
    if start + ETH_HEADER_LEN > ctx.data_end() {
        return false;
    }
    let header = start as *const u8;
    if flags & pass_flags::ETHERTYPES != 0 {
        // SAFETY: the 14 header bytes lie inside the packet (checked above
        // against data_end, which is what the verifier requires too).
        let ethertype = unsafe { u16::from_be_bytes([*header.add(12), *header.add(13)]) };
        if PASS_ETHERTYPES.get_ptr(ethertype).is_some() {
            return true;
        }
    }
    if flags & pass_flags::MACS != 0 {
        // SAFETY: as above; bytes 0..6 are the destination MAC.
        let destination = unsafe {
            [
                *header,
                *header.add(1),
                *header.add(2),
                *header.add(3),
                *header.add(4),
                *header.add(5),
            ]
        };
        if PASS_MACS.get_ptr(MacKey::new(destination)).is_some() {
            return true;
        }
    }
    false
}

/// This CPU's counters for `queue` (queues beyond the map share the last slot).
#[inline(always)]
fn counters_of(queue: u32) -> Option<*mut QueueCounters> {
    COUNTERS.get_ptr_mut(queue.min(MAX_QUEUES))
}

/// Applies `update` to this CPU's counters, if the slot exists.
#[inline(always)]
fn count(counters: Option<*mut QueueCounters>, update: impl FnOnce(&mut QueueCounters)) {
    if let Some(counters) = counters {
        // SAFETY: the pointer comes from a per-CPU array lookup: it is valid
        // for the whole program run and only this CPU touches this copy
        // (XDP runs with preemption disabled).
        update(unsafe { &mut *counters });
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// The kernel requires a GPL-compatible license for some helpers.
#[no_mangle]
#[link_section = "license"]
pub static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
