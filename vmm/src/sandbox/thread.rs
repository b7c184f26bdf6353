//! A worker thread that installs its seccomp filter before it runs and is
//! stopped through an eventfd: the spawn, filter hand-shake and stop/join
//! shared by the I/O thread and the link watcher.

use std::io;
use std::thread::JoinHandle;

use seccompiler::BpfProgram;
use vmm_sys_util::eventfd::EventFd;

use super::{install, SandboxError, ThreadKind};

/// A running sandboxed thread; stopped (and joined) on [`stop`](Self::stop)
/// or drop.
pub struct SandboxedThread {
    stop: EventFd,
    handle: Option<JoinHandle<()>>,
}

impl SandboxedThread {
    /// Spawns thread `name`, which installs `filter` (as `kind`) first and
    /// then runs `body`; returns once the filter is in place, or its error.
    /// Stopping writes `stop`, which `body` must watch.
    pub fn spawn(
        name: &str,
        kind: ThreadKind,
        filter: Option<BpfProgram>,
        stop: EventFd,
        body: impl FnOnce() + Send + 'static,
    ) -> io::Result<SandboxedThread> {
        let (installed_tx, installed) = std::sync::mpsc::sync_channel(1);
        let handle = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let result = match &filter {
                    Some(program) => install(kind, program),
                    None => Ok(()),
                };
                let failed = result.is_err();
                let _ = installed_tx.send(result);
                if !failed {
                    body();
                }
            })?;
        let installed: Result<(), SandboxError> =
            installed.recv().unwrap_or(Err(SandboxError::ThreadGone));
        if let Err(e) = installed {
            let _ = handle.join();
            return Err(io::Error::other(e));
        }
        Ok(SandboxedThread {
            stop,
            handle: Some(handle),
        })
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(handle) = self.handle.take() {
            let _ = self.stop.write(1);
            let _ = handle.join();
        }
    }
}

impl Drop for SandboxedThread {
    fn drop(&mut self) {
        self.shutdown();
    }
}
