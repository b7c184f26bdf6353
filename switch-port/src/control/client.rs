//! The client end of the control socket: connect, send a request, read the
//! response (and the fds of an opened port). Reads are bounded
//! ([`DEFAULT_TIMEOUT`], `SO_RCVTIMEO` set at connect time): a daemon that
//! accepts but never answers becomes [`ClientError::Timeout`].

use std::fmt;
use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use super::wire::{self, WireError};
use crate::protocol::{ErrorCode, Request, Response, DIR_REQUEST, DIR_RESPONSE};

/// Environment variable naming the daemon's socket.
pub const SOCKET_ENV: &str = "VSWITCH_SOCKET";
/// Socket used when neither `--socket` nor the environment names one.
pub const DEFAULT_SOCKET: &str = "/run/vswitch/vswitch.sock";

/// The socket path: the explicit one, else `VSWITCH_SOCKET`, else the default.
pub fn socket_path(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_owned();
    }
    match std::env::var_os(SOCKET_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_SOCKET),
    }
}

/// How long [`Connection::connect`] lets each read of a response wait.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A duration as an error message shows it: `10 s`, `200 ms`.
struct Wait(Duration);

impl fmt::Display for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.subsec_nanos() == 0 {
            write!(f, "{} s", d.as_secs())
        } else if d.subsec_nanos().is_multiple_of(1_000_000) {
            write!(f, "{} ms", d.as_millis())
        } else {
            write!(f, "{d:?}")
        }
    }
}

/// A control request failed.
#[derive(Debug, Error)]
pub enum ClientError {
    /// Nobody listens on the socket.
    #[error("no vswitch daemon at {path} (start one with `vswitch daemon --socket {path}`, or point --socket / VSWITCH_SOCKET at the right one)")]
    NoDaemon {
        /// Where we looked.
        path: String,
        /// Why the connection failed.
        source: io::Error,
    },
    /// The socket exists but this user may not connect to it.
    #[error("permission denied connecting to the vswitch daemon at {path}: the control socket admits root and the members of its group (see `ls -l {path}`; the daemon sets them with --socket-group and --socket-mode)")]
    Forbidden {
        /// The socket.
        path: String,
        /// The refusal (EACCES or EPERM).
        source: io::Error,
    },
    /// The daemon accepted the connection but did not answer in time (the
    /// connection is then out of step: drop it).
    #[error("the vswitch daemon at {path} did not answer within {}", Wait(*.after))]
    Timeout {
        /// The socket.
        path: String,
        /// How long one read waited.
        after: Duration,
    },
    /// The connection broke or a message was malformed.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The daemon answered with something that is not JSON of this protocol.
    #[error("malformed response from the daemon: {0}")]
    BadResponse(String),
    /// The daemon refused the request.
    #[error("{message}")]
    Refused {
        /// What kind of failure.
        code: ErrorCode,
        /// The daemon's explanation.
        message: String,
    },
}

/// An open control connection.
#[derive(Debug)]
pub struct Connection {
    stream: UnixStream,
    path: PathBuf,
    timeout: Option<Duration>,
}

impl Connection {
    /// Connects to the daemon at `path`; each read of a response waits at
    /// most [`DEFAULT_TIMEOUT`].
    pub fn connect(path: &Path) -> Result<Connection, ClientError> {
        Connection::connect_with_timeout(path, Some(DEFAULT_TIMEOUT))
    }

    /// Connects to the daemon at `path`; each read of a response waits at
    /// most `timeout` (`None`, or zero, waits forever). The timeout is the
    /// socket's `SO_RCVTIMEO`, set here, so later calls need no new
    /// system call (the VMM's sandbox relies on that).
    pub fn connect_with_timeout(
        path: &Path,
        timeout: Option<Duration>,
    ) -> Result<Connection, ClientError> {
        let timeout = timeout.filter(|t| !t.is_zero());
        let stream = UnixStream::connect(path).map_err(|source| {
            let path = path.display().to_string();
            if source.kind() == io::ErrorKind::PermissionDenied {
                ClientError::Forbidden { path, source }
            } else {
                ClientError::NoDaemon { path, source }
            }
        })?;
        if timeout.is_some() {
            stream
                .set_read_timeout(timeout)
                .map_err(|e| ClientError::Wire(e.into()))?;
        }
        Ok(Connection {
            stream,
            path: path.to_owned(),
            timeout,
        })
    }

