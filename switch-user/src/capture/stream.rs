//! The daemon's writer of one capture: it sends what the forwarding threads
//! buffered over the capture's control connection, every few milliseconds,
//! until the client closes the connection (or sends anything), the port
//! goes away, or a write fails. A client that reads slowly only slows this
//! writer; the buffer then fills and the forwarding threads drop and count.
//! A client that stops reading altogether ends its capture after
//! [`STALL_LIMIT`], so it cannot hold a connection thread and a capture
//! slot for ever.

use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::sink::CaptureSink;

/// How long the writer waits between turns, in milliseconds.
const TURN_MS: i32 = 5;

/// How long one write may wait for a client that does not read.
pub const STALL_LIMIT: Duration = Duration::from_secs(10);

/// Why a capture's stream ended.
#[derive(Debug, PartialEq, Eq)]
pub enum StreamEnd {
    /// The client closed the connection (or wrote to it).
    ClientLeft,
    /// The captured port went away.
    PortGone,
    /// The client stopped reading: a write waited [`STALL_LIMIT`].
    ClientStalled,
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
    run_with_stall_limit(stream, sink, STALL_LIMIT)
}

/// [`run`] with another stall limit.
fn run_with_stall_limit(
    stream: &UnixStream,
    sink: &CaptureSink,
    stall_limit: Duration,
) -> io::Result<StreamEnd> {
    stream.set_write_timeout(Some(stall_limit))?;
    match send_until_end(stream, sink) {
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Ok(StreamEnd::ClientStalled)
        }
        other => other,
    }
}

fn send_until_end(stream: &UnixStream, sink: &CaptureSink) -> io::Result<StreamEnd> {
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use switch_port::names::PortName;
    use switch_port::protocol::capture::DIR_RX;

    use super::*;
    use crate::bridge::port::FrameRef;
    use switch_port::protocol::TapDirection;

    #[test]
    fn a_client_that_stops_reading_ends_its_capture() {
        let (daemon_side, _client_side) = UnixStream::pair().unwrap();
        let name = PortName::parse("vale0:a").unwrap();
        let sink = CaptureSink::new(name, TapDirection::Both, 1514, 4 << 20);
        let data = [7u8; 1514];
        let frame = FrameRef {
            ptr: data.as_ptr(),
            len: data.len() as u32,
            readable: data.len() as u32,
        };
        // More than any socket buffer holds: the writer must wait.
        let which: Vec<u16> = vec![0; 1000];
        for _ in 0..2 {
            sink.push(DIR_RX, 1, &[frame], &which);
        }
        let start = Instant::now();
        let end = run_with_stall_limit(&daemon_side, &sink, Duration::from_millis(200)).unwrap();
        assert_eq!(end, StreamEnd::ClientStalled);
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
