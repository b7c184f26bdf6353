//! Why a pktgen run ends early: a termination signal (SIGINT, SIGTERM), as
//! netmap's pkt-gen does on Ctrl-C, or the daemon going away.
//!
//! [`catch_signals`] installs a handler that only records the signal in an
//! atomic (the same signal again ends the process the default way: the
//! handler is reset on delivery). The loops call [`Watch::check`], which
//! looks at the flag on every call and at the control connection at most
//! every [`CONNECTION_CHECK`]: when the daemon exits, the kernel closes its
//! end and the connection reads end-of-file, while the shared rings and
//! eventfds stay valid and would otherwise just stay quiet forever. Every
//! wait in the loops is bounded (100 ms at most), so either is seen soon.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use switch_port::client::PortClient;

/// How often [`Watch::check`] looks at the control connection.
pub const CONNECTION_CHECK: Duration = Duration::from_millis(100);

/// The signal that asked pktgen to stop (0: none yet).
static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn record(signal: libc::c_int) {
    // An atomic store is async-signal-safe.
    SIGNAL.store(signal, Ordering::Relaxed);
}

/// Makes SIGINT and SIGTERM stop a run (it then reports what it counted)
/// instead of killing the process. The same signal again kills it.
pub fn catch_signals() -> std::io::Result<()> {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is valid; `record` is an extern "C"
        // handler that only stores to an atomic; sigemptyset initialises the
        // mask before sigaction reads it.
        let rc = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = record as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESETHAND;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The name of the signal that asked to stop, if one did.
pub fn caught() -> Option<&'static str> {
    match SIGNAL.load(Ordering::Relaxed) {
        0 => None,
        libc::SIGINT => Some("SIGINT"),
        libc::SIGTERM => Some("SIGTERM"),
        _ => Some("signal"),
    }
}

/// What [`Watch::check`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Go on.
    Go,
    /// A termination signal arrived: stop and report.
    Signal(&'static str),
    /// The daemon closed the control connection.
    DaemonGone,
}

/// Watches for a reason to stop: see the module documentation.
pub struct Watch {
    next_check: Instant,
}

impl Default for Watch {
    fn default() -> Self {
        Watch {
            next_check: Instant::now() + CONNECTION_CHECK,
        }
    }
}

impl Watch {
    /// Whether the run should go on.
    #[inline]
    pub fn check(&mut self, port: &mut PortClient) -> Verdict {
        if let Some(signal) = caught() {
            return Verdict::Signal(signal);
        }
        let now = Instant::now();
        if now < self.next_check {
            return Verdict::Go;
        }
        self.next_check = now + CONNECTION_CHECK;
        if connection_closed(port) {
            Verdict::DaemonGone
        } else {
            Verdict::Go
        }
    }
}

/// Whether the daemon's end of the port's control connection is closed
/// (end-of-file, hang-up or an error). The daemon sends nothing unasked, so
/// readable data here can only be end-of-file or a protocol surprise; the
/// peek leaves it in place either way.
fn connection_closed(port: &mut PortClient) -> bool {
    let fd = port.connection().stream().as_raw_fd();
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN | libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: poll on one valid pollfd without waiting.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    if n <= 0 {
        return false;
    }
    if pfd.revents & (libc::POLLHUP | libc::POLLRDHUP | libc::POLLERR) != 0 {
        return true;
    }
    let mut byte = 0u8;
    // SAFETY: peeks at most one byte into a valid local without blocking.
    let got = unsafe {
        libc::recv(
            fd,
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    got == 0
}
