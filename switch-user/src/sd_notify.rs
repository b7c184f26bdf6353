//! systemd's readiness protocol (`sd_notify`): with `Type=notify`, systemd
//! passes `$NOTIFY_SOCKET`, a datagram socket to which the service sends
//! `READY=1` once it serves (for vswitch: once the control socket listens)
//! and `STOPPING=1` when it begins to shut down. A path starting with `@` is
//! in the abstract namespace. Without `$NOTIFY_SOCKET` nothing is sent.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The environment variable systemd sets for `Type=notify` services.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Sends `state` (newline-separated `KEY=VALUE` lines) to `$NOTIFY_SOCKET`.
/// Returns whether there was a socket to send to.
pub fn notify(state: &str) -> io::Result<bool> {
    let Some(target) = std::env::var_os(NOTIFY_SOCKET) else {
        return Ok(false);
    };
    let target = target.into_vec();
    if target.is_empty() {
        return Ok(false);
    }
    let addr = match target.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(OsStr::from_bytes(&target))?,
    };
    let socket = UnixDatagram::unbound()?;
    socket.send_to_addr(state.as_bytes(), &addr)?;
    Ok(true)
}

/// Sends `state` like [`notify`], logging a failure instead of returning it
/// (systemd then reports the missing notification itself).
pub fn tell(state: &str) {
    match notify(state) {
        Ok(true) => log::debug!("told systemd {state}"),
        Ok(false) => {}
        Err(e) => log::warn!("cannot tell systemd {state} through ${NOTIFY_SOCKET}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The only test here that sets NOTIFY_SOCKET (tests run in threads of
    // one process, so the two cases share it and run in sequence).
    #[test]
    fn sends_to_a_path_and_to_an_abstract_address() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let receiver = UnixDatagram::bind(&path).unwrap();
        std::env::set_var(NOTIFY_SOCKET, &path);
        assert!(notify("READY=1").unwrap());
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");

        let name = format!("vswitch-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let receiver = UnixDatagram::bind_addr(&addr).unwrap();
        std::env::set_var(NOTIFY_SOCKET, format!("@{name}"));
        assert!(notify("STOPPING=1").unwrap());
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
        std::env::remove_var(NOTIFY_SOCKET);
        assert!(!notify("READY=1").unwrap());
    }
}
