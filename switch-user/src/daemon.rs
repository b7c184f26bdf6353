//! The daemon: owns the control socket (one daemon per socket, enforced with
//! a lock file), serves connections, runs housekeeping once a second, and
//! exits cleanly on SIGINT or SIGTERM, removing its socket. Under systemd
//! (`Type=notify`) it reports `READY=1` once the socket listens.
//!
//! The socket is born with its mode (`--socket-mode`, default 0660: the umask
//! is set around `bind`) and then given its group (`--socket-group`), so it
//! is never reachable by more users than asked for. The lock file is opened
//! without following symbolic links. The soft limit on open files is raised
//! to the hard one: every port and connection holds descriptors.
//!
//! The saved configuration (`--state`) is loaded before the socket is
//! bound (a corrupt file stops the daemon there) and restored before the
//! first connection is served. The metrics address (`--metrics-listen`) is
//! bound before the control socket too, so an address in use stops the
//! daemon before it creates anything.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::clock::Clock;
use crate::control::{ExtraHandler, Server, ServerConfig};
use crate::engine::Engine;
use crate::metrics::serve::{MetricsEndpoint, MetricsListener};
use crate::quota::UserLimits;
use crate::registry::{Registry, SwitchConfig};
use crate::sd_notify;
use crate::state::StateStore;
use crate::users::Group;

/// Default `--socket-mode`: owner and group may connect.
pub const DEFAULT_SOCKET_MODE: u32 = 0o660;

/// How the daemon runs.
#[derive(Clone, Debug)]
pub struct DaemonConfig {
    /// Control socket path.
    pub socket: PathBuf,
    /// Forwarding threads.
    pub threads: usize,
    /// How long a forwarding thread polls before sleeping.
    pub spin: Duration,
    /// Switch limits.
    pub switch: SwitchConfig,
    /// Permission bits of the control socket.
    pub socket_mode: u32,
    /// Group of the control socket (the daemon's own when absent).
    pub socket_group: Option<Group>,
    /// Access policy, connection caps and the control timeout.
    pub server: ServerConfig,
    /// Per-user port limits.
    pub limits: UserLimits,
    /// The state file (`None`: the configuration is not saved).
    pub state: Option<PathBuf>,
    /// Where to serve Prometheus metrics (`--metrics-listen`), if anywhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// Holds the lock file that makes a daemon the socket's only owner.
struct SocketLock {
    path: PathBuf,
    _file: File,
}

impl SocketLock {
    fn acquire(socket: &Path) -> Result<SocketLock> {
        let path = PathBuf::from(format!("{}.lock", socket.display()));
        // A symbolic link planted at the lock's path is refused, not followed
        // (O_NOFOLLOW; std adds O_CLOEXEC).
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .with_context(|| format!("cannot open lock file {}", path.display()))?;
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let mut owner = String::new();
            let _ = file.read_to_string(&mut owner);
            let owner = owner.trim();
            bail!(
                "another vswitch daemon{} owns {}; stop it first or use another --socket",
                if owner.is_empty() {
                    String::new()
                } else {
                    format!(" (pid {owner})")
                },
                socket.display()
            );
        }
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{}", std::process::id())?;
        Ok(SocketLock { path, _file: file })
    }
}

impl Drop for SocketLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Blocks SIGINT and SIGTERM in this thread (and threads started after) and
/// returns a signalfd that reports them.
fn termination_signals() -> io::Result<OwnedFd> {
    // SAFETY: building and applying a signal set with libc; the sigset is
    // initialised by sigemptyset before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// Raises the soft limit on open files to the hard limit; returns the limit.
fn raise_nofile_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into `limit`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit reads `limit`.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(limit.rlim_cur)
}

/// Binds the control socket at `path` with permission bits `mode` (set
/// through the umask, so it never exists with wider ones), then gives it
/// `group`.
fn bind_socket(path: &Path, mode: u32, group: Option<&Group>) -> Result<UnixListener> {
    // SAFETY: umask only swaps the process's mask; no other thread creates
    // files yet (the daemon starts its threads after this).
    let old = unsafe { libc::umask(!mode & 0o777) };
    let bound = UnixListener::bind(path);
    // SAFETY: as above, restoring the mask.
    unsafe { libc::umask(old) };
    let listener = bound.with_context(|| format!("cannot listen on {}", path.display()))?;
    if let Some(g) = group {
        std::os::unix::fs::lchown(path, None, Some(g.gid)).with_context(|| {
            format!(
                "cannot give {} to group {} (gid {})",
                path.display(),
                g.name,
                g.gid
            )
        })?;
    }
    Ok(listener)
}

