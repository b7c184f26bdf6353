//! The tunnel's sockets: a non-blocking UDP socket bound to the local VTEP
//! address and port (and one bound to the multicast group, if any) read
//! with `recvmmsg`, and the sending socket written with `sendmmsg`: a raw
//! IPv4 socket of protocol UDP, so that every datagram carries its own UDP
//! source port (the kernel adds the IPv4 header, with Don't Fragment set),
//! or, without CAP_NET_RAW, the UDP socket itself (source port = the
//! destination port).

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// `addr:port` as a C socket address.
pub fn sockaddr(addr: Ipv4Addr, port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// The address of a C socket address.
pub fn ipv4_of(sa: &libc::sockaddr_in) -> Ipv4Addr {
    Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr))
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live T of the size passed.
    check(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

fn socket(kind: libc::c_int, protocol: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket() with constant arguments; the result is checked.
    let fd = check(unsafe {
        libc::socket(
            libc::AF_INET,
            kind | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            protocol,
        )
    })?;
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn bind(fd: RawFd, addr: Ipv4Addr, port: u16) -> io::Result<()> {
    let sa = sockaddr(addr, port);
    // SAFETY: a valid sockaddr_in of the size passed.
    check(unsafe {
        libc::bind(
            fd,
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

/// A non-blocking UDP socket bound to `addr:port`; with `group`, `addr` is
/// that multicast group, joined on the interface of `local`.
pub fn bind_udp(addr: Ipv4Addr, port: u16, group_on: Option<Ipv4Addr>) -> io::Result<OwnedFd> {
    let fd = socket(libc::SOCK_DGRAM, 0)?;
    let raw = fd.as_raw_fd();
    if let Some(local) = group_on {
        setsockopt(raw, libc::SOL_SOCKET, libc::SO_REUSEADDR, &1i32)?;
        bind(raw, addr, port)?;
        let mreq = libc::ip_mreq {
            imr_multiaddr: libc::in_addr {
                s_addr: u32::from(addr).to_be(),
            },
            imr_interface: libc::in_addr {
                s_addr: u32::from(local).to_be(),
            },
        };
        setsockopt(raw, libc::IPPROTO_IP, libc::IP_ADD_MEMBERSHIP, &mreq)?;
    } else {
        bind(raw, addr, port)?;
        setsockopt(raw, libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP, &0i32)?;
    }
    // Every datagram carries the socket's drop count (a full receive
    // buffer), so the port can report the kernel's drops too.
    setsockopt(raw, libc::SOL_SOCKET, libc::SO_RXQ_OVFL, &1i32)?;
    // Room for bursts: the forwarder drains it in batches.
    buffer(raw, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF);
    Ok(fd)
}

/// Gives a socket buffer 4 MiB: past `net.core.[rw]mem_max` with
/// CAP_NET_ADMIN (`force`), else as much as that allows (`plain`).
fn buffer(raw: RawFd, force: libc::c_int, plain: libc::c_int) {
    let size = 4i32 << 20;
    if setsockopt(raw, libc::SOL_SOCKET, force, &size).is_err() {
        let _ = setsockopt(raw, libc::SOL_SOCKET, plain, &size);
    }
}

/// Settings common to both kinds of sending socket: Don't Fragment (an
/// oversize datagram fails rather than being fragmented), multicast out of
/// `local`'s interface, not looped back.
fn sender_options(raw: RawFd, local: Ipv4Addr) -> io::Result<()> {
    setsockopt(
        raw,
        libc::IPPROTO_IP,
        libc::IP_MTU_DISCOVER,
        &libc::IP_PMTUDISC_DO,
    )?;
    let ifaddr = libc::in_addr {
        s_addr: u32::from(local).to_be(),
    };
    setsockopt(raw, libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &ifaddr)?;
    setsockopt(raw, libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP, &0i32)?;
    buffer(raw, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF);
    Ok(())
}

/// Prepares the UDP socket `fd` to send too (the fallback sender).
pub fn udp_sender(fd: RawFd, local: Ipv4Addr) -> io::Result<()> {
    sender_options(fd, local)
}

/// A raw IPv4 socket of protocol UDP bound to `local`, for sending
/// datagrams whose UDP header we write. It would also receive a copy of
/// every UDP datagram for `local`: a socket filter drops them all.
pub fn raw_sender(local: Ipv4Addr) -> io::Result<OwnedFd> {
    let fd = socket(libc::SOCK_RAW, libc::IPPROTO_UDP)?;
    let raw = fd.as_raw_fd();
    let mut drop_all = [libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: 0,
    }];
    let prog = libc::sock_fprog {
        len: 1,
        filter: drop_all.as_mut_ptr(),
    };
    setsockopt(raw, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)?;
    let _ = setsockopt(raw, libc::SOL_SOCKET, libc::SO_RCVBUF, &0i32);
    bind(raw, local, 0)?;
    sender_options(raw, local)?;
    Ok(fd)
}

/// One datagram to send: `header` (its first `header_len` bytes), then
/// `frame`, to `dest`.
#[derive(Clone, Copy)]
pub struct Outgoing {
    /// UDP and VXLAN headers (raw socket) or the VXLAN header alone.
    pub header: [u8; 16],
    /// The inner frame.
    pub frame: *const u8,
    /// Its length.
    pub len: usize,
    /// Where to.
    pub dest: libc::sockaddr_in,
}

/// What a [`send`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SendOutcome {
    /// Datagrams the kernel took.
    pub sent: usize,
    /// Datagrams not sent because the socket's buffer was full.
    pub would_block: usize,
    /// Datagrams refused for another reason (no route, too big).
    pub failed: usize,
}

/// Sends `out` on `fd` with `sendmmsg`, 64 at a time, never blocking.
///
/// # Safety
/// Every `frame` must be readable for its `len` bytes.
pub unsafe fn send(fd: RawFd, out: &[Outgoing], header_len: usize) -> SendOutcome {
    const CHUNK: usize = 64;
    let mut outcome = SendOutcome::default();
    let mut iovs = [[libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; 2]; CHUNK];
    // SAFETY: an all-zero mmsghdr is an empty message.
    let mut msgs: [libc::mmsghdr; CHUNK] = unsafe { std::mem::zeroed() };
    let mut next = 0;
    while next < out.len() {
        let n = (out.len() - next).min(CHUNK);
        for (k, o) in out[next..next + n].iter().enumerate() {
            iovs[k] = [
                libc::iovec {
                    iov_base: o.header.as_ptr() as *mut libc::c_void,
                    iov_len: header_len,
                },
                libc::iovec {
                    iov_base: o.frame as *mut libc::c_void,
                    iov_len: o.len,
                },
            ];
            let hdr = &mut msgs[k].msg_hdr;
            hdr.msg_name = (&o.dest as *const libc::sockaddr_in) as *mut libc::c_void;
            hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            hdr.msg_iov = iovs[k].as_mut_ptr();
            hdr.msg_iovlen = 2;
        }
        // SAFETY: n messages whose names, headers and frames are readable
        // (the caller's guarantee for frames).
        let r = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), n as u32, libc::MSG_DONTWAIT) };
        if r > 0 {
            outcome.sent += r as usize;
            next += r as usize;
            continue;
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) | Some(libc::ENOBUFS) => {
                outcome.would_block += out.len() - next;
                break;
            }
            _ => {
                log::debug!("tunnel send: {err}");
                outcome.failed += 1;
                next += 1;
            }
        }
    }
    outcome
}

