//! Framing of control messages on a Unix stream socket, with file
//! descriptors passed by SCM_RIGHTS (see [`crate::protocol`] for the format).

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use thiserror::Error;

use crate::protocol::{Header, HeaderError, HEADER_LEN, OFFLOAD_FDS, PORT_FDS};

/// A message could not be sent or received.
#[derive(Debug, Error)]
pub enum WireError {
    /// The peer closed the connection between messages.
    #[error("connection closed")]
    Closed,
    /// A socket error.
    #[error("control socket")]
    Io(#[from] io::Error),
    /// The header is not valid.
    #[error("bad message header")]
    Header(#[from] HeaderError),
    /// The fds announced in the header did not arrive.
    #[error("expected {expected} file descriptors, received {received}")]
    Fds {
        /// Announced.
        expected: u32,
        /// Received.
        received: usize,
    },
}

/// Room for the most fds a message carries, and one more (so a message
/// with too many is seen as such, not truncated to a valid count).
const FD_SPACE: usize = if PORT_FDS > OFFLOAD_FDS {
    PORT_FDS
} else {
    OFFLOAD_FDS
} + 1;

fn cmsg_space() -> usize {
    // SAFETY: CMSG_SPACE is a pure computation.
    unsafe { libc::CMSG_SPACE((FD_SPACE * std::mem::size_of::<RawFd>()) as u32) as usize }
}

/// Sends one message: header, payload and optional fds in one `sendmsg`
/// (then the rest of the payload if the socket took only part).
pub fn send(
    stream: &UnixStream,
    direction: u16,
    payload: &[u8],
    fds: &[RawFd],
) -> Result<(), WireError> {
    let header = Header {
        direction,
        payload_len: payload.len(),
        fds: fds.len() as u32,
    }
    .encode();
    let mut iov = [
        libc::iovec {
            iov_base: header.as_ptr() as *mut libc::c_void,
            iov_len: header.len(),
        },
        libc::iovec {
            iov_base: payload.as_ptr() as *mut libc::c_void,
            iov_len: payload.len(),
        },
    ];
    let fd_bytes = std::mem::size_of_val(fds);
    // Room for every fd given (not only the PORT_FDS a receiver accepts).
    // SAFETY: CMSG_SPACE is a pure computation.
    let mut control = vec![0u8; unsafe { libc::CMSG_SPACE(fd_bytes as u32) } as usize];
    // SAFETY: an all-zero msghdr is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = 2;
    if !fds.is_empty() {
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = control.len();
        // SAFETY: msg_control points to a buffer of at least CMSG_SPACE bytes,
        // so the first header and its data fit.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(fd_bytes as u32) as usize;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr().cast::<u8>(),
                libc::CMSG_DATA(cmsg),
                fd_bytes,
            );
        }
    }
    let sent = loop {
        // SAFETY: msg describes valid buffers for the duration of the call.
        let n = unsafe { libc::sendmsg(stream.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            break n as usize;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err.into());
        }
    };
    let total = header.len() + payload.len();
    if sent < total {
        let mut rest = Vec::with_capacity(total - sent);
        rest.extend_from_slice(&header[sent.min(HEADER_LEN)..]);
        rest.extend_from_slice(&payload[sent.saturating_sub(HEADER_LEN)..]);
        let mut s = stream;
        s.write_all(&rest)?;
    }
    Ok(())
}

/// Receives one message travelling in `direction`: returns its payload and the
/// fds that came with it. Fds that arrive unannounced are closed.
pub fn receive(stream: &UnixStream, direction: u16) -> Result<(Vec<u8>, Vec<OwnedFd>), WireError> {
    let mut header = [0u8; HEADER_LEN];
    let mut control = vec![0u8; cmsg_space()];
    let mut iov = libc::iovec {
        iov_base: header.as_mut_ptr().cast(),
        iov_len: HEADER_LEN,
    };
    // SAFETY: an all-zero msghdr is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = control.len();
    let got = loop {
        // SAFETY: msg describes valid buffers for the duration of the call.
        let n = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err.into());
        }
    };
    let fds = collect_fds(&msg);
    if got == 0 {
        return Err(WireError::Closed);
    }
    let mut s = stream;
    if got < HEADER_LEN {
        s.read_exact(&mut header[got..])?;
    }
    let header = Header::decode(&header, direction)?;
    let mut payload = vec![0u8; header.payload_len];
    s.read_exact(&mut payload)?;
    if msg.msg_flags & libc::MSG_CTRUNC != 0 || fds.len() != header.fds as usize {
        return Err(WireError::Fds {
            expected: header.fds,
            received: fds.len(),
        });
    }
    Ok((payload, fds))
}

fn collect_fds(msg: &libc::msghdr) -> Vec<OwnedFd> {
    let mut fds = Vec::new();
    // SAFETY: walking the control messages the kernel wrote into our buffer,
    // with the CMSG_* macros that bound each header by msg_controllen.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg);
                let bytes = (*cmsg).cmsg_len - (data as usize - cmsg as usize);
                let count = bytes / std::mem::size_of::<RawFd>();
                for i in 0..count {
                    let fd = std::ptr::read_unaligned(data.cast::<RawFd>().add(i));
                    if fd >= 0 {
                        fds.push(OwnedFd::from_raw_fd(fd));
                    }
                }
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    fds
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::DIR_REQUEST;

    #[test]
    fn a_request_carries_the_four_fds_of_an_offload() {
        let (a, b) = UnixStream::pair().unwrap();
        let fd = a.as_raw_fd();
        send(&a, DIR_REQUEST, b"{}", &[fd; OFFLOAD_FDS]).unwrap();
        let (payload, fds) = receive(&b, DIR_REQUEST).unwrap();
        assert_eq!((payload.as_slice(), fds.len()), (&b"{}"[..], OFFLOAD_FDS));
        send(&a, DIR_REQUEST, b"{}", &[fd; OFFLOAD_FDS + 1]).unwrap();
        assert!(matches!(
            receive(&b, DIR_REQUEST),
            Err(WireError::Header(HeaderError::Fds(5)))
        ));
    }

    /// Found by the `control` fuzz target: sending more fds than a receiver
    /// takes wrote past the control buffer. Now they are sent, and the
    /// receiver refuses the message (its header announces too many fds).
    #[test]
    fn more_fds_than_a_port_carries_are_sent_and_refused() {
        let (a, b) = UnixStream::pair().unwrap();
        let fd = a.as_raw_fd();
        send(&a, DIR_REQUEST, b"{}", &[fd; 8]).unwrap();
        match receive(&b, DIR_REQUEST) {
            Err(WireError::Header(_)) => {}
            other => panic!("{other:?}"),
        }
    }
}
