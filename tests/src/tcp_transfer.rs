//! A TCP transfer whose every byte is checked: the stream is a fixed
//! pattern (splitmix64 words), compared byte by byte on arrival and hashed
//! (FNV-1a) on both ends.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use testbed::Netns;

/// splitmix64: word `k` of the transfer is splitmix64(k), little-endian.
fn splitmix64(k: u64) -> u64 {
    let mut z = k
        .wrapping_add(0x9E37_79B9_7F4A_7C15)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The transfer's bytes at `offset..`.
fn pattern(offset: u64, out: &mut [u8]) {
    let mut pos = offset;
    let mut i = 0;
    while i < out.len() {
        let word = splitmix64(pos / 8).to_le_bytes();
        let start = (pos % 8) as usize;
        let n = (8 - start).min(out.len() - i);
        out[i..i + n].copy_from_slice(&word[start..start + n]);
        i += n;
        pos += n as u64;
    }
}

/// Moves `bytes` bytes over TCP from a client in `from` to a server at
/// `to_addr:port` in `to`, checking every byte against the pattern (and an
/// FNV-1a hash of the whole stream on both ends); each read or write may
/// block at most `io_timeout`. Returns how long it took.
pub fn tcp_transfer(
    from: &Netns,
    to: &Netns,
    to_addr: &str,
    port: u16,
    bytes: u64,
    io_timeout: Duration,
) -> Result<Duration> {
    let addr: SocketAddr = format!("{to_addr}:{port}").parse()?;
    let listener = to.run_in(|| TcpListener::bind(addr))??;
    let server = std::thread::spawn(move || receive(listener, bytes, io_timeout));
    let start = Instant::now();
    let sent = from
        .run_in(|| TcpStream::connect_timeout(&addr, Duration::from_secs(5)))?
        .context("connecting")
        .and_then(|s| send(s, bytes, io_timeout));
    let received = server
        .join()
        .map_err(|_| anyhow::anyhow!("the receiving thread panicked"))?;
    let sent_hash = sent.context("sending")?;
    let (count, received_hash) = received.context("receiving")?;
    ensure!(count == bytes, "{count} of {bytes} bytes arrived");
    ensure!(
        sent_hash == received_hash,
        "hash of what was sent {sent_hash:x} != of what arrived {received_hash:x}"
    );
    Ok(start.elapsed())
}

fn fnv(mut h: u64, data: &[u8]) -> u64 {
    for &b in data {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    h
}

const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

fn send(mut stream: TcpStream, bytes: u64, io_timeout: Duration) -> Result<u64> {
    stream.set_write_timeout(Some(io_timeout))?;
    let mut chunk = vec![0u8; 256 * 1024];
    let (mut offset, mut hash) = (0u64, FNV_START);
    while offset < bytes {
        let n = (bytes - offset).min(chunk.len() as u64) as usize;
        pattern(offset, &mut chunk[..n]);
        hash = fnv(hash, &chunk[..n]);
        stream
            .write_all(&chunk[..n])
            .with_context(|| format!("writing at offset {offset}"))?;
        offset += n as u64;
    }
    stream.shutdown(std::net::Shutdown::Write)?;
    Ok(hash)
}

fn receive(listener: TcpListener, bytes: u64, io_timeout: Duration) -> Result<(u64, u64)> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + io_timeout;
    let mut stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                ensure!(
                    Instant::now() < deadline,
                    "no connection within {io_timeout:?}"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e.into()),
        }
    };
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(io_timeout))?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut expected = vec![0u8; buf.len()];
    let (mut offset, mut hash) = (0u64, FNV_START);
    loop {
        let n = stream
            .read(&mut buf)
            .with_context(|| format!("reading at offset {offset}"))?;
        if n == 0 {
            return Ok((offset, hash));
        }
        ensure!(
            offset + n as u64 <= bytes,
            "more than {bytes} bytes arrived"
        );
        pattern(offset, &mut expected[..n]);
        if let Some(bad) = (0..n).find(|&i| buf[i] != expected[i]) {
            bail!("byte {} differs from what was sent", offset + bad as u64);
        }
        hash = fnv(hash, &buf[..n]);
        offset += n as u64;
    }
}
