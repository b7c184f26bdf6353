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
//! In UDP steering mode (a VXLAN tunnel's AF_XDP underlay, configured by
//! `config::UDP_STEER_ADDR` and `UDP_STEER_PORT`) only IPv4 UDP datagrams
//! to that address and port are redirected; everything else (ARP, ICMP,
//! the host's other traffic) goes to the kernel stack.
//!
//! Two entry points share the body: `switch_steer` and, for MTUs beyond one
//! page (multi-buffer frames), `switch_steer_frags`.
//!
//! Every outcome is counted per receive queue in a per-CPU array. Map names,
//! configuration slots and the counter layout live in `switch-ebpf-common`.
//!
//! Rare events are logged through aya-log (target `xdp`), at most once a
//! second per kind and CPU with the number of events left out since: a frame
//! for a queue without a socket or beyond the XSKMAP (warn) and, when the
//! daemon logs at debug level, a pass-list hit (debug). The redirect path
//! logs nothing and reads nothing more; at the default level a pass-list hit
//! pays one read of the (load-time constant) log level.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action,
    helpers::bpf_ktime_get_ns,
    macros::{map, xdp},
    maps::{Array, HashMap, PerCpuArray, XskMap},
    programs::XdpContext,
};
use aya_log_ebpf::{
    debug,
    macro_support::{level_enabled, Level},
    warn,
};
use switch_ebpf_common::{
    action, config, pass_flags, MacKey, QueueCounters, LOG_TARGET, MAX_PASS_ENTRIES, MAX_QUEUES,
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

/// When one kind of event was last logged on this CPU, and how many events
/// of that kind were left out since.
#[repr(C)]
struct LogState {
    last_ns: u64,
    suppressed: u64,
}

/// The kinds of logged events (slots of `LOG_STATE`).
mod log_kind {
    /// A frame for a queue whose XSKMAP slot is empty.
    pub const NO_SOCKET: u32 = 0;
    /// A frame for a queue beyond the XSKMAP: the redirect cannot succeed.
    pub const BEYOND_MAP: u32 = 1;
    /// A frame passed to the kernel stack by the pass list.
    pub const PASS_LIST: u32 = 2;
    /// Number of kinds.
    pub const LEN: u32 = 3;
}

/// Rate limit of the log lines: per kind and CPU.
#[map(name = "LOG_STATE")]
static LOG_STATE: PerCpuArray<LogState> = PerCpuArray::with_max_entries(log_kind::LEN, 0);

/// At most one line per kind and CPU in this many nanoseconds.
const LOG_INTERVAL_NS: u64 = 1_000_000_000;

/// Length of the Ethernet header: destination, source, EtherType.
const ETH_HEADER_LEN: usize = 14;

/// The program's entry point (`switch_ebpf_common::PROGRAM_NAME`).
#[xdp]
pub fn switch_steer(ctx: XdpContext) -> u32 {
    steer(ctx)
}

/// The same program for multi-buffer frames (`xdp.frags`,
/// `switch_ebpf_common::PROGRAM_FRAGS_NAME`): loaded when the MTU exceeds
/// one page. `data..data_end` then covers the first buffer only; the
/// program reads the 14 header bytes and nothing else, checked against
/// `data_end` (a frame whose first buffer is shorter never matches the pass
/// list), and the redirect hands every buffer to the socket.
#[xdp(frags)]
pub fn switch_steer_frags(ctx: XdpContext) -> u32 {
    steer(ctx)
}

/// Steers one frame (both entry points).
#[inline(always)]
fn steer(ctx: XdpContext) -> u32 {
    let queue = ctx.rx_queue_index();
    let counters = counters_of(queue);

    match udp_steering(&ctx) {
        UdpSteering::Off => {}
        UdpSteering::Other => {
            count(counters, |c| c.passed += 1);
            return xdp_action::XDP_PASS;
        }
        UdpSteering::Ours => return redirect(&ctx, queue, counters),
    }

    if matches_pass_list(&ctx) {
        count(counters, |c| c.passed += 1);
        // The log level is a load-time constant in read-only data: below
        // debug the verifier sees the branch is dead.
        if level_enabled(Level::Debug) {
            if let Some(left_out) = may_log(log_kind::PASS_LIST) {
                debug!(
                    &ctx,
                    target: LOG_TARGET,
                    "XDP on ifindex {}: queue {}: frame passed to the kernel stack by the pass list ({} more since the last line)",
                    ctx.ingress_ifindex(),
                    queue,
                    left_out
                );
            }
        }
        return xdp_action::XDP_PASS;
    }

    redirect(&ctx, queue, counters)
}

/// Redirects the frame to the socket of `queue`, or applies the no-socket
/// action; counted either way.
#[inline(always)]
fn redirect(ctx: &XdpContext, queue: u32, counters: Option<*mut QueueCounters>) -> u32 {
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
            log_no_socket(ctx, queue, fallback);
            fallback
        }
    }
}

