//! The VMM's sandbox, entered after set-up and before the guest runs:
//! dropping to an unprivileged user ([`user`]) and a seccomp filter per
//! thread ([`filters`]) that allows only the system calls that thread makes
//! from then on, some of them only with the arguments it uses (its own KVM
//! descriptors and ioctl requests, memory never mapped executable, files
//! created only in the `--stats-json` directory).
//!
//! Threat model: the guest controls everything the device models read
//! (registers, descriptors, buffers, the CSB), so a bug in a model may give
//! it code execution in the VMM; the sandbox limits such a VMM to the
//! descriptors it already holds (its VM, its switch port, its output files)
//! and to a few system calls, as an unprivileged user.

pub mod filters;
pub mod thread;
pub mod user;

use std::collections::BTreeMap;
use std::os::fd::RawFd;

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, SeccompRule, TargetArch};
use thiserror::Error;

pub use user::Credentials;

/// What happens to a system call outside a thread's list (`--seccomp`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SeccompMode {
    /// No filter.
    Off,
    /// The call is allowed and logged by the kernel (SECCOMP_RET_LOG, in the
    /// kernel log or audit log): for finding what a list misses.
    Log,
    /// The whole VMM is killed (SECCOMP_RET_KILL_PROCESS, SIGSYS).
    #[default]
    Kill,
}

/// How the VMM sandboxes itself.
#[derive(Clone, Debug, Default)]
pub struct SandboxConfig {
    /// The seccomp filters' action for calls outside the lists.
    pub seccomp: SeccompMode,
    /// The user to become after set-up (`--user`).
    pub user: Option<Credentials>,
    /// `--seccomp-selftest`: the vCPU thread makes a forbidden system call
    /// right after installing its filter.
    pub selftest: bool,
}

/// The VMM threads that get a filter of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadKind {
    /// The vCPU thread (the main thread): KVM_RUN and the exits it serves.
    Vcpu,
    /// The I/O thread, which is also the CSB net worker.
    Io,
    /// The link watcher, which re-opens the switch port after a daemon
    /// restart ([`crate::net::link`]).
    Link,
    /// The `--metrics-listen` endpoint ([`crate::metrics::endpoint`]).
    Metrics,
}

impl ThreadKind {
    fn name(self) -> &'static str {
        match self {
            ThreadKind::Vcpu => "vCPU",
            ThreadKind::Io => "I/O",
            ThreadKind::Link => "link",
            ThreadKind::Metrics => "metrics",
        }
    }
}

/// The descriptors and ids the filters' argument checks compare against.
#[derive(Clone, Copy, Debug)]
pub struct FilterContext {
    /// The VMM's process id (tgkill only to itself).
    pub pid: u32,
    /// The vCPU's descriptor (its ioctls).
    pub vcpu_fd: RawFd,
    /// The VM's descriptor (KVM_IOEVENTFD).
    pub vm_fd: RawFd,
    /// The `--stats-json` directory's descriptor, if any.
    pub stats_dir_fd: Option<RawFd>,
    /// The e1000's data path may be offloaded to the switch daemon
    /// (`--e1000 offload=on`): the threads that exchange with it send and
    /// receive on the port's control connection.
    pub offload: bool,
}

/// Why the sandbox could not be entered.
#[derive(Debug, Error)]
pub enum SandboxError {
    /// A filter could not be compiled.
    #[error("cannot build the {thread} thread's seccomp filter")]
    Build {
        /// Which thread.
        thread: &'static str,
        /// seccompiler's error.
        #[source]
        source: seccompiler::BackendError,
    },
    /// A filter could not be installed.
    #[error("cannot install the {thread} thread's seccomp filter")]
    Install {
        /// Which thread.
        thread: &'static str,
        /// seccompiler's error.
        #[source]
        source: seccompiler::Error,
    },
    /// The thread that was to install a filter ended first.
    #[error("the thread ended before installing its seccomp filter")]
    ThreadGone,
    /// The privilege drop failed.
    #[error(transparent)]
    User(#[from] user::UserError),
}

/// Compiles `thread`'s filter for `mode` (`None` when the mode is off).
pub fn compile(
    thread: ThreadKind,
    mode: SeccompMode,
    context: &FilterContext,
) -> Result<Option<BpfProgram>, SandboxError> {
    let mismatch = match mode {
        SeccompMode::Off => return Ok(None),
        SeccompMode::Log => SeccompAction::Log,
        SeccompMode::Kill => SeccompAction::KillProcess,
    };
    let build = |source| SandboxError::Build {
        thread: thread.name(),
        source,
    };
    let rules: BTreeMap<i64, Vec<SeccompRule>> = match thread {
        ThreadKind::Vcpu => filters::vcpu_rules(context),
        ThreadKind::Io => filters::io_rules(context),
        ThreadKind::Link => filters::link_rules(context),
        ThreadKind::Metrics => filters::metrics_rules(context),
    }
    .map_err(build)?;
    let filter =
        SeccompFilter::new(rules, mismatch, SeccompAction::Allow, target_arch()).map_err(build)?;
    let program = BpfProgram::try_from(filter).map_err(build)?;
    Ok(Some(program))
}

/// Installs `program` on the calling thread (and sets no_new_privs).
pub fn install(thread: ThreadKind, program: &BpfProgram) -> Result<(), SandboxError> {
    seccompiler::apply_filter(program).map_err(|source| SandboxError::Install {
        thread: thread.name(),
        source,
    })?;
    log::debug!(
        "{} thread: seccomp filter installed ({} instructions)",
        thread.name(),
        program.len()
    );
    Ok(())
}

fn target_arch() -> TargetArch {
    #[cfg(target_arch = "x86_64")]
    {
        TargetArch::x86_64
    }
    #[cfg(target_arch = "aarch64")]
    {
        TargetArch::aarch64
    }
}

/// `--seccomp-selftest`: makes a system call that no thread's list allows
/// (creating a TCP socket, what an attacker would do next). Under
/// `--seccomp kill` the kernel kills the VMM here; under `log` or `off` the
/// socket is created, closed, and the VM runs on.
pub fn forbidden_syscall() {
    // SAFETY: socket() with constant arguments; the result is checked and a
    // descriptor it returns is closed at once.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd >= 0 {
            libc::close(fd);
        }
    }
    log::warn!("seccomp self-test: a forbidden system call (socket) was allowed");
}
