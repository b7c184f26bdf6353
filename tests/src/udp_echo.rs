//! A bounded UDP client for guests that echo UDP back to its source (the
//! guest image's `pong ip=...`): a lock-step exchange in which every
//! datagram must come back intact, and a flood that sends a fixed number of
//! datagrams as fast as the socket takes them and counts the echoes. Call
//! them on a thread inside the sender's namespace ([`testbed::Netns::run_in`]).
//!
//! Each datagram carries a magic, its sequence number and a filler derived
//! from both, so an echo is matched to what was sent and checked byte by
//! byte.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

/// The first bytes of every datagram.
const MAGIC: &[u8; 8] = b"vsw-echo";
/// Smallest datagram: magic and sequence number.
pub const MIN_SIZE: usize = 16;
/// Longest a flood may take, whatever its count.
const FLOOD_LIMIT: Duration = Duration::from_secs(30);

/// The datagram with sequence number `seq` and `size` bytes.
fn datagram(seq: u64, size: usize) -> Vec<u8> {
    let mut d = Vec::with_capacity(size);
    d.extend_from_slice(MAGIC);
    d.extend_from_slice(&seq.to_le_bytes());
    d.extend((MIN_SIZE..size).map(|i| (i as u64 ^ seq.wrapping_mul(0x9E37)) as u8));
    d
}

/// The sequence number of an echo, if it is exactly a datagram we send.
fn check(echo: &[u8]) -> Option<u64> {
    if echo.len() < MIN_SIZE || &echo[..8] != MAGIC {
        return None;
    }
    let seq = u64::from_le_bytes(echo[8..16].try_into().ok()?);
    (datagram(seq, echo.len()) == echo).then_some(seq)
}

fn socket(target: SocketAddr) -> Result<UdpSocket> {
    let socket = UdpSocket::bind("0.0.0.0:0").context("binding a UDP socket")?;
    socket
        .connect(target)
        .with_context(|| format!("connecting to {target}"))?;
    Ok(socket)
}

/// Sends `count` datagrams of `size` bytes to `target` one at a time, each
/// awaiting its intact echo for at most `timeout`; fails at the first one
/// that does not come back.
pub fn lockstep(target: SocketAddr, count: u64, size: usize, timeout: Duration) -> Result<()> {
    ensure!(size >= MIN_SIZE, "datagrams have at least {MIN_SIZE} bytes");
    let socket = socket(target)?;
    let mut buf = vec![0u8; 65536];
    for seq in 0..count {
        socket.send(&datagram(seq, size))?;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("datagram {seq} was not echoed within {timeout:?}");
            }
            socket.set_read_timeout(Some(left))?;
            match socket.recv(&mut buf) {
                Ok(n) if check(&buf[..n]) == Some(seq) && n == size => break,
                Ok(n) => bail!("datagram {seq}: unexpected {n}-byte answer"),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => return Err(e).context(format!("receiving the echo of {seq}")),
            }
        }
    }
    Ok(())
}

/// What a flood got back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flood {
    /// Datagrams the socket took.
    pub sent: u64,
    /// Distinct datagrams echoed intact.
    pub echoed: u64,
    /// Echoes of a datagram already echoed.
    pub duplicates: u64,
    /// Answers that are not an intact datagram of ours.
    pub corrupt: u64,
}

/// Sends `count` datagrams of `size` bytes to `target` as fast as the
/// socket takes them, taking echoes in between, then waits for more until
/// none came for `drain` (at most `FLOOD_LIMIT` in all).
pub fn flood(target: SocketAddr, count: u64, size: usize, drain: Duration) -> Result<Flood> {
    ensure!(size >= MIN_SIZE, "datagrams have at least {MIN_SIZE} bytes");
    let socket = socket(target)?;
    socket.set_nonblocking(true)?;
    let limit = Instant::now() + FLOOD_LIMIT;
    let mut seen = vec![false; count as usize];
    let mut out = Flood::default();
    let mut buf = vec![0u8; 65536];
    let mut take = |out: &mut Flood, socket: &UdpSocket| -> Result<bool> {
        match socket.recv(&mut buf) {
            Ok(n) => {
                match check(&buf[..n]).filter(|&s| s < count && n == size) {
                    Some(seq) if seen[seq as usize] => out.duplicates += 1,
                    Some(seq) => {
                        seen[seq as usize] = true;
                        out.echoed += 1;
                    }
                    None => out.corrupt += 1,
                }
                Ok(true)
            }
            // Refused: an ICMP error from the other side; not an echo.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::ConnectionRefused
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(e).context("receiving echoes"),
        }
    };
    while out.sent < count && Instant::now() < limit {
        match socket.send(&datagram(out.sent, size)) {
            Ok(_) => out.sent += 1,
            // A full socket or device queue: take echoes, then retry.
            Err(e)
                if e.kind() == ErrorKind::WouldBlock || e.raw_os_error() == Some(libc::ENOBUFS) =>
            {
                std::thread::yield_now()
            }
            Err(e) => return Err(e).context(format!("sending datagram {}", out.sent)),
        }
        while take(&mut out, &socket)? {}
    }
    let mut last = Instant::now();
    while last.elapsed() < drain && Instant::now() < limit {
        if take(&mut out, &socket)? {
            last = Instant::now();
        } else {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    Ok(out)
}
