//! The daemon's writer of one capture: it sends what the forwarding threads
//! buffered over the capture's control connection, every few milliseconds,
//! until the client closes the connection (or sends anything), the port
//! goes away, or a write fails. A client that reads slowly only slows this
//! writer; the buffer then fills and the forwarding threads drop and count.

use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use super::sink::CaptureSink;

/// How long the writer waits between turns, in milliseconds.
const TURN_MS: i32 = 5;

/// Why a capture's stream ended.
#[derive(Debug, PartialEq, Eq)]
pub enum StreamEnd {
    /// The client closed the connection (or wrote to it).
    ClientLeft,
    /// The captured port went away.
    PortGone,
}

/// Whether the client closed `stream` (or sent something), waiting up to
/// `timeout_ms`.
fn client_left(stream: &UnixStream, timeout_ms: i32) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: libc::POLLIN | libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(e)
        };
    }
    Ok(n > 0 && pfd.revents != 0)
}

/// Sends `sink`'s records on `stream` until the capture ends.
pub fn run(stream: &UnixStream, sink: &CaptureSink) -> io::Result<StreamEnd> {
    let mut out = Vec::new();
    let mut reported_drops = 0;
    let mut writer = stream;
    loop {
        if client_left(stream, TURN_MS)? {
            return Ok(StreamEnd::ClientLeft);
        }
        let ended = sink.ended();
        sink.take(&mut out);
        if !out.is_empty() {
            writer.write_all(&out)?;
        }
        let dropped = sink.dropped();
        if dropped != reported_drops {
            writer.write_all(&sink.progress())?;
            reported_drops = dropped;
        }
        if ended {
            return Ok(StreamEnd::PortGone);
        }
    }
}
