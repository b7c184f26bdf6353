//! The daemon's end of the control socket: one thread per connection reads
//! requests, answers each, and releases the connection's ports when it closes.

use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use switch_port::control::wire::{self, WireError};
use switch_port::error_chain::Chain;
use switch_port::names::PortName;
use switch_port::protocol::{ErrorCode, Request, Response, DIR_REQUEST, DIR_RESPONSE, VERSION};

use crate::registry::{ControlError, Registry};

/// Most control connections served at once.
pub const MAX_CONNECTIONS: usize = 1024;

/// Shared state of the control server.
pub struct Server {
    registry: Arc<Registry>,
    connections: AtomicUsize,
    started: Instant,
    handlers: Vec<Box<dyn ExtraHandler>>,
}

/// Requests beyond the core ones (e.g. NIC attach) can be served by a handler.
pub trait ExtraHandler: Send + Sync {
    /// Handles `request` if it is one of its own; returns `None` otherwise.
    fn handle(&self, request: &Request) -> Option<Response>;
}

fn error(code: ErrorCode, message: impl Into<String>) -> Response {
    Response::Error {
        code,
        message: message.into(),
    }
}

impl From<ControlError> for Response {
    fn from(e: ControlError) -> Response {
        error(e.code(), Chain(&e).to_string())
    }
}

impl Server {
    /// A server over `registry`.
    pub fn new(registry: Arc<Registry>, handlers: Vec<Box<dyn ExtraHandler>>) -> Server {
        Server {
            registry,
            connections: AtomicUsize::new(0),
            started: Instant::now(),
            handlers,
        }
    }

    /// The registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Serves `stream` on a new thread (or refuses it when there are too many).
    pub fn spawn(self: &Arc<Self>, stream: UnixStream) {
        if self.connections.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            self.connections.fetch_sub(1, Ordering::AcqRel);
            let body =
                serde_json::to_vec(&error(ErrorCode::Internal, "too many control connections"))
                    .unwrap_or_default();
            let _ = wire::send(&stream, DIR_RESPONSE, &body, &[]);
            return;
        }
        let server = self.clone();
        let spawned = std::thread::Builder::new()
            .name("control".into())
            .spawn(move || {
                server.serve(stream);
                server.connections.fetch_sub(1, Ordering::AcqRel);
            });
        if let Err(e) = spawned {
            log::error!("cannot start a control thread: {e}");
            self.connections.fetch_sub(1, Ordering::AcqRel);
        }
    }

    fn serve(&self, stream: UnixStream) {
        let mut opened: Vec<PortName> = Vec::new();
        loop {
            let (response, fds) = match wire::receive(&stream, DIR_REQUEST) {
                Ok((payload, _unwanted_fds)) => self.handle(&payload, &mut opened),
                Err(WireError::Closed) => break,
                Err(WireError::Io(e)) => {
                    log::debug!("control connection error: {}", Chain(&e));
                    break;
                }
                Err(e @ WireError::Fds { .. }) => (
                    error(
                        ErrorCode::BadRequest,
                        format!("{}: the daemon accepts no file descriptors", Chain(&e)),
                    ),
                    vec![],
                ),
                Err(e @ WireError::Header(_)) => {
                    log::warn!("closing control connection: {}", Chain(&e));
                    let body =
                        serde_json::to_vec(&error(ErrorCode::BadRequest, Chain(&e).to_string()))
                            .unwrap_or_default();
                    let _ = wire::send(&stream, DIR_RESPONSE, &body, &[]);
                    break;
                }
            };
            let body = match serde_json::to_vec(&response) {
                Ok(b) => b,
                Err(e) => serde_json::to_vec(&error(ErrorCode::Internal, e.to_string()))
                    .unwrap_or_default(),
            };
            if wire::send(&stream, DIR_RESPONSE, &body, &fds).is_err() {
                break;
            }
        }
        for name in opened {
            log::info!("client of {name} left");
            self.registry.close_port(&name);
        }
    }

    fn handle(&self, payload: &[u8], opened: &mut Vec<PortName>) -> (Response, Vec<RawFd>) {
        let request: Request = match serde_json::from_slice(payload) {
            Ok(r) => r,
            Err(e) => {
                return (
                    error(ErrorCode::BadRequest, format!("malformed request: {e}")),
                    vec![],
                )
            }
        };
        let reg = &self.registry;
        let response = match &request {
            Request::OpenPort {
                port,
                ring_size,
                buf_size,
            } => {
                return match reg.open_port(port, *ring_size, *buf_size) {
                    Ok(open) => {
                        opened.push(port.clone());
                        let layout = *open.shm.region().layout();
                        let fds = vec![
                            open.shm.region().fd().as_raw_fd(),
                            open.shm.to_switch().raw(),
                            open.shm.to_client().raw(),
                        ];
                        // The fds stay valid: the port lives at least as long
                        // as this connection holds it open.
                        (
                            Response::PortOpened {
                                port: port.clone(),
                                ring_size: layout.ring_size,
                                buf_size: layout.buf_size,
                                region_len: layout.region_len as u64,
                                created: open.created,
                            },
                            fds,
                        )
                    }
                    Err(e) => (e.into(), vec![]),
                };
            }
            Request::CreatePort {
                port,
                ring_size,
                buf_size,
            } => reg
                .create_port(port, *ring_size, *buf_size)
                .map_or_else(Into::into, |_| Response::Done),
            Request::DeletePort { port } => reg
                .delete_port(port)
                .map_or_else(Into::into, |_| Response::Done),
            Request::List {} => Response::List {
                switches: reg.list(),
            },
            Request::Stats { port } => match reg.stats(port.as_ref()) {
                Ok(ports) => Response::Stats {
                    uptime_secs: self.started.elapsed().as_secs_f64(),
                    ports,
                },
                Err(e) => e.into(),
            },
            Request::Fdb { switch } => match reg.fdb(switch) {
                Ok((entries, stats)) => Response::Fdb {
                    switch: switch.clone(),
                    entries,
                    stats,
                },
                Err(e) => e.into(),
            },
            Request::Status {} => Response::Status {
                pid: std::process::id(),
                version: VERSION,
                threads: reg.engine().threads() as u32,
                uptime_secs: self.started.elapsed().as_secs_f64(),
            },
            other => self
                .handlers
                .iter()
                .find_map(|h| h.handle(other))
                .unwrap_or_else(|| {
                    error(
                        ErrorCode::BadRequest,
                        "request not supported by this daemon",
                    )
                }),
        };
        (response, vec![])
    }
}