    /// The socket path this connection uses.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends `request` and returns the response with any fds. An error
    /// response becomes [`ClientError::Refused`].
    pub fn call(&mut self, request: &Request) -> Result<(Response, Vec<OwnedFd>), ClientError> {
        self.call_with_fds(request, &[])
    }

    /// [`Connection::call`] with the descriptors `fds` attached to the
    /// request (an `offload_port`'s).
    pub fn call_with_fds(
        &mut self,
        request: &Request,
        fds: &[RawFd],
    ) -> Result<(Response, Vec<OwnedFd>), ClientError> {
        let payload =
            serde_json::to_vec(request).map_err(|e| ClientError::BadResponse(e.to_string()))?;
        wire::send(&self.stream, DIR_REQUEST, &payload, fds)?;
        let (payload, fds) = self.receive()?;
        let response: Response = serde_json::from_slice(&payload)
            .map_err(|e| ClientError::BadResponse(e.to_string()))?;
        match response {
            Response::Error { code, message } => Err(ClientError::Refused { code, message }),
            other => Ok((other, fds)),
        }
    }

    /// Sends raw bytes as one request payload (for robustness tests).
    pub fn call_raw(&mut self, payload: &[u8]) -> Result<Response, ClientError> {
        wire::send(&self.stream, DIR_REQUEST, payload, &[])?;
        let (payload, _fds) = self.receive()?;
        serde_json::from_slice(&payload).map_err(|e| ClientError::BadResponse(e.to_string()))
    }

    /// The underlying stream (for robustness tests that write garbage).
    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    /// Reads one response; a read that waited out the timeout (`EAGAIN`
    /// under `SO_RCVTIMEO`) becomes [`ClientError::Timeout`].
    fn receive(&self) -> Result<(Vec<u8>, Vec<OwnedFd>), ClientError> {
        match (wire::receive(&self.stream, DIR_RESPONSE), self.timeout) {
            (Err(WireError::Io(e)), Some(after))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err(ClientError::Timeout {
                    path: self.path.display().to_string(),
                    after,
                })
            }
            (other, _) => Ok(other?),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;
    use std::time::Instant;

    use super::*;
    use crate::protocol::Request;

    /// A directory removed when dropped (also when the test fails).
    struct ScratchDir(std::path::PathBuf);

    impl Drop for ScratchDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A daemon that accepts and never answers: the call ends with
    /// [`ClientError::Timeout`] after about the timeout, not never.
    #[test]
    fn a_silent_daemon_times_out() {
        let dir = ScratchDir(
            std::env::temp_dir().join(format!("switch-port-silent-{}", std::process::id())),
        );
        let _ = std::fs::remove_dir_all(&dir.0);
        std::fs::create_dir_all(&dir.0).unwrap();
        let socket = dir.0.join("silent.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let timeout = Duration::from_millis(200);
        let mut conn = Connection::connect_with_timeout(&socket, Some(timeout)).unwrap();
        // The connection is queued on the listener: accept it, read nothing, answer nothing.
        let (_silent, _) = listener.accept().unwrap();
        let started = Instant::now();
        let result = conn.call(&Request::Status {});
        let waited = started.elapsed();
        match result {
            Err(ClientError::Timeout { after, .. }) => assert_eq!(after, timeout),
            other => panic!("expected a timeout, got {other:?}"),
        }
        // It did wait (not an immediate failure), and not much longer.
        assert!(waited >= timeout / 2, "returned after {waited:?}");
        assert!(waited < Duration::from_secs(10), "waited {waited:?}");
        let message = ClientError::Timeout {
            path: "s.sock".into(),
            after: DEFAULT_TIMEOUT,
        }
        .to_string();
        assert_eq!(
            message,
            "the vswitch daemon at s.sock did not answer within 10 s"
        );
    }

    #[test]
    fn waits_read_as_seconds_or_milliseconds() {
        assert_eq!(Wait(Duration::from_secs(10)).to_string(), "10 s");
        assert_eq!(Wait(Duration::from_millis(200)).to_string(), "200 ms");
        assert_eq!(Wait(Duration::from_micros(1500)).to_string(), "1.5ms");
    }
}
