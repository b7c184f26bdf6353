//! A small HTTP/1.1 server for scrapers: `GET /metrics` (and `HEAD`)
//! answers the text the caller renders; any other path is 404, another
//! method 405, a request that is not HTTP 400, one longer than the limit
//! 431, one that does not arrive in time 408. One connection is served at
//! a time and closed after its response (`Connection: close`); a
//! connection gets at most [`Limits::deadline`] to send its request and
//! read the answer, so a client that stalls holds the server that long at
//! most, and never anything else (the server runs on its own thread).
//!
//! The system calls it makes once bound are few (`poll`, `accept4`,
//! `ioctl(FIONBIO)`, `recvfrom`, `sendto`, `shutdown`, `close`), so that a
//! seccomp filter can allow exactly them.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

/// Bounds on one connection.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Longest request head (request line and headers) read.
    pub max_request_bytes: usize,
    /// Time a connection has to send its request and read the response.
    pub deadline: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_request_bytes: 8192,
            deadline: Duration::from_secs(5),
        }
    }
}

/// How a connection ended (for logs and tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The metrics were sent (status 200).
    Served,
    /// An error status was sent (404, 405, 400, 431, 408).
    Refused(u16),
    /// The client went away, or did not read the answer in time.
    Abandoned,
}

/// A bound listener.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    limits: Limits,
}

impl Server {
    /// Listens on `addr` (port 0: any free port).
    pub fn bind(addr: SocketAddr, limits: Limits) -> io::Result<Server> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(Server { listener, limits })
    }

    /// The address listened on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves connections one after the other until `stop` (a descriptor,
    /// e.g. an eventfd) becomes readable; `render` makes the text of each
    /// scrape, `log` hears how each connection ended.
    pub fn run(
        &self,
        stop: RawFd,
        mut render: impl FnMut() -> String,
        mut log: impl FnMut(&SocketAddr, Outcome),
    ) {
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: self.listener.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: stop,
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: poll on two valid pollfds.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, 1000) };
            if n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                // Nothing sensible to do but retry a little later.
                back_off(stop);
                continue;
            }
            if fds[1].revents != 0 {
                return;
            }
            if fds[0].revents == 0 {
                continue;
            }
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    let outcome = self.serve(stream, &mut render);
                    log(&peer, outcome);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // Out of descriptors, a network error pending on the new
                // connection (Linux reports those from accept) and the
                // like: do not spin.
                Err(_) => back_off(stop),
            }
        }
    }

    /// Answers one connection.
    pub fn serve(&self, mut stream: TcpStream, render: impl FnOnce() -> String) -> Outcome {
        let deadline = Instant::now() + self.limits.deadline;
        if stream.set_nonblocking(true).is_err() {
            return Outcome::Abandoned;
        }
        let head = match read_head(&mut stream, self.limits.max_request_bytes, deadline) {
            Ok(head) => head,
            Err(HeadError::Gone) => return Outcome::Abandoned,
            Err(HeadError::TooLong) => return refuse(&mut stream, 431, deadline),
            // A moment more to tell it so.
            Err(HeadError::Timeout) => {
                let grace = Instant::now() + Duration::from_millis(500);
                return refuse(&mut stream, 408, grace);
            }
        };
        let Some((method, target)) = request_line(&head) else {
            return refuse(&mut stream, 400, deadline);
        };
        let head_only = match method {
            "GET" => false,
            "HEAD" => true,
            _ => return refuse(&mut stream, 405, deadline),
        };
        let path = target.split('?').next().unwrap_or("");
        if path != "/metrics" {
            return refuse(&mut stream, 404, deadline);
        }
        let body = render();
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            crate::CONTENT_TYPE,
            body.len()
        );
        let mut bytes = response.into_bytes();
        if !head_only {
            bytes.extend_from_slice(body.as_bytes());
        }
        match write_all(&mut stream, &bytes, deadline) {
            Ok(()) => Outcome::Served,
            Err(_) => Outcome::Abandoned,
        }
    }
}

/// Waits 100 ms, or less if `stop` becomes readable. A `poll` rather than
/// a sleep: the server's system calls stay the few the module names (a
/// seccomp filter may allow only those).
fn back_off(stop: RawFd) {
    let mut pfd = libc::pollfd {
        fd: stop,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, 100) };
}

enum HeadError {
    Gone,
    TooLong,
    Timeout,
}

/// Waits until `stream` is ready for `events` or `deadline` passes.
fn wait(stream: &TcpStream, events: libc::c_short, deadline: Instant) -> bool {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let mut pfd = libc::pollfd {
            fd: stream.as_raw_fd(),
            events,
            revents: 0,
        };
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n > 0 {
            return true;
        }
        if n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return false;
        }
    }
}