/// The SO_RXQ_OVFL count in a received message's control data, if any.
fn overflow_count(msg: &libc::msghdr) -> Option<u32> {
    let mut found = None;
    // SAFETY: walking the control data the kernel wrote into the message's
    // buffer, with the CMSG_* macros that bound each header by
    // msg_controllen.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET
                && (*cmsg).cmsg_type == libc::SO_RXQ_OVFL
                && (*cmsg).cmsg_len >= libc::CMSG_LEN(4) as usize
            {
                found = Some(std::ptr::read_unaligned(
                    libc::CMSG_DATA(cmsg).cast::<u32>(),
                ));
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    found
}

/// Receive buffers for one batch of datagrams: the VXLAN header of each
/// lands in `headers`, the inner frame in a 64-byte aligned slot.
pub struct RecvBatch {
    headers: Vec<[u8; 8]>,
    memory: Vec<u64>,
    slot_size: usize,
    addrs: Vec<libc::sockaddr_in>,
    lens: Vec<usize>,
    truncated: Vec<bool>,
    controls: Vec<[u64; 4]>,
    used: usize,
}

/// One datagram of a [`RecvBatch`].
pub struct Datagram<'a> {
    /// Its first 8 bytes (the VXLAN header, if it had that many).
    pub header: &'a [u8; 8],
    /// Where the rest (the inner frame) starts.
    pub frame: *const u8,
    /// The datagram's whole length (header included).
    pub len: usize,
    /// Longer than the buffers: the frame is cut.
    pub truncated: bool,
    /// The sender's address.
    pub from: Ipv4Addr,
}

