//! `LogReader`: forwards the XDP program's aya-log records to the `log`
//! crate from a small thread that polls the program's ring buffer.
//!
//! aya-log's `EbpfLogger` is a ring buffer with a file descriptor that turns
//! readable when records wait; it needs no async runtime. The program logs
//! only rare events, rate-limited, so the thread wakes rarely; it also wakes
//! every [`POLL_INTERVAL_MS`] to notice that it should stop.
use aya::Ebpf;
use aya_log::EbpfLogger;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Longest wait of the reader thread before it checks whether to stop.
const POLL_INTERVAL_MS: i32 = 200;

/// Name of the global in the program that holds its log level
/// (aya-log-ebpf's `AYA_LOG_LEVEL`).
pub(crate) const LEVEL_GLOBAL: &str = "AYA_LOG_LEVEL";

/// The program's log level for the process's `log` maximum level, in
/// aya-log's numbering (0 off, 1 error .. 5 trace). The loader writes it into
/// the program's read-only data, so disabled lines cost nothing there.
pub(crate) fn program_level() -> u8 {
    match log::max_level() {
        log::LevelFilter::Off => 0,
        log::LevelFilter::Error => 1,
        log::LevelFilter::Warn => 2,
        log::LevelFilter::Info => 3,
        log::LevelFilter::Debug => 4,
        log::LevelFilter::Trace => 5,
    }
}

/// The thread reading the program's log records; stopped and joined on drop.
pub(crate) struct LogReader {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LogReader {
    /// Takes the log ring buffer out of `ebpf` and starts the reader thread
    /// (named `xdp-log-IFACE`).
    pub(crate) fn start(ebpf: &mut Ebpf, iface: &str) -> Result<Self, LogReaderError> {
        let logger = EbpfLogger::init(ebpf).map_err(LogReaderError::Logger)?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(format!("xdp-log-{iface}"))
            .spawn(move || read_until_stopped(logger, &thread_stop))
            .map_err(LogReaderError::Thread)?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for LogReader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // A panicking reader has already reported itself; nothing to add.
            let _ = thread.join();
        }
    }
}

/// Errors of starting the reader.
#[derive(Debug, thiserror::Error)]
pub enum LogReaderError {
    /// The program object has no aya-log ring buffer.
    #[error("opening the XDP program's log ring buffer")]
    Logger(#[source] aya_log::Error),
    /// The thread could not be spawned.
    #[error("spawning the XDP log reader thread")]
    Thread(#[source] std::io::Error),
}

/// Waits for records and forwards them until `stop` is set, then forwards
/// what is left.
fn read_until_stopped(mut logger: EbpfLogger<&'static dyn log::Log>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let mut pollfd = libc::pollfd {
            fd: logger.as_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call; the fd stays
        // open as long as `logger` lives.
        let ready = unsafe { libc::poll(&mut pollfd, 1, POLL_INTERVAL_MS) };
        if ready < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            log::warn!(
                "XDP log reader: poll failed ({}): stopping",
                std::io::Error::last_os_error()
            );
            return;
        }
        if ready > 0 {
            logger.flush();
        }
    }
    logger.flush();
}

/// `error` and its sources, joined by ": ".
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
