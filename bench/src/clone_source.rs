//! A fast traffic source for kernels that refuse live frames: a tc program
//! on the interface's egress (tcx) clones every seed frame
//! [`CloneSource::FANOUT`] times with `bpf_clone_redirect` back to the same
//! egress, then lets the seed go too. One `send()` on an AF_PACKET socket
//! thus puts [`CloneSource::PER_SEED`] frames on the wire without a
//! syscall, a socket or a qdisc per frame.
//!
//! Copies are marked (`skb->mark = 1`) before cloning, so the program lets
//! them pass instead of amplifying them again; only frames with the test
//! EtherType are amplified. Into a veth whose peer has a native XDP program,
//! the copies arrive in that program through the veth's skb path (the peer
//! converts each to an XDP buffer).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::bpf_syscall::{self, helper, insn, BpfError, Insn, ProgKind};

/// `offsetof(struct __sk_buff, mark)`.
const SKB_MARK: i16 = 8;
/// `offsetof(struct __sk_buff, protocol)`: the EtherType, network order.
const SKB_PROTOCOL: i16 = 16;
/// `TCX_PASS` (`TC_ACT_OK`): the frame goes on.
const TCX_PASS: i32 = 0;

/// The amplifier attached to one interface and the socket that feeds it.
pub struct CloneSource {
    socket: OwnedFd,
    addr: libc::sockaddr_ll,
    _prog: OwnedFd,
    _link: OwnedFd,
}

/// The amplifier program: seeds of `ethertype` become `fanout` marked
/// copies on `ifindex`'s egress.
fn program(ifindex: u32, ethertype: u16, fanout: usize) -> Vec<Insn> {
    let wire_ethertype = i32::from(u16::from_ne_bytes(ethertype.to_be_bytes()));
    let mut p = vec![
        insn::mov_reg(6, 1),
        insn::load_w(0, 6, SKB_MARK),
        // Already a copy (or marked by someone else): pass it on.
        insn::jne_imm(0, 0, 0),
        insn::load_w(0, 6, SKB_PROTOCOL),
        insn::jne_imm(0, wire_ethertype, 0),
        insn::mov_imm(1, 1),
        insn::store_w(6, 1, SKB_MARK),
    ];
    for _ in 0..fanout {
        p.push(insn::mov_reg(1, 6));
        p.push(insn::mov_imm(2, ifindex as i32));
        p.push(insn::mov_imm(3, 0));
        p.push(insn::call(helper::CLONE_REDIRECT));
    }
    p.push(insn::mov_imm(0, TCX_PASS));
    p.push(insn::exit());
    let pass = p.len();
    p.push(insn::mov_imm(0, TCX_PASS));
    p.push(insn::exit());
    // Both conditional jumps go to `pass`.
    for at in [2usize, 4] {
        p[at] = insn::jne_imm(
            0,
            if at == 2 { 0 } else { wire_ethertype },
            (pass - at - 1) as i16,
        );
    }
    p
}

impl CloneSource {
    /// Copies per seed frame (below the veth's 256-frame ring, which the
    /// copies of one seed fill before its NAPI runs).
    pub const FANOUT: usize = 64;
    /// Frames one seed puts on the wire: its copies and itself.
    pub const PER_SEED: u64 = Self::FANOUT as u64 + 1;

    /// Attaches the amplifier to `ifname` (in the calling thread's
    /// namespace) for frames of `ethertype`, and opens the seed socket.
    pub fn attach(ifname: &str, ethertype: u16) -> Result<CloneSource, BpfError> {
        let ifindex = bpf_syscall::ifindex(ifname)?;
        let prog = bpf_syscall::load(
            ProgKind::TcxEgress,
            "linerate_clone",
            &program(ifindex, ethertype, Self::FANOUT),
        )?;
        let link = bpf_syscall::attach_tcx_egress(&prog, ifindex)?;
        // SAFETY: plain socket(2); the result is checked below.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(BpfError::Syscall {
                command: "socket(AF_PACKET)",
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: `fd` is a new descriptor nothing else owns.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_ll is plain data; all-zero is valid.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = ethertype.to_be();
        addr.sll_ifindex = ifindex as i32;
        addr.sll_halen = 6;
        Ok(CloneSource {
            socket,
            addr,
            _prog: prog,
            _link: link,
        })
    }

    /// Sends one seed: `frame` goes out [`CloneSource::PER_SEED`] times.
    /// Returns false when the kernel had no room for the seed (ENOBUFS).
    pub fn send_seed(&self, frame: &[u8]) -> Result<bool, BpfError> {
        // SAFETY: `frame` and `addr` are valid for the call's duration and
        // their lengths are passed with them.
        let rc = unsafe {
            libc::sendto(
                self.socket.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&self.addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENOBUFS) || e.raw_os_error() == Some(libc::EAGAIN) {
                return Ok(false);
            }
            return Err(BpfError::Syscall {
                command: "sendto(AF_PACKET)",
                source: e,
            });
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_checks_jump_to_the_pass_exit() {
        let p = program(3, 0x88B5, 2);
        // 7 checks, 2 x 4 clone calls, 2 seed exit, 2 pass.
        assert_eq!(p.len(), 7 + 8 + 4);
        assert_eq!(p[2].off(), (p.len() - 2 - 2 - 1) as i16);
        assert_eq!(p[4].off(), (p.len() - 2 - 4 - 1) as i16);
    }
}
