//! The kernel's own XDP traffic generator (`BPF_PROG_TEST_RUN` with
//! `BPF_F_TEST_XDP_LIVE_FRAMES`, Linux 5.18, as `xdp-trafficgen` uses it)
//! running a four-instruction XDP program that redirects every frame into
//! one interface. Redirected into one end of a veth whose peer has a native
//! XDP program, frames arrive in that program as from a NIC driver: no
//! socket and no skb on the sending side.

use std::os::fd::OwnedFd;

use crate::bpf_syscall::{self, helper, insn, BpfError};

/// The generator program for one target interface.
pub struct LiveFrames {
    prog: OwnedFd,
    batch_size: u32,
}

/// Whether this kernel (and its security policy) lets the calling process
/// run XDP programs with live frames: runs a program that drops one frame.
pub fn permitted() -> bool {
    probe().is_ok()
}

/// Runs a program that drops one live frame; the kernel's error where it
/// refuses. A refusal by policy shows as `EPERM` raised before the kernel
/// validates the run's parameters (a batch size over its limit of 256, which
/// upstream Linux rejects with `E2BIG`, is refused with `EPERM` too): the
/// request itself is well formed, as the same run without live frames
/// succeeds.
pub fn probe() -> Result<(), BpfError> {
    let drop = bpf_syscall::load_xdp("linerate_probe", &[insn::mov_imm(0, 1), insn::exit()])?;
    bpf_syscall::test_run_live(&drop, &[0u8; 64], 1, 0)
}

impl LiveFrames {
    /// Loads the generator redirecting into `ifname`, an interface of the
    /// calling thread's namespace; `batch_size` frames are built and
    /// redirected at a time (1..=256; 0: the kernel's 64).
    pub fn new(ifname: &str, batch_size: u32) -> Result<LiveFrames, BpfError> {
        let ifindex = bpf_syscall::ifindex(ifname)?;
        let program = [
            insn::mov_imm(1, ifindex as i32),
            insn::mov_imm(2, 0),
            insn::call(helper::REDIRECT),
            insn::exit(),
        ];
        Ok(LiveFrames {
            prog: bpf_syscall::load_xdp("linerate_gen", &program)?,
            batch_size: batch_size.min(256),
        })
    }

    /// Sends `frame` `count` times.
    pub fn run(&self, frame: &[u8], count: u32) -> Result<(), BpfError> {
        bpf_syscall::test_run_live(&self.prog, frame, count, self.batch_size)
    }
}