/// Runs the daemon until SIGINT or SIGTERM. `extra` serves requests beyond
/// the core ones (NIC ports).
pub fn run(
    config: DaemonConfig,
    extra: impl FnOnce(&Arc<Registry>) -> Vec<Box<dyn ExtraHandler>>,
) -> Result<()> {
    let signals = termination_signals().context("cannot set up signal handling")?;
    match raise_nofile_limit() {
        Ok(n) => log::debug!("open file limit {n}"),
        Err(e) => log::warn!("cannot raise the open file limit: {e}"),
    }
    if config.socket_mode & !0o777 != 0 {
        bail!(
            "--socket-mode {:o}: only permission bits (0 to 777) are allowed",
            config.socket_mode
        );
    }
    if let Some(dir) = config.socket.parent() {
        if !dir.as_os_str().is_empty() {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
    }
    let lock = SocketLock::acquire(&config.socket)?;
    let metrics_listener = match config.metrics_listen {
        Some(addr) => Some(
            MetricsListener::bind(addr)
                .with_context(|| format!("cannot serve metrics on {addr}"))?,
        ),
        None => None,
    };
    let state = Arc::new(
        StateStore::open(config.state.clone())
            .context("cannot use the saved state (--state FILE or --state none to choose)")?,
    );
    match state.path() {
        Some(path) => {
            let saved = state.snapshot();
            log::info!(
                "state file {}: {} persistent port(s), {} attachment(s) to restore",
                path.display(),
                saved.ports.len(),
                saved.attachments.len()
            );
        }
        None => log::info!("no state file (--state none): the configuration is not saved"),
    }
    match fs::remove_file(&config.socket) {
        Ok(()) => log::info!("removed a stale socket at {}", config.socket.display()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot remove stale {}", config.socket.display()))
        }
    }
    let listener = bind_socket(
        &config.socket,
        config.socket_mode,
        config.socket_group.as_ref(),
    )?;
    listener.set_nonblocking(true)?;

    let clock = Clock::new();
    crate::kick_watchdog::start().context("cannot start the kick watchdog")?;
    let engine = Engine::start(config.threads, config.spin, clock)
        .context("cannot start forwarding threads")?;
    let registry = Arc::new(Registry::new(engine, config.switch, config.limits, clock));
    let handlers = extra(&registry);
    let server = Arc::new(Server::new(
        registry.clone(),
        config.server,
        handlers,
        state,
    ));
    let metrics = match metrics_listener {
        Some(listener) => {
            let endpoint = MetricsEndpoint::start(listener, server.clone())
                .context("cannot start the metrics thread")?;
            log::info!("metrics on http://{}/metrics", endpoint.addr());
            Some(endpoint)
        }
        None => None,
    };
    match switch_port::region::shmem_huge_page_mode().as_deref() {
        Some("never" | "deny") | None => log::info!(
            "port memory is on 4 KiB pages (transparent huge pages for shared memory are off): \
             `echo advise > /sys/kernel/mm/transparent_hugepage/shmem_enabled` speeds up \
             switches with many ports (docs/tuning.md)"
        ),
        Some(mode) => log::info!("port memory asks for huge pages (shmem_enabled: {mode})"),
    }
    let report = server.restore();
    if !report.restored.is_empty() || !report.failed.is_empty() {
        log::info!(
            "restored {} item(s) of the saved configuration, {} could not be",
            report.restored.len(),
            report.failed.len()
        );
    }
    log::info!(
        "vswitch daemon (pid {}) listening on {} (mode {:03o}{}) with {} forwarding thread(s)",
        std::process::id(),
        config.socket.display(),
        config.socket_mode,
        config
            .socket_group
            .as_ref()
            .map(|g| format!(", group {}", g.name))
            .unwrap_or_default(),
        config.threads.max(1)
    );
    sd_notify::tell("READY=1");

    let mut last_housekeeping = Instant::now();
    loop {
        let mut fds = [
            libc::pollfd {
                fd: listener.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: signals.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: poll on two valid pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, 1000) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                log::error!("poll failed: {err}");
            }
        }
        if fds[1].revents != 0 {
            log::info!("termination signal received: shutting down");
            sd_notify::tell("STOPPING=1");
            break;
        }
        if fds[0].revents != 0 {
            loop {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if stream.set_nonblocking(false).is_ok() {
                            server.spawn(stream);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        log::warn!("accept failed: {e}");
                        std::thread::sleep(Duration::from_millis(10));
                        break;
                    }
                }
            }
        }
        if last_housekeeping.elapsed() >= Duration::from_secs(1) {
            registry.housekeeping();
            server.housekeeping();
            last_housekeeping = Instant::now();
        }
    }
    let _ = fs::remove_file(&config.socket);
    if let Some(endpoint) = metrics {
        endpoint.stop();
    }
    registry.shutdown();
    drop(lock);
    log::info!("vswitch daemon stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;

    #[test]
    fn a_symlink_at_the_lock_path_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("s.sock");
        let target = dir.path().join("victim");
        std::os::unix::fs::symlink(&target, dir.path().join("s.sock.lock")).unwrap();
        assert!(SocketLock::acquire(&socket).is_err());
        assert!(!target.exists(), "the lock followed the link");
    }

    // Sets the process's umask for a moment: no other test here checks the
    // modes of the files it creates.
    #[test]
    fn the_socket_is_born_with_its_mode_and_given_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        // SAFETY: a getter without side effects.
        let gid = unsafe { libc::getegid() };
        let group = Group {
            gid,
            name: "own".into(),
        };
        let _listener = bind_socket(&path, 0o640, Some(&group)).unwrap();
        let meta = fs::symlink_metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o640);
        assert_eq!(meta.gid(), gid);
        let _lock = SocketLock::acquire(&path).unwrap();
        assert!(SocketLock::acquire(&path).is_err(), "locked twice");
    }
}
