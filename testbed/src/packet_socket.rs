//! A raw AF_PACKET socket bound to one interface: send and receive whole
//! Ethernet frames (in the namespace of the thread that opens it, see
//! [`crate::Netns::run_in`]).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// Largest frame [`PacketSocket::recv`] returns whole.
const RECV_BUFFER: usize = 16 * 1024;

/// Which frames a packet socket receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// None: the socket only sends (protocol 0).
    SendOnly,
    /// Every frame of the interface (`ETH_P_ALL`), also the ones it sends.
    All,
    /// Frames of one EtherType (host byte order).
    EtherType(u16),
}

impl Protocol {
    /// The protocol number in host byte order.
    pub fn number(self) -> u16 {
        match self {
            Protocol::SendOnly => 0,
            Protocol::All => libc::ETH_P_ALL as u16,
            Protocol::EtherType(ethertype) => ethertype,
        }
    }
}

/// A raw AF_PACKET socket (`SOCK_RAW`, close-on-exec).
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    protocol: Protocol,
}

impl PacketSocket {
    /// Opens a socket for `protocol` that is not bound yet (set ring
    /// options before [`PacketSocket::bind`]).
    pub fn unbound(protocol: Protocol) -> Result<PacketSocket> {
        // SAFETY: socket(2) takes plain integers and returns a new descriptor.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(protocol.number().to_be()),
            )
        };
        if fd < 0 {
            return Err(last_error("socket(AF_PACKET)"));
        }
        // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(PacketSocket { fd, protocol })
    }

    /// Opens a socket for `protocol` bound to interface `ifname` with the
    /// qdisc bypassed (a frame goes straight to the driver), non-blocking.
    pub fn open(ifname: &str, protocol: Protocol) -> Result<PacketSocket> {
        let socket = PacketSocket::unbound(protocol)?;
        socket.set_qdisc_bypass()?;
        socket.set_nonblocking()?;
        socket.bind(ifname)?;
        Ok(socket)
    }

    /// Binds the socket to interface `ifname` for its protocol.
    pub fn bind(&self, ifname: &str) -> Result<()> {
        let ifindex = interface_index(ifname)?;
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = self.protocol.number().to_be();
        addr.sll_ifindex = ifindex;
        // SAFETY: `addr` is a valid sockaddr_ll of the length passed.
        let rc = unsafe {
            libc::bind(
                self.fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(last_error(format!("bind(AF_PACKET, {ifname})")));
        }
        Ok(())
    }

    /// Sets a `SOL_PACKET` option `name` (a `PACKET_*` constant) to
    /// `value`; `what` names it in errors.
    pub fn set_option<T: Copy>(&self, name: libc::c_int, value: &T, what: &str) -> Result<()> {
        // SAFETY: `value` points to a live T of the size passed; the kernel
        // copies it and keeps no pointer.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                name,
                (value as *const T).cast(),
                std::mem::size_of::<T>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(last_error(format!("setsockopt({what})")));
        }
        Ok(())
    }

    /// Sends frames straight to the driver, past the qdisc
    /// (`PACKET_QDISC_BYPASS`).
    pub fn set_qdisc_bypass(&self) -> Result<()> {
        let one: libc::c_int = 1;
        self.set_option(libc::PACKET_QDISC_BYPASS, &one, "PACKET_QDISC_BYPASS")
    }

    /// Makes sends and receives return at once instead of blocking.
    pub fn set_nonblocking(&self) -> Result<()> {
        let fd = self.fd.as_raw_fd();
        // SAFETY: fcntl(2) on a descriptor we own, plain integer arguments.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        // SAFETY: as above.
        if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(last_error("fcntl(O_NONBLOCK)"));
        }
        Ok(())
    }

    /// Sends one frame: true if the kernel took it, false if the device
    /// queue had no room (try again later).
    pub fn send(&self, frame: &[u8]) -> Result<bool> {
        // SAFETY: sends from a live slice of the length passed.
        let rc = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if rc >= 0 {
            return Ok(rc as usize == frame.len());
        }
        let error = io::Error::last_os_error();
        if is_congestion(&error) {
            return Ok(false);
        }
        Err(Error::io("send(AF_PACKET)", error))
    }

    /// Sends `frames` with one `sendmmsg`; returns how many the kernel took
    /// (0 when the device queue had no room).
    pub fn send_batch<F: AsRef<[u8]>>(&self, frames: &[F]) -> Result<usize> {
        let mut iovecs: Vec<libc::iovec> = frames
            .iter()
            .map(|frame| libc::iovec {
                iov_base: frame.as_ref().as_ptr() as *mut libc::c_void,
                iov_len: frame.as_ref().len(),
            })
            .collect();
        let mut headers: Vec<libc::mmsghdr> = iovecs
            .iter_mut()
            .map(|iov| {
                // SAFETY: mmsghdr is plain data; all-zero is a valid value.
                let mut header: libc::mmsghdr = unsafe { std::mem::zeroed() };
                header.msg_hdr.msg_iov = iov;
                header.msg_hdr.msg_iovlen = 1;
                header
            })
            .collect();
        // SAFETY: every header points at one live iovec over a live frame
        // (the kernel only reads them); the count is the vector's length.
        let rc = unsafe {
            libc::sendmmsg(
                self.fd.as_raw_fd(),
                headers.as_mut_ptr(),
                headers.len() as libc::c_uint,
                0,
            )
        };
        if rc >= 0 {
            return Ok(rc as usize);
        }
        let error = io::Error::last_os_error();
        if is_congestion(&error) {
            return Ok(0);
        }
        Err(Error::io("sendmmsg(AF_PACKET)", error))
    }

    /// Receives one frame, waiting at most `timeout` (zero: only what is
    /// queued now); `None` if none came.
    pub fn recv(&self, timeout: Duration) -> Result<Option<Vec<u8>>> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; RECV_BUFFER];
        loop {
            // SAFETY: receives into a live buffer of the length passed;
            // MSG_DONTWAIT keeps it from blocking.
            let rc = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if rc >= 0 {
                buf.truncate(rc as usize);
                return Ok(Some(buf));
            }
            let error = io::Error::last_os_error();
            if !is_congestion(&error) {
                return Err(Error::io("recv(AF_PACKET)", error));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let wait_ms = (deadline - now).as_millis().clamp(1, 10) as libc::c_int;
            let mut pollfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one live pollfd, a bounded timeout.
            unsafe { libc::poll(&mut pollfd, 1, wait_ms) };
        }
    }

    /// Receives for at most `timeout`, or until `want` frames for which
    /// `keep` holds have arrived; returns those.
    pub fn collect(
        &self,
        want: usize,
        timeout: Duration,
        keep: impl Fn(&[u8]) -> bool,
    ) -> Result<Vec<Vec<u8>>> {
        let deadline = Instant::now() + timeout;
        let mut frames = Vec::new();
        while frames.len() < want {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if let Some(frame) = self.recv((deadline - now).min(Duration::from_millis(50)))? {
                if keep(&frame) {
                    frames.push(frame);
                }
            }
        }
        Ok(frames)
    }
}

