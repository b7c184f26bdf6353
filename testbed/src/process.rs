//! Child processes that are always ended and reaped.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// How often a bounded wait checks whether the child has exited.
const POLL_INTERVAL: Duration = Duration::from_millis(5);
/// How long [`Proc::stop`] waits after SIGTERM before SIGKILL, by default.
const DEFAULT_GRACE: Duration = Duration::from_secs(3);
/// How long to wait for the kernel to reap a child after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Where a child's stdout and stderr go.
#[derive(Debug, Clone)]
pub enum Capture {
    /// To /dev/null.
    Null,
    /// To this process's stdout and stderr.
    Inherit,
    /// To pipes, taken with [`Proc::take_stdout`] / [`Proc::take_stderr`].
    /// Read them: a child that fills an unread pipe blocks.
    Pipes,
    /// To `<label>.stdout` and `<label>.stderr` in this directory.
    Files(PathBuf),
}

/// A child process that is ended on drop: SIGTERM to its PID, a bounded
/// wait, then SIGKILL, and it is always reaped. Only this child is signalled,
/// never a process group or anything found by name.
#[derive(Debug)]
pub struct Proc {
    label: String,
    child: Child,
    exit: Option<ExitStatus>,
    stdout_path: Option<PathBuf>,
    stderr_path: Option<PathBuf>,
    grace: Duration,
}

impl Proc {
    /// Starts `command` with its output sent where `capture` says. `label`
    /// names the process in errors and in the capture file names.
    pub fn spawn(label: &str, mut command: Command, capture: Capture) -> Result<Proc> {
        let mut stdout_path = None;
        let mut stderr_path = None;
        match &capture {
            Capture::Null => {
                command.stdout(Stdio::null()).stderr(Stdio::null());
            }
            Capture::Inherit => {
                command.stdout(Stdio::inherit()).stderr(Stdio::inherit());
            }
            Capture::Pipes => {
                command.stdout(Stdio::piped()).stderr(Stdio::piped());
            }
            Capture::Files(dir) => {
                let out = dir.join(format!("{label}.stdout"));
                let err = dir.join(format!("{label}.stderr"));
                let out_file = File::create(&out)
                    .map_err(|e| Error::io(format!("create {}", out.display()), e))?;
                let err_file = File::create(&err)
                    .map_err(|e| Error::io(format!("create {}", err.display()), e))?;
                command.stdout(out_file).stderr(err_file);
                stdout_path = Some(out);
                stderr_path = Some(err);
            }
        }
        command.stdin(Stdio::null());
        let child = command
            .spawn()
            .map_err(|e| Error::io(format!("start {label} ({command:?})"), e))?;
        Ok(Proc {
            label: label.to_string(),
            child,
            exit: None,
            stdout_path,
            stderr_path,
            grace: DEFAULT_GRACE,
        })
    }

    /// Sets how long [`Proc::stop`] (and drop) waits after SIGTERM before
    /// sending SIGKILL.
    pub fn set_grace(&mut self, grace: Duration) {
        self.grace = grace;
    }

    /// The child's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The label given at spawn.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Sends `signal` to the child. Does nothing once the child has been
    /// reaped (its PID may belong to someone else by then).
    pub fn kill(&mut self, signal: libc::c_int) -> Result<()> {
        if self.try_wait()?.is_some() {
            return Ok(());
        }
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) takes plain integers; the PID is our own unreaped
        // child, so it cannot have been reused by another process.
        let rc = unsafe { libc::kill(pid, signal) };
        if rc != 0 {
            return Err(Error::io(
                format!("kill({pid}, {signal}) for {}", self.label),
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// Whether the child has exited, without reaping it (its status stays
    /// for [`Proc::try_wait`]).
    pub fn has_exited(&self) -> bool {
        if self.exit.is_some() {
            return true;
        }
        // SAFETY: waitid writes only into `info`, a zeroed siginfo_t we own;
        // WNOWAIT leaves the child waitable, so its PID is not released.
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let rc = libc::waitid(
                libc::P_PID,
                self.child.id(),
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            );
            rc == 0 && info.si_pid() != 0
        }
    }

    /// Returns the exit status if the child has exited (reaping it).
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if self.exit.is_none() {
            self.exit = self
                .child
                .try_wait()
                .map_err(|e| Error::io(format!("wait for {}", self.label), e))?;
        }
        Ok(self.exit)
    }

    /// Waits at most `timeout` for the child to exit; `None` if it is still
    /// running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            std::thread::sleep(POLL_INTERVAL.min(deadline - now));
        }
    }

    /// Ends the child: SIGTERM, up to the grace period, then SIGKILL; returns
    /// how it exited. Returns at once if it has exited already.
    pub fn stop(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.try_wait()? {
            return Ok(status);
        }
        self.kill(libc::SIGTERM)?;
        if let Some(status) = self.wait_timeout(self.grace)? {
            return Ok(status);
        }
        self.kill(libc::SIGKILL)?;
        match self.wait_timeout(KILL_WAIT)? {
            Some(status) => Ok(status),
            None => Err(Error::io(
                format!("{} (pid {}) survived SIGKILL", self.label, self.pid()),
                std::io::Error::from(std::io::ErrorKind::TimedOut),
            )),
        }
    }

    /// The child's stdout pipe (with [`Capture::Pipes`]), once.
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// The child's stderr pipe (with [`Capture::Pipes`]), once.
    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.child.stderr.take()
    }

    /// The file that receives stdout (with [`Capture::Files`]).
    pub fn stdout_path(&self) -> Option<&Path> {
        self.stdout_path.as_deref()
    }

    /// The file that receives stderr (with [`Capture::Files`]).
    pub fn stderr_path(&self) -> Option<&Path> {
        self.stderr_path.as_deref()
    }

    /// What the child has written to stdout so far (with [`Capture::Files`];
    /// empty otherwise).
    pub fn read_stdout(&self) -> Result<String> {
        read_capture(self.stdout_path.as_deref())
    }

    /// What the child has written to stderr so far (with [`Capture::Files`];
    /// empty otherwise).
    pub fn read_stderr(&self) -> Result<String> {
        read_capture(self.stderr_path.as_deref())
    }
}

