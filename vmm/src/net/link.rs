//! The NIC's link to the switch daemon: a thread that watches the port's
//! control connection and rides out a daemon restart.
//!
//! The daemon keeps a VM's port while its control connection is open; the
//! connection carries nothing after the port is opened but the answers to
//! the offload exchanges ([`super::offload`]), which run under the device
//! lock, so the thread sleeps in `poll` on it and looks at what arrived only
//! while holding that lock ([`NetDevice::without_exchange`]). When the daemon goes away (end of file, hang-up or an
//! error on the connection) the thread puts a link-down [`SinkPort`] in
//! place of the dead switch port (frames the guest sends are dropped and
//! counted) and sets the e1000's link down (the guest sees LSC and
//! STATUS.LU clear); the guest keeps running. An offloaded data path is
//! taken back from the CSB first. It then re-opens the port
//! (same name, same MAC) with backoff, [`FIRST_RETRY`] doubling up to
//! [`MAX_RETRY`], until it succeeds or the VMM stops; the new port
//! replaces the down port and the link comes up again (LSC). Only the
//! connection, the port's memory and its eventfds are new: guest memory
//! and the device's KVM registrations stay.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use seccompiler::BpfProgram;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::backend::sink::SinkPort;
use super::backend::switch;
use super::NetDevice;
use crate::sandbox::thread::SandboxedThread;
use crate::sandbox::ThreadKind;
use crate::stats::Stats;

/// The first wait before re-opening the port.
pub const FIRST_RETRY: Duration = Duration::from_millis(50);
/// The longest wait between two attempts.
pub const MAX_RETRY: Duration = Duration::from_secs(1);

/// The port to re-open.
#[derive(Clone, Debug)]
pub struct LinkTarget {
    /// The daemon's control socket.
    pub socket: PathBuf,
    /// `SWITCH:PORT`.
    pub port: String,
    /// The NIC's MAC address (the port is locked to it).
    pub mac: [u8; 6],
}

/// A running link watcher.
pub struct LinkWatch {
    thread: SandboxedThread,
}

impl LinkWatch {
    /// Starts the watcher for `net`, whose current port is a switch port
    /// with control connection `control_fd`. The thread installs `filter`
    /// (its seccomp filter) first; returns once it did.
    pub fn spawn_sandboxed(
        net: Arc<NetDevice>,
        target: LinkTarget,
        control_fd: RawFd,
        stats: Arc<Stats>,
        filter: Option<BpfProgram>,
    ) -> io::Result<LinkWatch> {
        let stop = EventFd::new(EFD_NONBLOCK)?;
        let watcher = Watcher {
            stop: stop.try_clone()?,
            net,
            target,
            stats,
        };
        let thread =
            SandboxedThread::spawn("vmm-link", ThreadKind::Link, filter, stop, move || {
                watcher.run(control_fd)
            })?;
        Ok(LinkWatch { thread })
    }

    /// Stops the thread and waits for it.
    pub fn stop(self) {
        self.thread.stop();
    }
}

/// What a wait ended with.
#[derive(Debug, PartialEq, Eq)]
enum Wake {
    /// The VMM stops.
    Stop,
    /// The control connection ended (or the wait timed out, when no
    /// connection was watched).
    Other,
}

/// The thread's state.
struct Watcher {
    stop: EventFd,
    net: Arc<NetDevice>,
    target: LinkTarget,
    stats: Arc<Stats>,
}

impl Watcher {
    fn run(&self, mut control_fd: RawFd) {
        loop {
            if self.wait(Some(control_fd), None) == Wake::Stop {
                return;
            }
            log::warn!(
                "switch port {}: the daemon went away; link down, reconnecting",
                self.target.port
            );
            let down = match SinkPort::link_down(Arc::clone(&self.stats)) {
                Ok(port) => port,
                Err(e) => {
                    log::error!("link watcher: cannot create the link-down port: {e}; giving up");
                    return;
                }
            };
            self.stats.link.down.inc();
            self.net.replace_port(Box::new(down), false);
            let Some(mut client) = self.reconnect() else {
                return;
            };
            control_fd = client.connection().stream().as_raw_fd();
            self.stats.link.up.inc();
            self.net.replace_port(Box::new(client), true);
            log::info!("switch port {}: re-opened; link up", self.target.port);
        }
    }

