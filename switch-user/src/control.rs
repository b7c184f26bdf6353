//! The daemon's end of the control socket. Every connection is identified
//! by its peer's credentials ([`crate::peer`]) and admitted within the
//! connection caps ([`crate::admission`]); an admitted one is served on its
//! own thread, one request after the other, each request arriving (and its
//! response being read) within the control timeout ([`crate::deadlines`]).
//! Requests are authorized by who sent them ([`crate::access`]); refusals
//! are counted. Descriptors are taken with `offload_port` only, and only
//! the connection that opened a port may offload it or reclaim it
//! ([`crate::vm_port`]). When a connection closes its ports are released
//! (an offloaded one stops touching the guest's memory first). A request
//! that changes the saved configuration is saved ([`crate::state`]) before
//! it is answered; such requests are carried out one at a time, so the
//! saved order is the order they took effect in. A connection whose
//! `capture` request is answered carries that capture from then on
//! ([`crate::capture::stream`]) and closes with it.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use switch_port::control::wire::{self, WireError};
use switch_port::error_chain::Chain;
use switch_port::names::PortName;
use switch_port::protocol::capture::{DEFAULT_SNAPLEN, MAX_SNAPLEN};
use switch_port::protocol::{
    AccessCounters, ErrorCode, HeaderError, MirrorInfo, Request, Response, DIR_REQUEST,
    DIR_RESPONSE, OFFLOAD_FDS, VERSION,
};

use crate::access::{AccessPolicy, Caller, Denied, Owner};
use crate::admission::{Admission, ConnectionLimits, Ticket};
use crate::capture::sink::CaptureSink;
use crate::capture::stream::{self, StreamEnd};
use crate::deadlines::{Deadlines, Watch, DEFAULT_CONTROL_TIMEOUT_SECS};
use crate::peer::PeerCred;
use crate::registry::{ControlError, PortSettings, Registry};
use crate::state::restore::{self, RestoreReport};
use crate::state::{snapshot, StateStore};
use crate::users;

/// How the control server treats its peers.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Who administers the daemon.
    pub policy: AccessPolicy,
    /// Connection caps.
    pub connections: ConnectionLimits,
    /// How long a request may take to arrive, and its response to be read.
    pub timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            policy: AccessPolicy::default(),
            connections: ConnectionLimits::default(),
            timeout: Duration::from_secs(DEFAULT_CONTROL_TIMEOUT_SECS),
        }
    }
}

#[derive(Default)]
struct Refusals {
    denied: AtomicU64,
    over_limit: AtomicU64,
    connections_refused: AtomicU64,
    timed_out: AtomicU64,
}

/// Shared state of the control server.
pub struct Server {
    registry: Arc<Registry>,
    policy: AccessPolicy,
    admission: Arc<Admission>,
    deadlines: Arc<Deadlines>,
    refusals: Refusals,
    started: Instant,
    handlers: Vec<Box<dyn ExtraHandler>>,
    state: Arc<StateStore>,
    /// Held while a request that changes the configuration is carried out
    /// and saved.
    changes: Mutex<()>,
}

/// Requests beyond the core ones (e.g. NIC attach) can be served by a handler.
pub trait ExtraHandler: Send + Sync {
    /// Handles `request` from `caller` (already authorized) if it is one of
    /// its own; returns `None` otherwise.
    fn handle(&self, request: &Request, caller: &Caller) -> Option<Response>;
}

fn error(code: ErrorCode, message: impl Into<String>) -> Response {
    Response::Error {
        code,
        message: message.into(),
    }
}

/// The answer to a message whose header is not valid: a version other than
/// ours gets [`ErrorCode::UnsupportedVersion`] naming both versions, anything
/// else [`ErrorCode::BadRequest`].
fn header_error(e: &WireError) -> Response {
    match e {
        WireError::Header(HeaderError::Version(theirs)) => error(
            ErrorCode::UnsupportedVersion,
            format!(
                "the client speaks control protocol version {theirs}, this daemon speaks \
                 version {VERSION}: use a client of version {VERSION}"
            ),
        ),
        other => error(ErrorCode::BadRequest, Chain(other).to_string()),
    }
}

impl From<ControlError> for Response {
    fn from(e: ControlError) -> Response {
        error(e.code(), Chain(&e).to_string())
    }
}

impl From<Denied> for Response {
    fn from(e: Denied) -> Response {
        error(ErrorCode::PermissionDenied, e.to_string())
    }
}

