//! Bounded kicks: a write to an eventfd the daemon shares with a client
//! cannot hold a daemon thread for long.
//!
//! A client's kick eventfds are passed to it with `SCM_RIGHTS`, so the
//! daemon and the client share one open file, flags included. A client that
//! fills a counter to `2^64 - 2` and clears `O_NONBLOCK` makes the daemon's
//! next `write(2)` of 1 sleep until somebody reads the counter, which that
//! client never does; the forwarding thread, which serves every other port
//! too, would stop. Linux has no per-call non-blocking write for eventfds
//! (`pwritev2` with `RWF_NOWAIT` is refused), so the daemon bounds the write
//! instead: [`signal_client`] records when the calling thread started its
//! write, and the watchdog thread ([`start`]) sends a thread whose write is
//! older than [`STALL_LIMIT`] the signal [`INTERRUPT_SIGNAL`]. Its handler
//! does nothing and is installed without `SA_RESTART`, so the sleeping write
//! returns `EINTR` and the caller learns that the client made it block.
//!
//! Only a sleeping write is interrupted (an eventfd write sleeps only on a
//! full counter); a thread that is signalled just after its write finished
//! runs the empty handler and goes on. A signal that arrives between the
//! record and the write is repeated at the next check.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switch_port::eventfd::EventFd;

use crate::clock::monotonic_ns;

/// How long a write may sleep before it is interrupted.
pub const STALL_LIMIT: Duration = Duration::from_millis(100);
/// How often the watchdog looks at the writes in progress.
const CHECK_PERIOD: Duration = Duration::from_millis(50);
/// The signal that interrupts a stalled write.
pub const INTERRUPT_SIGNAL: libc::c_int = libc::SIGUSR2;

/// Why [`signal_client`] failed.
#[derive(Debug, thiserror::Error)]
pub enum KickError {
    /// The client made the write block; the watchdog interrupted it.
    #[error("the client made its kick eventfd block (a full counter on a blocking descriptor)")]
    Stalled,
    /// Any other failure of the write.
    #[error("cannot write the client's kick eventfd")]
    Write(#[source] io::Error),
}

/// A thread that writes to client eventfds, as the watchdog sees it.
struct Writer {
    thread: libc::pthread_t,
    /// When its write in progress started (monotonic ns), 0 when none.
    since_ns: AtomicU64,
}

/// Every thread that has called [`signal_client`] since the watchdog
/// started, and is still alive.
static WRITERS: Mutex<Vec<Arc<Writer>>> = Mutex::new(Vec::new());
/// Whether [`start`] ran: before that, writes are not watched.
static STARTED: AtomicBool = AtomicBool::new(false);

/// This thread's entry in [`WRITERS`], removed when the thread ends.
struct Registration(Arc<Writer>);

impl Registration {
    fn new() -> Registration {
        let writer = Arc::new(Writer {
            // SAFETY: pthread_self has no preconditions.
            thread: unsafe { libc::pthread_self() },
            since_ns: AtomicU64::new(0),
        });
        lock_writers().push(writer.clone());
        Registration(writer)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock_writers().retain(|w| !Arc::ptr_eq(w, &self.0));
    }
}

thread_local! {
    static ME: Registration = Registration::new();
}

fn lock_writers() -> std::sync::MutexGuard<'static, Vec<Arc<Writer>>> {
    // A panic while holding the list leaves it intact (pushes and retains).
    WRITERS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Adds one to a client's eventfd, waking it. A full counter on a
/// non-blocking descriptor is a pending wake-up (success). Once the
/// watchdog runs, a write the client made block is interrupted after about
/// [`STALL_LIMIT`] and reported as [`KickError::Stalled`]; the caller should
/// then stop writing to that eventfd.
pub fn signal_client(fd: &EventFd) -> Result<(), KickError> {
    if !STARTED.load(Ordering::Relaxed) {
        return fd.try_signal().map_err(classify);
    }
    ME.with(|me| {
        me.0.since_ns
            .store(monotonic_ns().max(1), Ordering::Relaxed);
        let result = fd.try_signal();
        me.0.since_ns.store(0, Ordering::Relaxed);
        result.map_err(classify)
    })
}

fn classify(err: io::Error) -> KickError {
    if err.kind() == io::ErrorKind::Interrupted {
        KickError::Stalled
    } else {
        KickError::Write(err)
    }
}

extern "C" fn interrupt(_signal: libc::c_int) {}

/// Installs the interrupting signal's handler and starts the watchdog
/// thread (once per process; later calls do nothing).
pub fn start() -> io::Result<()> {
    if STARTED
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return Ok(());
    }
    let started = install_and_spawn();
    if started.is_err() {
        STARTED.store(false, Ordering::Release);
    }
    started
}

/// [`start`]'s work, once.
fn install_and_spawn() -> io::Result<()> {
    // SAFETY: a zeroed sigaction is valid; the handler is an extern "C" fn
    // that does nothing (async-signal-safe); no SA_RESTART, so a sleeping
    // write returns EINTR.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = interrupt as extern "C" fn(libc::c_int) as usize;
        action.sa_flags = 0;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(INTERRUPT_SIGNAL, &action, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    std::thread::Builder::new()
        .name("kick-watchdog".into())
        .spawn(watch)?;
    Ok(())
}

/// The watchdog: every [`CHECK_PERIOD`], interrupts each write older than
/// [`STALL_LIMIT`].
fn watch() {
    let limit = STALL_LIMIT.as_nanos() as u64;
    loop {
        std::thread::sleep(CHECK_PERIOD);
        let now = monotonic_ns();
        for writer in lock_writers().iter() {
            let since = writer.since_ns.load(Ordering::Relaxed);
            if since != 0 && now.saturating_sub(since) >= limit {
                // SAFETY: the thread is alive: a thread removes its entry
                // (under this lock) before it ends.
                unsafe { libc::pthread_kill(writer.thread, INTERRUPT_SIGNAL) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An eventfd whose counter is full and whose descriptor blocks: a
    /// write sleeps until the watchdog interrupts it, then reports it.
    #[test]
    fn a_write_the_peer_made_block_is_interrupted() {
        start().unwrap();
        let fd = EventFd::new().unwrap();
        let peer = fd.try_clone().unwrap();
        let almost_full: u64 = u64::MAX - 1;
        // SAFETY: one u64 written to our own eventfd; F_SETFL on it.
        unsafe {
            assert_eq!(
                libc::write(peer.raw(), (&almost_full as *const u64).cast(), 8),
                8
            );
            assert_eq!(libc::fcntl(peer.raw(), libc::F_SETFL, 0), 0);
        }
        let started = std::time::Instant::now();
        assert!(matches!(signal_client(&fd), Err(KickError::Stalled)));
        let took = started.elapsed();
        assert!(took >= STALL_LIMIT, "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
        // Drained, the same eventfd takes kicks again at once.
        assert_eq!(fd.drain(), almost_full);
        signal_client(&fd).unwrap();
        assert_eq!(fd.drain(), 1);
    }

    /// A full counter on a non-blocking descriptor is a pending wake-up.
    #[test]
    fn a_full_non_blocking_counter_is_success() {
        let fd = EventFd::new().unwrap();
        let almost_full: u64 = u64::MAX - 1;
        // SAFETY: one u64 written to our own eventfd.
        unsafe {
            assert_eq!(
                libc::write(fd.raw(), (&almost_full as *const u64).cast(), 8),
                8
            )
        };
        signal_client(&fd).unwrap();
    }
}