    /// Re-opens the port with backoff; `None` when the VMM stops first.
    fn reconnect(&self) -> Option<switch_port::PortClient> {
        let mut delay = FIRST_RETRY;
        loop {
            if self.wait(None, Some(delay)) == Wake::Stop {
                return None;
            }
            match switch::open(&self.target.socket, &self.target.port, self.target.mac) {
                Ok(client) => return Some(client),
                Err(e) => {
                    self.stats.link.reconnect_failures.inc();
                    log::debug!(
                        "{}; retrying in {delay:?}",
                        switch_port::error_chain::Chain(&e)
                    );
                }
            }
            delay = (delay * 2).min(MAX_RETRY);
        }
    }

    /// Sleeps until the stop request, the end of `control_fd`, or `timeout`.
    fn wait(&self, control_fd: Option<RawFd>, timeout: Option<Duration>) -> Wake {
        let timeout_ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as i32);
        let mut fds = [
            libc::pollfd {
                fd: self.stop.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: control_fd.unwrap_or(-1),
                events: libc::POLLIN | libc::POLLRDHUP,
                revents: 0,
            },
        ];
        loop {
            fds[0].revents = 0;
            fds[1].revents = 0;
            // SAFETY: poll on an array of two pollfds we own (a negative fd is ignored).
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("link watcher: poll failed: {e}; stopping");
                return Wake::Stop;
            }
            if fds[0].revents != 0 {
                return Wake::Stop;
            }
            if n == 0 {
                return Wake::Other;
            }
            if let Some(fd) = control_fd {
                let revents = fds[1].revents;
                if revents != 0 && self.net.without_exchange(|| connection_ended(fd, revents)) {
                    return Wake::Other;
                }
            }
        }
    }
}

/// Whether the control connection `fd` ended, given poll's `revents` for it.
/// The daemon sends nothing unasked after the port is open: data counts as
/// a broken connection too (it is not read, so polling again would spin).
/// Call it with no exchange in flight: an exchange's answer is not stray.
fn connection_ended(fd: RawFd, revents: libc::c_short) -> bool {
    if revents & (libc::POLLHUP | libc::POLLERR | libc::POLLRDHUP | libc::POLLNVAL) != 0 {
        return true;
    }
    let mut byte = 0u8;
    // SAFETY: a one-byte peek into our own buffer.
    let n = unsafe {
        libc::recv(
            fd,
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n > 0 {
        log::warn!("switch control connection: unexpected data from the daemon; reconnecting");
        return true;
    }
    n == 0 || io::Error::last_os_error().kind() != io::ErrorKind::WouldBlock
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    /// Polls `fd` once without waiting; its revents.
    fn revents(fd: RawFd) -> libc::c_short {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN | libc::POLLRDHUP,
            revents: 0,
        };
        // SAFETY: poll on one pollfd we own, no wait.
        assert!(unsafe { libc::poll(&mut pfd, 1, 0) } >= 0);
        pfd.revents
    }

    #[test]
    fn a_closed_peer_or_stray_data_ends_the_connection() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let fd = ours.as_raw_fd();
        assert_eq!(revents(fd), 0, "an open, quiet connection");
        assert!(!connection_ended(fd, libc::POLLIN), "nothing to read yet");
        drop(theirs);
        assert!(connection_ended(fd, revents(fd)));

        let (ours, mut theirs) = UnixStream::pair().unwrap();
        theirs.write_all(b"x").unwrap();
        assert!(connection_ended(
            ours.as_raw_fd(),
            revents(ours.as_raw_fd())
        ));
    }
}