/// Refuses what only admins may do; what depends on a port's owner is
/// checked by the registry. Every request kind is listed, so a new one
/// must be classified here.
pub fn authorize(request: &Request, caller: &Caller) -> Result<(), Denied> {
    match request {
        Request::Attach { switch, iface, .. } => {
            caller.require_admin(format_args!("attach {iface} to {switch}"))
        }
        Request::Detach { switch, iface } => {
            caller.require_admin(format_args!("detach {iface} from {switch}"))
        }
        Request::MirrorAdd { switch, name, .. } => {
            caller.require_admin(format_args!("add mirror {name} to {switch}"))
        }
        Request::MirrorDel { switch, name } => {
            caller.require_admin(format_args!("delete mirror {name} of {switch}"))
        }
        Request::TunnelAdd { port, .. } => caller.require_admin(format_args!("add tunnel {port}")),
        Request::TunnelDel { port } => caller.require_admin(format_args!("delete tunnel {port}")),
        Request::OpenPort { .. }
        | Request::TunnelList {}
        | Request::OffloadPort { .. }
        | Request::ReclaimPort { .. }
        | Request::CreatePort { .. }
        | Request::DeletePort { .. }
        | Request::List {}
        | Request::Stats { .. }
        | Request::Fdb { .. }
        | Request::Status {}
        | Request::ShowConfig {}
        | Request::MirrorList {}
        | Request::Capture { .. } => Ok(()),
    }
}

/// What a connection holds: the ports it opened, and the capture it
/// carries once one started.
#[derive(Default)]
struct Session {
    opened: Vec<PortName>,
    capture: Option<Arc<CaptureSink>>,
}

impl Session {
    /// Refuses `what` on `port` unless this connection opened it: only the
    /// VMM that has a port may hand its data path over or take it back.
    fn require_opener(&self, port: &PortName, what: &str) -> Result<(), Response> {
        if self.opened.contains(port) {
            return Ok(());
        }
        Err(error(
            ErrorCode::PermissionDenied,
            format!("only the connection that opened {port} may {what} it"),
        ))
    }
}

/// Waits until `stream` has something to read (or is closed).
fn wait_readable(stream: &UnixStream) {
    let mut pfd = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, -1) };
        if n >= 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return;
        }
    }
}

impl Server {
    /// A server over `registry` saving its configuration in `state`.
    pub fn new(
        registry: Arc<Registry>,
        config: ServerConfig,
        handlers: Vec<Box<dyn ExtraHandler>>,
        state: Arc<StateStore>,
    ) -> Server {
        Server {
            registry,
            policy: config.policy,
            admission: Admission::new(config.connections),
            deadlines: Deadlines::new(config.timeout),
            refusals: Refusals::default(),
            started: Instant::now(),
            handlers,
            state,
            changes: Mutex::new(()),
        }
    }

    /// The registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Refusals so far.
    pub fn access_counters(&self) -> AccessCounters {
        let r = &self.refusals;
        AccessCounters {
            denied: r.denied.load(Ordering::Relaxed),
            over_limit: r.over_limit.load(Ordering::Relaxed),
            connections_refused: r.connections_refused.load(Ordering::Relaxed),
            timed_out: r.timed_out.load(Ordering::Relaxed),
        }
    }

    /// The answer to a stats request: the counters of `port` (or of every
    /// port `caller` may inspect), every switch's forwarding table and
    /// every forwarding thread. `vswitch stats` and the metrics endpoint
    /// both show this.
    pub fn stats(&self, port: Option<&PortName>, caller: &Caller) -> Response {
        match self.registry.stats(port, caller) {
            Ok(ports) => Response::Stats {
                uptime_secs: self.started.elapsed().as_secs_f64(),
                ports,
                access: self.access_counters(),
                switches: self.registry.switch_stats(),
                threads: self.registry.engine().thread_stats(),
            },
            Err(e) => e.into(),
        }
    }

    /// Periodic work: closes connections past their deadline.
    pub fn housekeeping(&self) {
        let reaped = self.deadlines.reap(Instant::now());
        if reaped > 0 {
            self.refusals
                .timed_out
                .fetch_add(reaped as u64, Ordering::Relaxed);
            log::debug!("closed {reaped} control connection(s) past the control timeout");
        }
    }

