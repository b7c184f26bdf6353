//! The error type of the test bed.

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// Why a test bed operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call or file operation failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An external command (`ip`, `bridge`) exited with a failure.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// How it exited.
        status: ExitStatus,
        /// What it wrote to stderr.
        stderr: String,
    },
    /// A name (namespace prefix, interface name) is not usable.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// Output of a command or a /proc file could not be understood.
    #[error("cannot parse {what} from {text:?}")]
    Parse {
        /// What was looked for.
        what: &'static str,
        /// The text that did not contain it.
        text: String,
    },
    /// A bounded wait ran out.
    #[error(transparent)]
    Timeout(#[from] crate::WaitTimeout),
    /// A thread started inside a namespace panicked.
    #[error("thread in namespace {0} panicked")]
    ThreadPanicked(String),
    /// A process run to completion did not finish in time (it was ended).
    #[error("{what} did not finish within {timeout:?}")]
    NotFinished {
        /// The process.
        what: String,
        /// The time allowed.
        timeout: Duration,
    },
    /// A daemon exited before it answered on its socket.
    #[error("{what} exited ({status}) before it was ready; log:\n{log}")]
    ExitedEarly {
        /// The process.
        what: String,
        /// How it exited.
        status: ExitStatus,
        /// What it wrote to stderr.
        log: String,
    },
    /// A daemon did not answer on its socket in time.
    #[error("{what} did not answer on {} within {timeout:?}; log:\n{log}", socket.display())]
    NotReady {
        /// The process.
        what: String,
        /// The socket it should listen on.
        socket: PathBuf,
        /// The time allowed.
        timeout: Duration,
        /// What it wrote to stderr.
        log: String,
    },
    /// A guest did not print an expected text in time.
    #[error("{what} did not print {needle:?} within {timeout:?}; serial:\n{serial}")]
    SerialTimeout {
        /// The VM.
        what: String,
        /// The text waited for.
        needle: String,
        /// The time allowed.
        timeout: Duration,
        /// What the guest printed.
        serial: String,
    },
    /// A VM's monitor exited before its guest printed an expected text.
    #[error("{what} exited before printing {needle:?}; serial:\n{serial}")]
    ExitedBeforeSerial {
        /// The VM.
        what: String,
        /// The text waited for.
        needle: String,
        /// What the guest printed.
        serial: String,
    },
    /// A file the test bed needs (a binary, a guest image) is not there.
    #[error("no {what} at {} ({hint})", path.display())]
    Missing {
        /// What is missing.
        what: &'static str,
        /// Where it was looked for.
        path: PathBuf,
        /// How to make it.
        hint: &'static str,
    },
    /// The guest image was built before a change to the guest's sources.
    #[error("the guest image {} is older than {} (changed after the image was built): rebuild it with `cargo xtask build-guest`", image.display(), newest.display())]
    StaleGuestImage {
        /// The image.
        image: PathBuf,
        /// The most recently changed source file.
        newest: PathBuf,
    },
}

impl Error {
    /// Wraps an I/O error with a description of what was being done.
    pub fn io(what: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}
