//! A `vswitch daemon` process on a control socket of its own, and the CLI
//! pointed at it. It saves no state (`--state none`) unless given a state
//! file, so tests never touch the system's `/var/lib/vswitch/state.json`.

use std::ffi::OsString;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output};
use std::time::Duration;

use crate::{
    run_bounded, unique_temp_dir, vswitch_bin, wait_until, Capture, Error, Netns, Proc, Result,
    TempDir,
};

/// The name of the control socket in the daemon's directory.
pub const SOCKET_NAME: &str = "vswitch.sock";
/// How long [`DaemonBuilder::start`] waits for the daemon to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`Daemon::cli`] lets a CLI command run.
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// How to start a [`Daemon`]: which binary, in which namespace, with which
/// options; made by [`Daemon::builder`].
#[derive(Debug)]
pub struct DaemonBuilder<'a> {
    binary: PathBuf,
    netns: Option<&'a Netns>,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    dir: Option<PathBuf>,
    capture: Option<Capture>,
    state: Option<PathBuf>,
}

impl<'a> DaemonBuilder<'a> {
    /// Uses `binary` instead of [`vswitch_bin`].
    pub fn binary(mut self, binary: impl Into<PathBuf>) -> Self {
        self.binary = binary.into();
        self
    }

    /// Runs the daemon inside `netns` (`ip netns exec` execs it, so the
    /// process's PID is the daemon's). The socket is a file, so clients
    /// reach it from any namespace.
    pub fn netns(mut self, netns: &'a Netns) -> Self {
        self.netns = Some(netns);
        self
    }

    /// Adds daemon options (after `daemon --socket PATH`).
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Saves and restores the configuration in `file` (`--state FILE`)
    /// instead of saving none.
    pub fn state(mut self, file: impl Into<PathBuf>) -> Self {
        self.state = Some(file.into());
        self
    }

    /// Sets an environment variable of the daemon.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// Puts the socket and the log files into `dir` (which outlives the
    /// daemon) instead of a fresh temporary directory.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Sends the daemon's output where `capture` says instead of to
    /// `daemon.stdout` / `daemon.stderr` in its directory.
    pub fn capture(mut self, capture: Capture) -> Self {
        self.capture = Some(capture);
        self
    }

    /// Starts the daemon and waits until it accepts connections on its
    /// socket. A daemon that exits first or does not answer in time is an
    /// error carrying its log.
    pub fn start(self) -> Result<Daemon> {
        let (temp, dir) = match self.dir {
            Some(dir) => (None, dir),
            None => {
                let temp = unique_temp_dir("vsw-daemon")?;
                let dir = temp.path().to_owned();
                (Some(temp), dir)
            }
        };
        let socket = dir.join(SOCKET_NAME);
        let mut command = match self.netns {
            Some(netns) => netns.command(&self.binary),
            None => Command::new(&self.binary),
        };
        command
            .arg("daemon")
            .arg("--socket")
            .arg(&socket)
            .arg("--state")
            .arg(self.state.as_deref().unwrap_or(Path::new("none")))
            .args(&self.args);
        for (key, value) in &self.envs {
            command.env(key, value);
        }
        let capture = self.capture.unwrap_or(Capture::Files(dir.clone()));
        let proc = Proc::spawn("daemon", command, capture)?;
        let mut daemon = Daemon {
            proc,
            binary: self.binary,
            socket,
            dir,
            _temp: temp,
        };
        daemon.wait_ready()?;
        Ok(daemon)
    }
}

/// A `vswitch daemon` process started for one test or benchmark, ended by
/// its PID on drop; its socket and logs live in a directory of its own
/// (removed on drop unless given with [`DaemonBuilder::dir`]).
#[derive(Debug)]
pub struct Daemon {
    // Declared first: the daemon is stopped before its directory goes.
    proc: Proc,
    binary: PathBuf,
    socket: PathBuf,
    dir: PathBuf,
    _temp: Option<TempDir>,
}

impl Daemon {
    /// How to start a daemon: [`vswitch_bin`] in the current namespace,
    /// no extra options, no state file, a fresh directory.
    pub fn builder<'a>() -> DaemonBuilder<'a> {
        DaemonBuilder {
            binary: vswitch_bin(),
            netns: None,
            args: Vec::new(),
            envs: Vec::new(),
            dir: None,
            capture: None,
            state: None,
        }
    }

    /// Starts [`vswitch_bin`] with daemon options `args` and waits until it
    /// answers.
    pub fn start(args: &[&str]) -> Result<Daemon> {
        Daemon::builder().args(args).start()
    }

    fn wait_ready(&mut self) -> Result<()> {
        let mut exited = None;
        let ready = wait_until(READY_TIMEOUT, Duration::from_millis(10), || {
            if UnixStream::connect(&self.socket).is_ok() {
                return true;
            }
            exited = self.proc.try_wait().ok().flatten();
            exited.is_some()
        });
        if let Some(status) = exited {
            return Err(Error::ExitedEarly {
                what: format!("{} daemon", self.binary.display()),
                status,
                log: self.log(),
            });
        }
        ready.map_err(|_| Error::NotReady {
            what: format!("{} daemon", self.binary.display()),
            socket: self.socket.clone(),
            timeout: READY_TIMEOUT,
            log: self.log(),
        })
    }

    /// The control socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The directory of the socket and the log files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The binary the daemon runs (the CLI commands use it too).
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// The daemon's PID.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The daemon process.
    pub fn proc_mut(&mut self) -> &mut Proc {
        &mut self.proc
    }

    /// Stops the daemon now (SIGTERM, then SIGKILL) and returns how it
    /// exited.
    pub fn stop(&mut self) -> Result<ExitStatus> {
        self.proc.stop()
    }

    /// What the daemon has written to stderr so far (empty unless its
    /// output goes to files).
    pub fn log(&self) -> String {
        self.proc.read_stderr().unwrap_or_default()
    }

    /// A `vswitch ARGS --socket SOCKET` command, run in the caller's
    /// namespace.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command.args(args).arg("--socket").arg(&self.socket);
        command
    }

    /// Runs the CLI with `args` to completion (at most 60 s) and returns
    /// its output, whatever the exit status.
    pub fn cli(&self, args: &[&str]) -> Result<Output> {
        run_bounded(self.command(args), CLI_TIMEOUT)
    }

    /// Starts a long-running CLI process (pktgen) named `label`, its output
    /// in `<label>.stdout` / `<label>.stderr` in the daemon's directory.
    pub fn spawn(&self, label: &str, args: &[&str]) -> Result<Proc> {
        Proc::spawn(label, self.command(args), Capture::Files(self.dir.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daemon_that_exits_at_once_is_reported_with_its_status() {
        let start = std::time::Instant::now();
        let err = Daemon::builder().binary("false").start().unwrap_err();
        assert!(matches!(err, Error::ExitedEarly { .. }), "{err}");
        assert!(start.elapsed() < READY_TIMEOUT);
    }
}