    /// Serves `stream` on a new thread, or refuses it when its peer has
    /// too many connections (or the daemon has).
    pub fn spawn(self: &Arc<Self>, stream: UnixStream) {
        let peer = match PeerCred::of(&stream) {
            Ok(p) => p,
            Err(e) => {
                log::warn!("closing a control connection: no peer credentials: {e}");
                return;
            }
        };
        let ticket = match self.admission.admit(peer.uid) {
            Ok(t) => t,
            Err(refused) => {
                self.refusals
                    .connections_refused
                    .fetch_add(1, Ordering::Relaxed);
                log::debug!("refused a connection from pid {}: {refused}", peer.pid);
                // Never block the accept loop on a peer that does not read.
                let _ = stream.set_nonblocking(true);
                let body =
                    serde_json::to_vec(&error(ErrorCode::LimitExceeded, refused.to_string()))
                        .unwrap_or_default();
                let _ = wire::send(&stream, DIR_RESPONSE, &body, &[]);
                return;
            }
        };
        let stream = Arc::new(stream);
        let watch = self.deadlines.watch(stream.clone());
        let server = self.clone();
        let spawned = std::thread::Builder::new()
            .name("control".into())
            .spawn(move || server.serve(&stream, &peer, ticket, watch));
        if let Err(e) = spawned {
            log::error!("cannot start a control thread: {e}");
        }
    }

    fn serve(&self, stream: &UnixStream, peer: &PeerCred, _ticket: Ticket, watch: Watch) {
        let caller = self.policy.caller(peer, users::user_name(peer.uid));
        let mut session = Session::default();
        loop {
            // The watch is armed: the request must arrive in time.
            let received = wire::receive(stream, DIR_REQUEST);
            watch.disarm();
            let (response, fds) = match received {
                Ok((payload, fds)) => self.handle(&payload, fds, &caller, &mut session),
                Err(WireError::Closed) => break,
                Err(WireError::Io(e)) => {
                    log::debug!("control connection error: {}", Chain(&e));
                    break;
                }
                Err(e @ WireError::Fds { .. }) => (
                    error(
                        ErrorCode::BadRequest,
                        format!(
                            "{}: an offload_port request carries {OFFLOAD_FDS}, any other \
                             none",
                            Chain(&e)
                        ),
                    ),
                    vec![],
                ),
                Err(e @ WireError::Header(_)) => {
                    log::warn!("closing control connection: {}", Chain(&e));
                    let body = serde_json::to_vec(&header_error(&e)).unwrap_or_default();
                    watch.arm();
                    let _ = wire::send(stream, DIR_RESPONSE, &body, &[]);
                    break;
                }
            };
            self.count_refusal(&response, &caller);
            let body = match serde_json::to_vec(&response) {
                Ok(b) => b,
                Err(e) => serde_json::to_vec(&error(ErrorCode::Internal, e.to_string()))
                    .unwrap_or_default(),
            };
            watch.arm();
            if wire::send(stream, DIR_RESPONSE, &body, &fds).is_err() {
                break;
            }
            if let Some(sink) = session.capture.take() {
                watch.disarm();
                self.stream_capture(stream, &sink);
                break;
            }
            // Idle between requests as long as the client likes; the next
            // one must then arrive whole in time.
            watch.disarm();
            wait_readable(stream);
            watch.arm();
        }
        // A capture whose start could not be answered leaves nothing either.
        if let Some(sink) = session.capture.take() {
            self.registry.end_capture(&sink);
        }
        for name in session.opened {
            log::info!("client of {name} left");
            self.registry.close_port(&name);
        }
    }

    /// Sends the capture `sink` on `stream` until it ends, then removes it.
    fn stream_capture(&self, stream: &UnixStream, sink: &Arc<CaptureSink>) {
        let end = stream::run(stream, sink);
        self.registry.end_capture(sink);
        let why = match end {
            Ok(StreamEnd::ClientLeft) => "the client left".to_owned(),
            Ok(StreamEnd::PortGone) => "the port went away".to_owned(),
            Ok(StreamEnd::ClientStalled) => format!(
                "the client read nothing for {} s",
                stream::STALL_LIMIT.as_secs()
            ),
            Err(e) => format!("writing failed: {e}"),
        };
        log::info!(
            "capture of {} ended ({why}): {} frames captured, {} dropped",
            sink.port(),
            sink.captured(),
            sink.dropped()
        );
    }

