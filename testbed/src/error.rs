//! The error type of the test bed.

use std::io;
use std::process::ExitStatus;

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