impl RecvBatch {
    /// Room for `slots` datagrams of frames up to `max_frame` bytes.
    pub fn new(slots: usize, max_frame: usize) -> RecvBatch {
        let slot_size = max_frame.next_multiple_of(64);
        RecvBatch {
            headers: vec![[0; 8]; slots],
            memory: vec![0u64; slots * slot_size / 8],
            slot_size,
            // SAFETY: an all-zero sockaddr_in is valid.
            addrs: vec![unsafe { std::mem::zeroed() }; slots],
            lens: vec![0; slots],
            truncated: vec![false; slots],
            controls: vec![[0; 4]; slots],
            used: 0,
        }
    }

    /// Bytes readable from a datagram's `frame`.
    pub fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// Forgets the datagrams of the previous batch.
    pub fn clear(&mut self) {
        self.used = 0;
    }

    /// Datagrams held.
    pub fn len(&self) -> usize {
        self.used
    }

    /// Whether no datagram is held.
    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    /// Free slots.
    pub fn room(&self) -> usize {
        self.headers.len() - self.used
    }

    /// Reads up to `max` datagrams from `fd` into the free slots with one
    /// `recvmmsg`, without blocking; returns how many arrived and the
    /// socket's count of datagrams dropped for a full buffer, if reported.
    pub fn receive(&mut self, fd: RawFd, max: usize) -> io::Result<(usize, Option<u32>)> {
        let n = max.min(self.room()).min(64);
        if n == 0 {
            return Ok((0, None));
        }
        let base = self.used;
        let mut iovs = [[libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; 2]; 64];
        // SAFETY: an all-zero mmsghdr is an empty message.
        let mut msgs: [libc::mmsghdr; 64] = unsafe { std::mem::zeroed() };
        let memory = self.memory.as_mut_ptr().cast::<u8>();
        for k in 0..n {
            let i = base + k;
            iovs[k] = [
                libc::iovec {
                    iov_base: self.headers[i].as_mut_ptr().cast(),
                    iov_len: 8,
                },
                libc::iovec {
                    // SAFETY: slot i lies inside `memory` (slots * slot_size bytes).
                    iov_base: unsafe { memory.add(i * self.slot_size) }.cast(),
                    iov_len: self.slot_size,
                },
            ];
            let hdr = &mut msgs[k].msg_hdr;
            hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_in).cast();
            hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            hdr.msg_iov = iovs[k].as_mut_ptr();
            hdr.msg_iovlen = 2;
            hdr.msg_control = self.controls[i].as_mut_ptr().cast();
            hdr.msg_controllen = std::mem::size_of::<[u64; 4]>();
        }
        let r = loop {
            // SAFETY: n messages whose buffers and names are writable and
            // stay so for the call.
            let r = unsafe {
                libc::recvmmsg(
                    fd,
                    msgs.as_mut_ptr(),
                    n as u32,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if r >= 0 {
                break r as usize;
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => return Ok((0, None)),
                _ => return Err(err),
            }
        };
        let mut dropped = None;
        for (k, msg) in msgs.iter().enumerate().take(r) {
            self.lens[base + k] = msg.msg_len as usize;
            self.truncated[base + k] = msg.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            dropped = overflow_count(&msg.msg_hdr).or(dropped);
        }
        self.used += r;
        Ok((r, dropped))
    }

    /// Puts `datagram` from `from` into the next free slot as `recvmmsg`
    /// would (the first 8 bytes to the header, the rest to the slot, cut
    /// and flagged truncated past it); false when no slot is free. For
    /// tests and fuzzing the receive step without a socket.
    pub fn push(&mut self, datagram: &[u8], from: Ipv4Addr) -> bool {
        if self.room() == 0 {
            return false;
        }
        let i = self.used;
        let head = datagram.len().min(8);
        self.headers[i][..head].copy_from_slice(&datagram[..head]);
        let rest = &datagram[head..];
        let kept = rest.len().min(self.slot_size);
        let memory = self.memory.as_mut_ptr().cast::<u8>();
        // SAFETY: slot i lies inside `memory` and `kept` <= slot_size.
        unsafe {
            std::ptr::copy_nonoverlapping(rest.as_ptr(), memory.add(i * self.slot_size), kept)
        };
        self.lens[i] = head + kept;
        self.truncated[i] = rest.len() > self.slot_size;
        self.addrs[i] = sockaddr(from, 0);
        self.used += 1;
        true
    }

    /// Datagram `i` (below [`RecvBatch::len`]).
    pub fn get(&self, i: usize) -> Datagram<'_> {
        let memory = self.memory.as_ptr().cast::<u8>();
        Datagram {
            header: &self.headers[i],
            // SAFETY: slot i lies inside `memory`.
            frame: unsafe { memory.add(i * self.slot_size) },
            len: self.lens[i],
            truncated: self.truncated[i],
            from: ipv4_of(&self.addrs[i]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_round_trip_through_sendmmsg_and_recvmmsg() {
        let lo = Ipv4Addr::LOCALHOST;
        let rx = bind_udp(lo, 0, None).unwrap();
        let mut sa = sockaddr(lo, 0);
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        // SAFETY: getsockname writes into a sockaddr_in of the size passed.
        let r = unsafe {
            libc::getsockname(
                rx.as_raw_fd(),
                (&mut sa as *mut libc::sockaddr_in).cast(),
                &mut len,
            )
        };
        assert_eq!(r, 0);
        let port = u16::from_be(sa.sin_port);
        let tx = bind_udp(lo, 0, None).unwrap();
        udp_sender(tx.as_raw_fd(), lo).unwrap();
        let frames: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 60 + i as usize]).collect();
        let out: Vec<Outgoing> = frames
            .iter()
            .map(|f| Outgoing {
                header: [8, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                frame: f.as_ptr(),
                len: f.len(),
                dest: sockaddr(lo, port),
            })
            .collect();
        // SAFETY: the frames outlive the call.
        let outcome = unsafe { send(tx.as_raw_fd(), &out, 8) };
        assert_eq!(outcome.sent, 3);
        let mut batch = RecvBatch::new(4, 128);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while batch.len() < 3 && std::time::Instant::now() < deadline {
            let (_, dropped) = batch.receive(rx.as_raw_fd(), 4).unwrap();
            assert!(dropped.is_none_or(|d| d == 0));
        }
        assert_eq!(batch.len(), 3);
        for i in 0..3 {
            let d = batch.get(i);
            assert_eq!(d.len, 8 + 60 + i);
            assert_eq!(d.header[6], 7);
            assert_eq!(d.from, lo);
            assert!(!d.truncated);
            // SAFETY: the slot holds the frame's bytes.
            let frame = unsafe { std::slice::from_raw_parts(d.frame, d.len - 8) };
            assert!(frame.iter().all(|&b| b == i as u8));
        }
        batch.clear();
        assert_eq!(batch.receive(rx.as_raw_fd(), 4).unwrap().0, 0);
    }
}