    fn count_refusal(&self, response: &Response, caller: &Caller) {
        let Response::Error { code, message } = response else {
            return;
        };
        let counter = match code {
            ErrorCode::PermissionDenied => &self.refusals.denied,
            ErrorCode::LimitExceeded => &self.refusals.over_limit,
            _ => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        log::info!("refused a request of {}: {message}", caller.owner());
    }

    fn handle(
        &self,
        payload: &[u8],
        fds: Vec<OwnedFd>,
        caller: &Caller,
        session: &mut Session,
    ) -> (Response, Vec<RawFd>) {
        let request: Request = match serde_json::from_slice(payload) {
            Ok(r) => r,
            Err(e) => {
                return (
                    error(ErrorCode::BadRequest, format!("malformed request: {e}")),
                    vec![],
                )
            }
        };
        if !fds.is_empty() && !matches!(request, Request::OffloadPort { .. }) {
            return (
                error(
                    ErrorCode::BadRequest,
                    format!(
                        "{} file descriptors attached: only offload_port carries any",
                        fds.len()
                    ),
                ),
                vec![],
            );
        }
        if let Err(denied) = authorize(&request, caller) {
            return (denied.into(), vec![]);
        }
        let _one_change = snapshot::is_change(&request).then(|| self.changes.lock());
        let (response, fds) = self.execute(&request, fds, caller, session);
        (self.save(&request, caller, response), fds)
    }

    /// Saves what the answered `request` of `caller` changed; a save that
    /// fails turns the answer into an error. Detaching an interface that is
    /// saved but not attached (it vanished), or deleting a saved tunnel that
    /// could not be restored, forgets it.
    fn save(&self, request: &Request, caller: &Caller, response: Response) -> Response {
        if let Response::Error { code, .. } = &response {
            match request {
                Request::Detach { switch, iface }
                    if *code == ErrorCode::NoSuchPort
                        && self.state.has_attachment(switch, iface) =>
                {
                    log::info!(
                        "forgetting the saved attachment of {iface} to {switch} (not in effect)"
                    );
                }
                Request::TunnelDel { port }
                    if *code == ErrorCode::NoSuchPort && self.state.has_tunnel(port) =>
                {
                    log::info!("forgetting the saved tunnel {port} (not in effect)");
                }
                _ => return response,
            }
        }
        match self.state.record(request, caller.owner()) {
            Ok(()) if matches!(response, Response::Error { .. }) => Response::Done,
            Ok(()) => response,
            Err(e) => {
                log::error!("{}", Chain(&e));
                error(
                    ErrorCode::Internal,
                    format!("the change is in effect but was not saved: {}", Chain(&e)),
                )
            }
        }
    }

    /// Restores the saved configuration, each item on behalf of its owner.
    pub fn restore(&self) -> RestoreReport {
        let saved = self.state.snapshot();
        restore::restore(&saved, |request, owner| {
            let caller = Caller::on_behalf_of(Owner {
                uid: owner.uid,
                name: users::user_name(owner.uid)
                    .or_else(|| owner.name.clone())
                    .map(Into::into),
            });
            self.execute(request, Vec::new(), &caller, &mut Session::default())
                .0
        })
    }

    /// Carries out an authorized request, which came with the descriptors
    /// `fds` (none but for an offload).
    fn execute(
        &self,
        request: &Request,
        fds: Vec<OwnedFd>,
        caller: &Caller,
        session: &mut Session,
    ) -> (Response, Vec<RawFd>) {
        let reg = &self.registry;
        let response = match request {
            Request::OffloadPort {
                port,
                memory_size,
                handover,
            } => match session.require_opener(port, "offload") {
                Err(refused) => refused,
                Ok(()) => reg
                    .offload_port(port, *memory_size, handover, fds)
                    .map_or_else(Into::into, |_| Response::Done),
            },
            Request::ReclaimPort { port } => match session.require_opener(port, "reclaim") {
                Err(refused) => refused,
                Ok(()) => match reg.reclaim_port(port) {
                    Ok(hand_back) => Response::Reclaimed {
                        port: port.clone(),
                        hand_back,
                    },
                    Err(e) => e.into(),
                },
            },
            Request::OpenPort {
                port,
                ring_size,
                buf_size,
                mac,
            } => {
                return match reg.open_port(port, *ring_size, *buf_size, *mac, caller) {
                    Ok(open) => {
                        session.opened.push(port.clone());
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
                mac,
                max_macs,
                storm_pps,
                vlan,
            } => reg
                .create_port(
                    port,
                    *ring_size,
                    *buf_size,
                    PortSettings {
                        mac: *mac,
                        max_macs: *max_macs,
                        storm_pps: *storm_pps,
                    },
                    vlan.as_ref(),
                    caller,
                )
                .map_or_else(Into::into, |_| Response::Done),
            Request::DeletePort { port } => reg
                .delete_port(port, caller)
                .map_or_else(Into::into, |_| Response::Done),
            Request::List {} => Response::List {
                switches: reg.list(),
            },
            Request::Stats { port } => self.stats(port.as_ref(), caller),
            Request::Fdb { switch } => match reg.fdb(switch, caller) {
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
            Request::ShowConfig {} => Response::Config {
                commands: self.state.snapshot().commands(),
            },
            Request::Capture { port, dir, snaplen } => {
                let snaplen = snaplen.unwrap_or(DEFAULT_SNAPLEN);
                if !(1..=MAX_SNAPLEN).contains(&snaplen) {
                    return (
                        error(
                            ErrorCode::BadConfig,
                            format!("snap length {snaplen} is not in 1..={MAX_SNAPLEN}"),
                        ),
                        vec![],
                    );
                }
                if session.capture.is_some() || !session.opened.is_empty() {
                    return (
                        error(
                            ErrorCode::BadRequest,
                            "a capture needs a connection of its own",
                        ),
                        vec![],
                    );
                }
                match reg.start_capture(port, *dir, snaplen, caller) {
                    Ok((sink, kind)) => {
                        log::info!("capture of {port} ({}) started", dir.as_str());
                        session.capture = Some(sink);
                        Response::CaptureStarted {
                            port: port.clone(),
                            kind,
                            snaplen,
                        }
                    }
                    Err(e) => e.into(),
                }
            }
            Request::MirrorAdd {
                switch,
                name,
                src,
                dir,
                dst,
            } => reg
                .add_mirror(MirrorInfo {
                    switch: switch.clone(),
                    name: name.clone(),
                    src: src.clone(),
                    dir: *dir,
                    dst: dst.clone(),
                })
                .map_or_else(Into::into, |_| Response::Done),
            Request::MirrorDel { switch, name } => reg
                .remove_mirror(switch, name)
                .map_or_else(Into::into, |_| Response::Done),
            Request::MirrorList {} => Response::Mirrors {
                mirrors: reg.mirrors(),
            },
            other => self
                .handlers
                .iter()
                .find_map(|h| h.handle(other, caller))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_version_gets_a_typed_error_naming_both() {
        for theirs in [0, VERSION + 1] {
            let e = WireError::Header(HeaderError::Version(theirs));
            let Response::Error { code, message } = header_error(&e) else {
                panic!("not an error");
            };
            assert_eq!(code, ErrorCode::UnsupportedVersion);
            assert!(message.contains(&format!("version {theirs}")), "{message}");
            assert!(message.contains(&format!("version {VERSION}")), "{message}");
        }
        let magic = WireError::Header(HeaderError::Magic);
        assert!(matches!(
            header_error(&magic),
            Response::Error {
                code: ErrorCode::BadRequest,
                ..
            }
        ));
    }

    #[test]
    fn attach_and_detach_need_an_admin() {
        let nobody = Caller::nobody();
        let attach: Request =
            serde_json::from_str(r#"{"request":"attach","switch":"vale0","iface":"eth0"}"#)
                .unwrap();
        let e = authorize(&attach, &nobody).unwrap_err();
        assert_eq!(
            e.to_string(),
            "permission denied: uid 65534 may not attach eth0 to vale0 (needs root)"
        );
        let detach: Request =
            serde_json::from_str(r#"{"request":"detach","switch":"vale0","iface":"eth0"}"#)
                .unwrap();
        assert!(authorize(&detach, &nobody).is_err());
        assert!(authorize(&attach, &Caller::root()).is_ok());
        assert!(authorize(&Request::List {}, &nobody).is_ok());
    }

    #[test]
    fn mirrors_need_an_admin_and_captures_the_ports_owner() {
        let nobody = Caller::nobody();
        let add: Request = serde_json::from_str(
            r#"{"request":"mirror_add","switch":"vale0","name":"m","src":["vale0:a"],"dst":"vale0:b"}"#,
        )
        .unwrap();
        let e = authorize(&add, &nobody).unwrap_err();
        assert_eq!(
            e.to_string(),
            "permission denied: uid 65534 may not add mirror m to vale0 (needs root)"
        );
        let del: Request =
            serde_json::from_str(r#"{"request":"mirror_del","switch":"vale0","name":"m"}"#)
                .unwrap();
        assert!(authorize(&del, &nobody).is_err());
        assert!(authorize(&add, &Caller::root()).is_ok());
        assert!(authorize(&Request::MirrorList {}, &nobody).is_ok());
        // Whether a capture is allowed depends on the port's owner: the
        // registry decides (tested end to end).
        let capture: Request =
            serde_json::from_str(r#"{"request":"capture","port":"vale0:a"}"#).unwrap();
        assert!(authorize(&capture, &nobody).is_ok());
    }
}
