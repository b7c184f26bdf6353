//! The client end of the control socket: connect, send a request, read the
//! response (and the fds of an opened port).

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

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
}

impl Connection {
    /// Connects to the daemon at `path`.
    pub fn connect(path: &Path) -> Result<Connection, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| {
            let path = path.display().to_string();
            if source.kind() == io::ErrorKind::PermissionDenied {
                ClientError::Forbidden { path, source }
            } else {
                ClientError::NoDaemon { path, source }
            }
        })?;
        Ok(Connection {
            stream,
            path: path.to_owned(),
        })
    }

    /// The socket path this connection uses.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends `request` and returns the response with any fds. An error
    /// response becomes [`ClientError::Refused`].
    pub fn call(&mut self, request: &Request) -> Result<(Response, Vec<OwnedFd>), ClientError> {
        let payload =
            serde_json::to_vec(request).map_err(|e| ClientError::BadResponse(e.to_string()))?;
        wire::send(&self.stream, DIR_REQUEST, &payload, &[])?;
        let (payload, fds) = wire::receive(&self.stream, DIR_RESPONSE)?;
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
        let (payload, _fds) = wire::receive(&self.stream, DIR_RESPONSE)?;
        serde_json::from_slice(&payload).map_err(|e| ClientError::BadResponse(e.to_string()))
    }

    /// The underlying stream (for robustness tests that write garbage).
    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }
}