/// Reads up to the blank line that ends the request head.
fn read_head(stream: &mut TcpStream, max: usize, deadline: Instant) -> Result<String, HeadError> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = head_end(&buf) {
            buf.truncate(end);
            return Ok(String::from_utf8_lossy(&buf).into_owned());
        }
        if buf.len() > max {
            return Err(HeadError::TooLong);
        }
        if !wait(stream, libc::POLLIN, deadline) {
            return Err(HeadError::Timeout);
        }
        match stream.read(&mut chunk) {
            Ok(0) if buf.is_empty() => return Err(HeadError::Gone),
            // A head cut short: answer what there is (it fails to parse,
            // or is a complete request line without headers).
            Ok(0) => return Ok(String::from_utf8_lossy(&buf).into_owned()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return Err(HeadError::Gone),
        }
    }
}

/// Where the head ends (`\r\n\r\n` or, tolerated, `\n\n`).
fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = buf.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The method and target of an HTTP/1.x request line.
fn request_line(head: &str) -> Option<(&str, &str)> {
    let line = head.lines().next()?.trim_end_matches('\r');
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_uppercase());
    (parts.next().is_none()
        && token(method)
        && target.starts_with('/')
        && matches!(version, "HTTP/1.0" | "HTTP/1.1"))
    .then_some((method, target))
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    }
}

/// Sends an error status with a one-line body.
fn refuse(stream: &mut TcpStream, status: u16, deadline: Instant) -> Outcome {
    let text = reason(status);
    let allow = if status == 405 {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let response = format!(
        "HTTP/1.1 {status} {text}\r\n{allow}Content-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{text}\n",
        text.len() + 1
    );
    if write_all(stream, response.as_bytes(), deadline).is_err() {
        return Outcome::Abandoned;
    }
    drain(stream);
    Outcome::Refused(status)
}

/// Closes gently after an error: closing with unread input would reset the
/// connection, and the client could lose the answer. Says it is done
/// writing, then reads and discards what the client still sends, for a
/// moment and a bounded amount.
fn drain(stream: &mut TcpStream) {
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let until = Instant::now() + Duration::from_millis(500);
    let mut chunk = [0u8; 4096];
    let mut left: usize = 1 << 20;
    while left > 0 && wait(stream, libc::POLLIN, until) {
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => left = left.saturating_sub(n),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return,
        }
    }
}

fn write_all(stream: &mut TcpStream, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
    while !bytes.is_empty() {
        if !wait(stream, libc::POLLOUT, deadline) {
            return Err(io::ErrorKind::TimedOut.into());
        }
        match stream.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn exchange(server: &Server, request: &[u8]) -> (Outcome, String) {
        let addr = server.local_addr().unwrap();
        let mut client = TcpStream::connect(addr).unwrap();
        client.write_all(request).unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let (stream, _) = loop {
            match server.listener.accept() {
                Ok(s) => break s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(e) => panic!("{e}"),
            }
        };
        let outcome = server.serve(stream, || "m_total 1\n".into());
        let mut answer = String::new();
        client.read_to_string(&mut answer).unwrap();
        (outcome, answer)
    }

    #[test]
    fn answers_and_refuses() {
        let server = Server::bind(
            (Ipv4Addr::LOCALHOST, 0).into(),
            Limits {
                max_request_bytes: 256,
                deadline: Duration::from_secs(5),
            },
        )
        .unwrap();
        let (outcome, answer) = exchange(&server, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(outcome, Outcome::Served);
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.contains("Content-Type: text/plain; version=0.0.4"));
        assert!(answer.ends_with("\r\n\r\nm_total 1\n"), "{answer}");
        let (_, head) = exchange(&server, b"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n");
        assert!(head.ends_with("Connection: close\r\n\r\n"), "{head}");
        for (request, status) in [
            (&b"GET / HTTP/1.1\r\n\r\n"[..], 404),
            (b"POST /metrics HTTP/1.1\r\n\r\n", 405),
            (b"\x16\x03\x01garbage\r\n\r\n", 400),
            (b"GET /metrics SPDY/3\r\n\r\n", 400),
            (b"GET /metrics HTTP/1.1 x", 400),
            (&[b'a'; 1000][..], 431),
        ] {
            let (outcome, answer) = exchange(&server, request);
            assert_eq!(outcome, Outcome::Refused(status), "{answer}");
            assert!(
                answer.starts_with(&format!("HTTP/1.1 {status} ")),
                "{answer}"
            );
        }
        let (outcome, _) = exchange(&server, b"");
        assert_eq!(outcome, Outcome::Abandoned);
    }

    #[test]
    fn a_silent_client_times_out() {
        let server = Server::bind(
            (Ipv4Addr::LOCALHOST, 0).into(),
            Limits {
                max_request_bytes: 256,
                deadline: Duration::from_millis(200),
            },
        )
        .unwrap();
        let mut client = TcpStream::connect(server.local_addr().unwrap()).unwrap();
        client.write_all(b"GET /met").unwrap();
        let (stream, _) = loop {
            if let Ok(s) = server.listener.accept() {
                break s;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        assert_eq!(server.serve(stream, String::new), Outcome::Refused(408));
    }
}
