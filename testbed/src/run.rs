//! Running a command to completion within a time limit.

use std::io::Read;
use std::process::{Command, Output};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::{Capture, Error, Proc, Result};

/// Runs `command` to completion and returns its status and output. A
/// command still running after `timeout` is ended by its PID (SIGTERM, then
/// SIGKILL) and reported as [`Error::NotFinished`].
pub fn run_bounded(command: Command, timeout: Duration) -> Result<Output> {
    let label = command.get_program().to_string_lossy().into_owned();
    let mut proc = Proc::spawn(&label, command, Capture::Pipes)?;
    let stdout = proc.take_stdout().map(read_all);
    let stderr = proc.take_stderr().map(read_all);
    let status = match proc.wait_timeout(timeout)? {
        Some(status) => status,
        None => {
            proc.stop()?;
            return Err(Error::NotFinished {
                what: label,
                timeout,
            });
        }
    };
    Ok(Output {
        status,
        stdout: join(stdout),
        stderr: join(stderr),
    })
}

fn read_all<R: Read + Send + 'static>(mut pipe: R) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

fn join(reader: Option<JoinHandle<Vec<u8>>>) -> Vec<u8> {
    reader
        .and_then(|reader| reader.join().ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_status_and_output() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 2"]);
        let out = run_bounded(cmd, Duration::from_secs(10)).unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
    }

    #[test]
    fn ends_a_command_that_runs_too_long() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let start = std::time::Instant::now();
        let err = run_bounded(cmd, Duration::from_millis(100)).unwrap_err();
        assert!(matches!(err, Error::NotFinished { .. }), "{err}");
        assert!(start.elapsed() < Duration::from_secs(10));
    }
}