/// Logs (rate-limited) a frame that found no socket: its queue's slot is
/// empty, or the queue lies beyond the XSKMAP.
///
/// Each verdict has its own line with a literal string: a string chosen at
/// run time compiles to a pointer and a length selected apart, which the
/// verifier may pair wrongly (one string's pointer with the other's length)
/// and refuse.
#[inline(always)]
fn log_no_socket(ctx: &XdpContext, queue: u32, fallback: u32) {
    let pass = fallback == action::PASS;
    if queue >= MAX_QUEUES {
        if let Some(left_out) = may_log(log_kind::BEYOND_MAP) {
            if pass {
                warn!(
                    ctx,
                    target: LOG_TARGET,
                    "XDP on ifindex {}: queue {} is beyond the XSKMAP ({} slots): frame passed to the kernel stack ({} more since the last line)",
                    ctx.ingress_ifindex(),
                    queue,
                    MAX_QUEUES,
                    left_out
                );
            } else {
                warn!(
                    ctx,
                    target: LOG_TARGET,
                    "XDP on ifindex {}: queue {} is beyond the XSKMAP ({} slots): frame dropped ({} more since the last line)",
                    ctx.ingress_ifindex(),
                    queue,
                    MAX_QUEUES,
                    left_out
                );
            }
        }
    } else if let Some(left_out) = may_log(log_kind::NO_SOCKET) {
        if pass {
            warn!(
                ctx,
                target: LOG_TARGET,
                "XDP on ifindex {}: queue {} has no AF_XDP socket: frame passed to the kernel stack ({} more since the last line)",
                ctx.ingress_ifindex(),
                queue,
                left_out
            );
        } else {
            warn!(
                ctx,
                target: LOG_TARGET,
                "XDP on ifindex {}: queue {} has no AF_XDP socket: frame dropped ({} more since the last line)",
                ctx.ingress_ifindex(),
                queue,
                left_out
            );
        }
    }
}

/// Whether an event of `kind` may be logged now on this CPU; if so, how many
/// were left out since the last line (and the count restarts).
#[inline(always)]
fn may_log(kind: u32) -> Option<u64> {
    let state = LOG_STATE.get_ptr_mut(kind)?;
    // SAFETY: a helper without arguments or preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: the pointer comes from a per-CPU array lookup: valid for the
    // whole program run, and only this CPU touches this copy.
    let state = unsafe { &mut *state };
    if state.last_ns != 0 && now.wrapping_sub(state.last_ns) < LOG_INTERVAL_NS {
        state.suppressed += 1;
        return None;
    }
    let left_out = state.suppressed;
    state.last_ns = now;
    state.suppressed = 0;
    Some(left_out)
}

/// What UDP steering says about a frame.
enum UdpSteering {
    /// UDP steering is off: the pass lists decide.
    Off,
    /// An IPv4 UDP datagram to the steered address and port.
    Ours,
    /// Anything else: the kernel's.
    Other,
}

/// Where the IPv4 header starts in an untagged Ethernet frame.
const IPV4_AT: usize = ETH_HEADER_LEN;
/// Bytes of an IPv4 header without options.
const IPV4_HEADER_LEN: usize = 20;
/// Bytes of a UDP header.
const UDP_HEADER_LEN: usize = 8;

/// Whether the frame is an IPv4 UDP datagram for the configured address
/// and port (`config::UDP_STEER_ADDR`, `config::UDP_STEER_PORT`): IHL 5
/// (a header with options goes to the kernel, whose socket still serves
/// it), neither a fragment nor more fragments following.
#[inline(always)]
fn udp_steering(ctx: &XdpContext) -> UdpSteering {
    let addr = match CONFIG.get(config::UDP_STEER_ADDR) {
        Some(&addr) if addr != 0 => addr,
        _ => return UdpSteering::Off,
    };
    let port = match CONFIG.get(config::UDP_STEER_PORT) {
        Some(&port) => port,
        None => return UdpSteering::Other,
    };
    let start = ctx.data();
    if start + IPV4_AT + IPV4_HEADER_LEN + UDP_HEADER_LEN > ctx.data_end() {
        return UdpSteering::Other;
    }
    let p = start as *const u8;
    // SAFETY: the Ethernet, IPv4 (without options) and UDP headers lie
    // inside the packet: checked above against data_end.
    let ours = unsafe {
        let ip = p.add(IPV4_AT);
        let udp = ip.add(IPV4_HEADER_LEN);
        *p.add(12) == 0x08
            && *p.add(13) == 0x00
            && *ip == 0x45
            && *ip.add(9) == 17
            && (*ip.add(6) & 0x3f) == 0
            && *ip.add(7) == 0
            && u32::from_le_bytes([*ip.add(16), *ip.add(17), *ip.add(18), *ip.add(19)]) == addr
            && u32::from(u16::from_be_bytes([*udp.add(2), *udp.add(3)])) == port
    };
    if ours {
        UdpSteering::Ours
    } else {
        UdpSteering::Other
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