impl AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The index of interface `ifname` in the calling thread's namespace.
pub fn interface_index(ifname: &str) -> Result<i32> {
    let name = std::ffi::CString::new(ifname).map_err(|_| Error::InvalidName {
        name: ifname.to_string(),
        reason: "contains a NUL byte",
    })?;
    // SAFETY: `name` is a NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(last_error(format!("if_nametoindex({ifname})")));
    }
    Ok(index as i32)
}

/// Whether a send or receive error means "no room or nothing now, try
/// again".
pub fn is_congestion(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::ENOBUFS) | Some(libc::EAGAIN) | Some(libc::EINTR)
    )
}

fn last_error(what: impl Into<String>) -> Error {
    Error::io(what, io::Error::last_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_numbers() {
        assert_eq!(Protocol::SendOnly.number(), 0);
        assert_eq!(Protocol::All.number(), 0x0003);
        assert_eq!(Protocol::EtherType(0x88b5).number(), 0x88b5);
    }

    #[test]
    fn an_unknown_interface_is_an_error() {
        assert!(interface_index("vsw-no-such0").is_err());
        assert!(interface_index("a\0b").is_err());
    }

    /// Needs root (CAP_NET_RAW and namespaces); skipped otherwise (a
    /// failure under `CI=true`).
    #[test]
    fn frames_cross_a_veth() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            crate::skip_or_fail("needs root");
            return;
        }
        let a = crate::Netns::new(crate::DEFAULT_PREFIX).unwrap();
        let b = crate::Netns::new(crate::DEFAULT_PREFIX).unwrap();
        for ns in [&a, &b] {
            ns.disable_ipv6().unwrap();
        }
        a.add_veth("pa", "pb", Some(&b), None).unwrap();
        a.set_up("pa").unwrap();
        b.set_up("pb").unwrap();
        crate::wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
            a.is_lower_up("pa").unwrap_or(false) && b.is_lower_up("pb").unwrap_or(false)
        })
        .unwrap();
        let receiver = b
            .run_in(|| PacketSocket::open("pb", Protocol::EtherType(0x88b5)))
            .unwrap()
            .unwrap();
        let mut frame = vec![0xffu8; 6];
        frame.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x88, 0xb5]);
        frame.extend_from_slice(&[7; 50]);
        let sent = a
            .run_in(|| {
                let sender = PacketSocket::open("pa", Protocol::SendOnly)?;
                sender.send_batch(&[frame.clone(), frame.clone()])
            })
            .unwrap()
            .unwrap();
        assert_eq!(sent, 2);
        let got = receiver
            .collect(2, Duration::from_secs(5), |f| f.len() == frame.len())
            .unwrap();
        assert_eq!(got, vec![frame.clone(), frame]);
    }
}
