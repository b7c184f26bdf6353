//! No checksum trap: two namespaces whose veths keep the kernel's default
//! offloads (transmit checksum offload on, so their TCP frames carry
//! partial checksums) talk TCP through two NIC ports attached with the
//! default `--checksum auto`; with `--checksum trust` the same frames
//! arrive unfinished and the connection never opens.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use e2e_tests::nic::{NicBed, HOST_IF};

/// Bytes the transfer moves.
const TRANSFER_BYTES: usize = 8 * 1000 * 1000;
/// The server's TCP port (inside its namespace).
const TCP_PORT: u16 = 5002;
/// Longest a TCP read or write may block.
const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// Byte `i` of the transfer.
fn byte_at(i: usize) -> u8 {
    (i.wrapping_mul(131) ^ (i >> 11)) as u8
}

fn tx_checksum_offload_on(bed: &NicBed, host: usize) -> Result<bool> {
    let out = bed.hosts[host].ns.run("ethtool", ["-k", HOST_IF])?;
    Ok(out
        .lines()
        .any(|l| l.trim_start().starts_with("tx-checksumming: on")))
}

/// Accepts one connection and checks it carries exactly the transfer.
fn serve(listener: TcpListener) -> Result<usize> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                ensure!(Instant::now() < deadline, "no connection");
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e.into()),
        }
    };
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0usize;
    loop {
        let n = stream.read(&mut buf).context("reading")?;
        if n == 0 {
            break;
        }
        for (k, b) in buf[..n].iter().enumerate() {
            ensure!(*b == byte_at(got + k), "byte {} differs", got + k);
        }
        got += n;
        ensure!(got <= TRANSFER_BYTES, "more bytes than sent");
    }
    Ok(got)
}

fn send(mut stream: TcpStream) -> Result<()> {
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let data: Vec<u8> = (0..TRANSFER_BYTES).map(byte_at).collect();
    stream.write_all(&data).context("writing")?;
    stream.shutdown(std::net::Shutdown::Write)?;
    Ok(())
}

#[test]
fn tcp_between_default_veths_works_with_checksum_auto() -> Result<()> {
    let bed = NicBed::with_default_offloads(&["a0", "b0"])?;
    ensure!(
        tx_checksum_offload_on(&bed, 0)?,
        "the host veth should keep transmit checksum offload on"
    );
    bed.attach("a0", &[])?;
    bed.attach("b0", &[])?;
    let (h1, h2) = (&bed.hosts[0], &bed.hosts[1]);
    ensure!(h1.ping(&h2.addr, 3)?, "ping failed: {}", bed.daemon.log());

    let addr: SocketAddr = format!("{}:{TCP_PORT}", h2.addr).parse()?;
    let listener = h2.ns.run_in(|| TcpListener::bind(addr))??;
    let server = std::thread::spawn(move || serve(listener));
    let stream = h1
        .ns
        .run_in(|| TcpStream::connect_timeout(&addr, Duration::from_secs(5)))?
        .with_context(|| format!("connecting: {}", bed.daemon.log()))?;
    let sent = send(stream);
    let received = server
        .join()
        .map_err(|_| anyhow::anyhow!("server thread panicked"))?;
    sent?;
    assert_eq!(received?, TRANSFER_BYTES);

    // The data went a0 -> b0 with checksums finished by the switch.
    let a0 = bed.extra_counters("vale0:a0")?;
    assert!(
        a0["checksums_completed"] >= (TRANSFER_BYTES / 1448) as u64,
        "{a0:?}"
    );
    let log = bed.daemon.log();
    assert!(log.contains("completing them in software"), "{log}");
    Ok(())
}

#[test]
fn with_checksum_trust_partial_checksums_stay_and_tcp_fails() -> Result<()> {
    let bed = NicBed::with_default_offloads(&["c0", "d0"])?;
    bed.attach("c0", &["--checksum", "trust"])?;
    bed.attach("d0", &["--checksum", "trust"])?;
    let (h1, h2) = (&bed.hosts[0], &bed.hosts[1]);
    // ICMP has no offloaded checksum: the path itself works.
    ensure!(h1.ping(&h2.addr, 3)?, "ping failed");
    let addr: SocketAddr = format!("{}:{TCP_PORT}", h2.addr).parse()?;
    let _listener = h2.ns.run_in(|| TcpListener::bind(addr))??;
    let connected = h1
        .ns
        .run_in(|| TcpStream::connect_timeout(&addr, Duration::from_secs(2)))?;
    assert!(
        connected.is_err(),
        "TCP worked with partial checksums trusted: is offload really on?"
    );
    let c0 = bed.extra_counters("vale0:c0")?;
    assert_eq!(c0["checksums_completed"], 0, "{c0:?}");
    Ok(())
}