fn read_capture(path: Option<&Path>) -> Result<String> {
    let Some(path) = path else {
        return Ok(String::new());
    };
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut file| file.read_to_end(&mut bytes))
        .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.stop().is_err() {
            // Last resort: SIGKILL and a blocking reap, so no zombie is left.
            if self.exit.is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn alive(pid: u32) -> bool {
        // A zombie still has a /proc entry: look at its state too.
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => !stat
                .rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
                .unwrap_or(false),
            Err(_) => false,
        }
    }

    #[test]
    fn drop_terminates_and_reaps() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let proc = Proc::spawn("sleeper", cmd, Capture::Null).unwrap();
        let pid = proc.pid();
        assert!(alive(pid));
        let start = Instant::now();
        drop(proc);
        assert!(start.elapsed() < Duration::from_secs(2));
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    }

    #[test]
    fn stop_escalates_to_sigkill() {
        let mut cmd = Command::new("sh");
        // The shell ignores SIGTERM, so only SIGKILL ends it.
        cmd.args([
            "-c",
            "trap '' TERM; echo ready; while :; do sleep 0.05; done",
        ]);
        let dir = crate::unique_temp_dir("testbed-proc").unwrap();
        let mut proc = Proc::spawn("stubborn", cmd, Capture::Files(dir.path().into())).unwrap();
        crate::wait_until(Duration::from_secs(5), Duration::from_millis(5), || {
            proc.read_stdout().unwrap().contains("ready")
        })
        .unwrap();
        proc.set_grace(Duration::from_millis(200));
        let status = proc.stop().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn wait_timeout_and_capture_files() {
        let dir = crate::unique_temp_dir("testbed-proc").unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
        let mut proc = Proc::spawn("echo", cmd, Capture::Files(dir.path().into())).unwrap();
        let status = proc.wait_timeout(Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!(status.code(), Some(3));
        assert_eq!(proc.read_stdout().unwrap(), "out\n");
        assert_eq!(proc.read_stderr().unwrap(), "err\n");
        // Signalling an exited child is a no-op, not a stray kill.
        proc.kill(libc::SIGTERM).unwrap();
    }

    #[test]
    fn has_exited_leaves_the_status_to_try_wait() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "exit 4"]);
        let mut proc = Proc::spawn("quick", cmd, Capture::Null).unwrap();
        crate::wait_until(Duration::from_secs(5), Duration::from_millis(5), || {
            proc.has_exited()
        })
        .unwrap();
        assert!(proc.has_exited(), "asking twice reaps nothing");
        let status = proc.try_wait().unwrap().unwrap();
        assert_eq!(status.code(), Some(4));
        assert!(proc.has_exited());
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let running = Proc::spawn("sleeper", cmd, Capture::Null).unwrap();
        assert!(!running.has_exited());
    }

    #[test]
    fn wait_timeout_returns_none_while_running_and_kill_works() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let mut proc = Proc::spawn("sleeper", cmd, Capture::Pipes).unwrap();
        assert!(proc.take_stdout().is_some());
        assert!(proc
            .wait_timeout(Duration::from_millis(30))
            .unwrap()
            .is_none());
        proc.kill(libc::SIGUSR1).unwrap();
        let status = proc.wait_timeout(Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGUSR1));
    }
}
