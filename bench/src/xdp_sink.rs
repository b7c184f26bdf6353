//! A counting XDP sink: a native XDP program that counts every frame in a
//! per-CPU counter and drops it (the receive ceiling of an interface) or
//! passes it on to the kernel stack (a NIC driver's skb path, for the Linux
//! bridge case). Attached through a bpf_link: dropping the sink detaches it.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use crate::bpf_syscall::{self, helper, insn, BpfError};

/// What the sink does with a frame after counting it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkVerdict {
    /// `XDP_DROP`: count only.
    Drop,
    /// `XDP_PASS`: count, then the kernel stack takes it.
    Pass,
}

/// The counting program attached to one interface.
pub struct XdpSink {
    map: OwnedFd,
    _prog: OwnedFd,
    _link: OwnedFd,
}

impl XdpSink {
    /// Attaches the sink to `ifname` (native mode) in the calling thread's
    /// namespace.
    pub fn attach(ifname: &str, verdict: SinkVerdict) -> Result<XdpSink, BpfError> {
        let ifindex = bpf_syscall::ifindex(ifname)?;
        let map = bpf_syscall::percpu_u64_array(1)?;
        let action = match verdict {
            SinkVerdict::Drop => 1,
            SinkVerdict::Pass => 2,
        };
        let [map_lo, map_hi] = insn::load_map_fd(1, map.as_raw_fd());
        let program = [
            insn::store_w_imm(10, -4, 0),
            insn::mov_reg(2, 10),
            insn::add_imm(2, -4),
            map_lo,
            map_hi,
            insn::call(helper::MAP_LOOKUP_ELEM),
            insn::jeq_imm(0, 0, 3),
            // A per-CPU slot: no other CPU writes it, XDP is not preempted.
            insn::load_dw(1, 0, 0),
            insn::add_imm(1, 1),
            insn::store_dw(0, 1, 0),
            insn::mov_imm(0, action),
            insn::exit(),
        ];
        let prog = bpf_syscall::load_xdp("linerate_sink", &program)?;
        let link = bpf_syscall::attach_xdp_native(&prog, ifindex)?;
        Ok(XdpSink {
            map,
            _prog: prog,
            _link: link,
        })
    }

    /// Frames counted so far.
    pub fn packets(&self) -> Result<u64, BpfError> {
        bpf_syscall::percpu_u64_sum(&self.map, 0)
    }

    /// Frames counted since the reading `before`, once `expected` of them
    /// have arrived or a second has passed (frames still in flight when
    /// their sender stopped).
    pub fn arrived_since(&self, before: u64, expected: u64) -> u64 {
        let count = || {
            self.packets()
                .map(|n| n.saturating_sub(before))
                .unwrap_or(0)
        };
        let _ = testbed::wait_until(Duration::from_secs(1), Duration::from_millis(5), || {
            count() >= expected
        });
        count()
    }
}
