//! Seeing the traffic through a real daemon: `vswitch capture` writes what
//! pktgen sent into a file tcpdump and tshark read, ends by itself after
//! `-c` or `--duration`, ends cleanly when its reader goes away (the switch
//! forwarding on), and leaves nothing behind in the daemon; shared-memory,
//! NIC and host ports are captured alike; a tenant cannot capture another
//! tenant's port; a mirror copies the traffic between two ports to a NIC
//! port, whose peer in another namespace sees it (and a capture of the NIC
//! port sees the copies and the frames from the wire), survives a restart
//! with saved state, and stops with `mirror del`.

use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use e2e_tests::access::{run_as, NOBODY, NOGROUP};
use e2e_tests::nic::{send_test_frames, NicBed, HOST_IF};
use e2e_tests::{field, pktgen_summary, run_bounded, Daemon};
use testbed::{unique_temp_dir, wait_until, Capture, Mac, Netns, PacketSocket, Proc, Protocol};

/// The EtherType of pktgen's frames.
const PKTGEN_ETHERTYPE: u16 = 0x88b5;
/// The address the receiving port is locked to (so it is pinned in the
/// forwarding table and unicast to it goes nowhere else).
const RX_MAC: &str = "02:00:00:00:00:0b";
/// Longest wait for a process or a log line.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the CLI; it must succeed. Returns its stdout.
fn cli(daemon: &Daemon, args: &[&str]) -> Result<String> {
    let out = daemon.cli(args)?;
    ensure!(
        out.status.success(),
        "vswitch {args:?} failed: {}\ndaemon log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        daemon.log()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Starts `vswitch capture ARGS` and waits until it is capturing.
fn start_capture(daemon: &Daemon, label: &str, args: &[&str]) -> Result<Proc> {
    let mut full = vec!["capture"];
    full.extend_from_slice(args);
    let proc = daemon.spawn(label, &full)?;
    wait_until(TIMEOUT, Duration::from_millis(10), || {
        proc.read_stderr()
            .unwrap_or_default()
            .contains("capturing ")
    })
    .with_context(|| format!("capture {args:?} did not start: {}", daemon.log()))?;
    Ok(proc)
}

/// Waits until the daemon has logged the end of `n` captures of `port`.
fn captures_ended(daemon: &Daemon, port: &str, n: usize) -> Result<()> {
    let needle = format!("capture of {port} ended");
    wait_until(TIMEOUT, Duration::from_millis(10), || {
        daemon.log().matches(&needle).count() >= n
    })
    .with_context(|| format!("the daemon did not end capture {n} of {port}"))?;
    Ok(())
}

/// Waits for `proc` to exit; it must succeed. Returns its stderr.
fn finished(proc: &mut Proc) -> Result<String> {
    let status = proc
        .wait_timeout(TIMEOUT)?
        .with_context(|| format!("{} did not finish", proc.label()))?;
    let stderr = proc.read_stderr()?;
    ensure!(
        status.success(),
        "{} failed ({status}): {stderr}",
        proc.label()
    );
    Ok(stderr)
}

/// The frames of a capture file as tcpdump prints them (one line each;
/// the hex dump it adds for an unknown EtherType left out).
fn tcpdump_lines(file: &Path) -> Result<Vec<String>> {
    let mut command = Command::new("tcpdump");
    command.arg("-r").arg(file).args(["-n", "-e"]);
    let out = run_bounded(command, TIMEOUT)?;
    ensure!(
        out.status.success(),
        "tcpdump -r {} failed: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with(char::is_whitespace))
        .map(str::to_owned)
        .collect())
}

/// Sends `count` frames of 60 bytes from `vale0:a` to the locked `vale0:b`
/// and waits until `vale0:b` has accounted for them (pktgen may exit
/// before the switch has forwarded its last frames).
fn send(daemon: &Daemon, count: u64) -> Result<()> {
    // The last sender's port is busy until the daemon has seen it leave.
    daemon.wait_no_client("vale0:a")?;
    let before = daemon.counters("vale0:b")?;
    let count_arg = count.to_string();
    let mut tx = daemon.pktgen_tx(
        "vale0:a",
        &["--count", &count_arg, "--dst-mac", RX_MAC, "--size", "60"],
    )?;
    let sum = pktgen_summary(&mut tx, TIMEOUT)?;
    ensure!(field(&sum, "packets") == count, "{sum}");
    daemon.settled_counters("vale0:b", before.tx_packets + before.drops() + count)?;
    Ok(())
}

/// A daemon any user may connect to, with `vale0:b` locked to [`RX_MAC`]
/// and a pktgen receiving on it. The port's ring holds several of the
/// tests' bursts of 1000 frames: none is dropped at it even when the
/// receiver gets no CPU for a while.
fn bed() -> Result<(Daemon, Proc)> {
    let daemon = Daemon::start(&["--socket-mode", "0666"])?;
    cli(
        &daemon,
        &["create", "vale0:b", "--mac", RX_MAC, "--ring-size", "4096"],
    )?;
    let rx = daemon.pktgen_rx("vale0:b", &["--idle-timeout", "30"])?;
    Ok((daemon, rx))
}

#[test]
fn a_capture_holds_every_frame_with_its_length_and_ethertype() -> Result<()> {
    let (daemon, _rx) = bed()?;
    let file = daemon.dir().join("b.pcapng");
    let file_arg = file.display().to_string();
    let mut capture = start_capture(
        &daemon,
        "capture-b",
        &["vale0:b", "-w", &file_arg, "-c", "1000"],
    )?;
    send(&daemon, 1000)?;
    let summary = finished(&mut capture)?;
    ensure!(
        summary.contains("1000 frames captured, 0 dropped"),
        "{summary}"
    );
    captures_ended(&daemon, "vale0:b", 1)?;
    let lines = tcpdump_lines(&file)?;
    let good = lines
        .iter()
        .filter(|l| l.contains("> 02:00:00:00:00:0b, ethertype Unknown (0x88b5), length 60"))
        .count();
    assert_eq!((lines.len(), good), (1000, 1000), "{:?}", lines.first());
    // tshark reads it too, with the port and the direction of each frame.
    let mut tshark = Command::new("tshark");
    tshark.arg("-r").arg(&file).args([
        "-T",
        "fields",
        "-e",
        "frame.len",
        "-e",
        "eth.type",
        "-e",
        "frame.interface_name",
    ]);
    let out = run_bounded(tshark, TIMEOUT)?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rows = text
        .lines()
        .filter(|l| *l == format!("60\t0x{PKTGEN_ETHERTYPE:04x}\tvale0:b"))
        .count();
    assert_eq!(
        rows,
        1000,
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Classic pcap, received frames only, a short snap length, on the
    // sender's port (made persistent to exist before its client, once the
    // daemon has removed the one of the last sender, who left).
    daemon.wait_port("vale0:a", false)?;
    cli(&daemon, &["create", "vale0:a"])?;
    let pcap = daemon.dir().join("a.pcap");
    let pcap_arg = pcap.display().to_string();
    let mut capture = start_capture(
        &daemon,
        "capture-a",
        &[
            "vale0:a",
            "-w",
            &pcap_arg,
            "-c",
            "5",
            "--dir",
            "rx",
            "--format",
            "pcap",
            "--snaplen",
            "20",
        ],
    )?;
    send(&daemon, 5)?;
    finished(&mut capture)?;
    let lines = tcpdump_lines(&pcap)?;
    ensure!(lines.len() == 5, "{lines:?}");
    ensure!(lines.iter().all(|l| l.contains("length 60")), "{lines:?}");
    Ok(())
}

#[test]
fn a_counted_capture_ends_by_itself() -> Result<()> {
    let (daemon, _rx) = bed()?;
    let file = daemon.dir().join("ten.pcapng");
    let file_arg = file.display().to_string();
    let mut capture = start_capture(
        &daemon,
        "capture-10",
        &["vale0:b", "-w", &file_arg, "-c", "10"],
    )?;
    send(&daemon, 1000)?;
    let summary = finished(&mut capture)?;
    ensure!(summary.contains("10 frames captured"), "{summary}");
    ensure!(summary.contains("count reached"), "{summary}");
    captures_ended(&daemon, "vale0:b", 1)?;
    assert_eq!(tcpdump_lines(&file)?.len(), 10);
    // --duration ends a capture that sees nothing; the file is still valid.
    let mut quiet = start_capture(
        &daemon,
        "capture-quiet",
        &["vale0:b", "-w", &file_arg, "--duration", "0.3"],
    )?;
    let summary = finished(&mut quiet)?;
    ensure!(summary.contains("0 frames captured"), "{summary}");
    ensure!(summary.contains("duration reached"), "{summary}");
    captures_ended(&daemon, "vale0:b", 2)?;
    assert_eq!(tcpdump_lines(&file)?.len(), 0);
    Ok(())
}

#[test]
fn a_reader_that_leaves_early_ends_the_capture_and_forwarding_goes_on() -> Result<()> {
    let (daemon, _rx) = bed()?;
    let script = format!(
        "set -o pipefail; '{}' capture vale0:b -w - --socket '{}' | head -c 100 > /dev/null",
        daemon.binary().display(),
        daemon.socket().display()
    );
    let mut command = Command::new("bash");
    command.args(["-c", &script]);
    let mut pipeline = Proc::spawn(
        "capture-pipe",
        command,
        Capture::Files(daemon.dir().to_owned()),
    )?;
    wait_until(TIMEOUT, Duration::from_millis(10), || {
        pipeline
            .read_stderr()
            .unwrap_or_default()
            .contains("capturing ")
    })
    .context("the piped capture did not start")?;
    // Enough frames that the capture writes past head's 100 bytes.
    send(&daemon, 1000)?;
    let stderr = finished(&mut pipeline)?;
    ensure!(stderr.contains("went away"), "{stderr}");
    captures_ended(&daemon, "vale0:b", 1)?;
    // The switch forwards everything as before.
    let before = daemon.counters("vale0:b")?;
    send(&daemon, 1000)?;
    let after = daemon.settled_counters("vale0:b", before.tx_packets + before.drops() + 1000)?;
    assert_eq!(after.tx_packets - before.tx_packets, 1000, "{after:?}");
    assert_eq!(after.drops(), before.drops(), "{after:?}");
    Ok(())
}

#[test]
fn a_tenant_cannot_capture_another_tenants_port() -> Result<()> {
    let (daemon, _rx) = bed()?;
    std::fs::set_permissions(daemon.dir(), Permissions::from_mode(0o711))?;
    let mut as_nobody = daemon.command(&["capture", "vale0:b", "-c", "1", "-w", "/dev/null"]);
    run_as(&mut as_nobody, NOBODY, NOGROUP, &[]);
    let out = run_bounded(as_nobody, TIMEOUT)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "nobody captured root's port");
    ensure!(
        stderr.contains("permission denied") && stderr.contains("capture vale0:b"),
        "{stderr}"
    );
    Ok(())
}

/// Sends `count` frames a→b while a sniffer on the NIC's peer listens for
/// at most `window`; returns how many it saw.
fn send_and_sniff(bed: &NicBed, count: u64, window: Duration) -> Result<usize> {
    let socket = bed.hosts[0]
        .ns
        .run_in(|| PacketSocket::open(HOST_IF, Protocol::EtherType(PKTGEN_ETHERTYPE)))??;
    let sniffer = std::thread::spawn(move || -> Result<usize> {
        Ok(socket.collect(count as usize, window, |_| true)?.len())
    });
    let count_arg = count.to_string();
    bed.daemon.wait_no_client("vale0:a")?;
    let mut tx = bed.daemon.pktgen_tx(
        "vale0:a",
        &["--count", &count_arg, "--dst-mac", RX_MAC, "--rate", "2000"],
    )?;
    pktgen_summary(&mut tx, TIMEOUT)?;
    sniffer
        .join()
        .map_err(|_| anyhow::anyhow!("the sniffer panicked"))?
}

#[test]
fn a_mirror_to_a_nic_port_shows_the_traffic_of_two_other_ports() -> Result<()> {
    let dir = unique_temp_dir("vsw-mirror")?;
    let state = dir.path().join("state.json");
    let start = |ns: &Netns| -> Result<Daemon> {
        let inner = testbed::Daemon::builder()
            .netns(ns)
            .state(&state)
            .env("RUST_LOG", "info")
            .start()?;
        Ok(Daemon::wrap(inner))
    };
    let mut bed = NicBed::with_daemon(&["m0"], None, start)?;
    bed.attach("m0", &[])?;
    cli(&bed.daemon, &["create", "vale0:b", "--mac", RX_MAC])?;
    let mut rx = bed.daemon.pktgen_rx("vale0:b", &["--idle-timeout", "30"])?;
    // Without a mirror, unicast a -> b never reaches the NIC.
    let seen = send_and_sniff(&bed, 200, Duration::from_millis(500))?;
    ensure!(seen == 0, "the NIC saw {seen} frames without a mirror");
    // A mirror refuses to loop.
    let out = bed.daemon.cli(&[
        "mirror", "add", "vale0", "bad", "--src", "a,m0", "--dst", "m0",
    ])?;
    ensure!(!out.status.success(), "a looping mirror was added");
    cli(
        &bed.daemon,
        &[
            "mirror", "add", "vale0", "tap", "--src", "b", "--dir", "tx", "--dst", "m0",
        ],
    )?;
    let list = cli(&bed.daemon, &["mirror", "list"])?;
    ensure!(
        list.contains("vale0 tap: vale0:b (tx) -> vale0:m0"),
        "{list}"
    );
    // A capture of the NIC port sees the copies it is given...
    let tx_file = bed.daemon.dir().join("m0-tx.pcapng");
    let tx_arg = tx_file.display().to_string();
    let mut tx_capture = start_capture(
        &bed.daemon,
        "capture-m0-tx",
        &["vale0:m0", "--dir", "tx", "-c", "200", "-w", &tx_arg],
    )?;
    let seen = send_and_sniff(&bed, 200, TIMEOUT)?;
    ensure!(
        seen == 200,
        "the NIC's peer saw {seen} of 200 mirrored frames"
    );
    finished(&mut tx_capture)?;
    assert_eq!(tcpdump_lines(&tx_file)?.len(), 200);
    // ... and the frames the NIC receives from the wire.
    let rx_file = bed.daemon.dir().join("m0-rx.pcapng");
    let rx_arg = rx_file.display().to_string();
    let mut rx_capture = start_capture(
        &bed.daemon,
        "capture-m0-rx",
        &["vale0:m0", "--dir", "rx", "-c", "50", "-w", &rx_arg],
    )?;
    let host = &bed.hosts[0];
    let wire_mac = Mac([0x02, 0, 0, 0, 0, 0x0c]);
    let sent = send_test_frames(&host.ns, HOST_IF, host.mac, wire_mac, 0..50, 60, None)?;
    ensure!(sent == 50, "sent {sent} of 50 frames on the wire");
    finished(&mut rx_capture)?;
    let lines = tcpdump_lines(&rx_file)?;
    ensure!(
        lines.len() == 50 && lines.iter().all(|l| l.contains("> 02:00:00:00:00:0c")),
        "{lines:?}"
    );
    let config = cli(&bed.daemon, &["show-config"])?;
    ensure!(
        config.contains("vswitch mirror add vale0 tap --src vale0:b --dir tx --dst vale0:m0"),
        "{config}"
    );

    // The mirror comes back with the saved state.
    rx.stop()?;
    bed.daemon.stop()?;
    bed.daemon = start(&bed.switch)?;
    bed.daemon.wait_port("vale0:m0", true)?;
    let list = cli(&bed.daemon, &["mirror", "list"])?;
    ensure!(
        list.contains("vale0 tap"),
        "not restored: {list}\n{}",
        bed.daemon.log()
    );
    let _rx = bed.daemon.pktgen_rx("vale0:b", &["--idle-timeout", "30"])?;
    let seen = send_and_sniff(&bed, 200, TIMEOUT)?;
    ensure!(seen == 200, "after a restart the peer saw {seen} of 200");

    // Deleted, it copies nothing more.
    cli(&bed.daemon, &["mirror", "del", "vale0", "tap"])?;
    let seen = send_and_sniff(&bed, 200, Duration::from_millis(500))?;
    ensure!(seen == 0, "the NIC saw {seen} frames after mirror del");
    let list = cli(&bed.daemon, &["mirror", "list"])?;
    ensure!(list.trim() == "no mirrors", "{list}");
    Ok(())
}

#[test]
fn the_host_port_is_captured_both_ways() -> Result<()> {
    let bed = NicBed::new(&["c0"], None)?;
    bed.attach("c0", &["--host", "--host-name", "hc0"])?;
    bed.daemon.wait_port("vale0:hc0", true)?;
    let file = bed.daemon.dir().join("host.pcapng");
    let file_arg = file.display().to_string();
    let mut capture = start_capture(
        &bed.daemon,
        "capture-host",
        &["vale0:hc0", "-c", "20", "-w", &file_arg],
    )?;
    // Frames the host stack sends into its TAP reach the switch from the
    // host port (and are flooded to the NIC).
    let dst = Mac([0x02, 0, 0, 0, 0, 0x0d]);
    let tap_mac = bed.switch.mac("hc0")?;
    let sent = send_test_frames(&bed.switch, "hc0", tap_mac, dst, 0..20, 60, None)?;
    ensure!(sent == 20, "sent {sent} of 20 frames into the TAP");
    let stderr = finished(&mut capture)?;
    ensure!(stderr.contains("20 frames captured"), "{stderr}");
    let lines = tcpdump_lines(&file)?;
    ensure!(
        lines.len() == 20 && lines.iter().all(|l| l.contains("> 02:00:00:00:00:0d")),
        "{lines:?}"
    );
    // The frames the host port is given: from the wire, through the NIC.
    let mut capture = start_capture(
        &bed.daemon,
        "capture-host-tx",
        &["vale0:hc0", "--dir", "tx", "-c", "20", "-w", &file_arg],
    )?;
    let host = &bed.hosts[0];
    let sent = send_test_frames(&host.ns, HOST_IF, host.mac, dst, 0..20, 60, None)?;
    ensure!(sent == 20, "sent {sent} of 20 frames on the wire");
    finished(&mut capture)?;
    ensure!(tcpdump_lines(&file)?.len() == 20);
    captures_ended(&bed.daemon, "vale0:hc0", 2)?;
    Ok(())
}
