//! The README's daemon and pktgen features, each through a real daemon:
//! two forwarding threads sharing destinations, pktgen ping/pong, how the
//! CLI finds the daemon (`$VSWITCH_SOCKET`, the default path), `--spin-us`,
//! and `--fdb-size` refusals.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use e2e_tests::{field, pktgen_summary, run_bounded, vswitch_bin, Daemon};
use serde_json::Value;
use switch_port::client::Interest;
use switch_port::mac::MacAddr;
use testbed::{unique_temp_dir, wait_until, Capture, Proc};
use testframe::{FrameTemplate, Kind};

/// `--threads 2`: four senders (two on each forwarding thread: a port is a
/// source for the thread with the fewest ports) broadcast at full speed
/// into the same two receivers, so both threads copy into the same
/// destination rings at once, under those destinations' locks. Every frame
/// is accounted for at each receiver (delivered intact or dropped at its
/// full ring and counted), per source in order, none corrupt or duplicated.
#[test]
fn two_forwarding_threads_share_destinations_and_account_for_every_frame() -> Result<()> {
    const SOURCES: u64 = 4;
    const COUNT: u64 = 250_000;
    let daemon = Daemon::start(&["--threads", "2"])?;
    let status = daemon
        .connect()?
        .call(&switch_port::protocol::Request::Status {})?;
    ensure!(
        matches!(
            status.0,
            switch_port::protocol::Response::Status { threads: 2, .. }
        ),
        "daemon status {status:?}"
    );
    let mut receivers = Vec::new();
    for name in ["vale0:d1", "vale0:d2"] {
        receivers.push((name, daemon.pktgen_rx(name, &["--idle-timeout", "3"])?));
    }
    let mut senders = Vec::new();
    for i in 1..=SOURCES {
        senders.push(daemon.pktgen_tx(&format!("vale0:s{i}"), &["--count", &COUNT.to_string()])?);
    }
    for tx in &mut senders {
        let sum = pktgen_summary(tx, Duration::from_secs(120))?;
        assert_eq!(field(&sum, "packets"), COUNT, "{sum}");
    }
    // Both receivers' counters before their clients leave (and the ports
    // with them).
    let mut ports = Vec::new();
    for (name, _) in &receivers {
        ports.push(daemon.settled_counters(name, SOURCES * COUNT)?);
    }
    for ((name, rx), port) in receivers.iter_mut().zip(ports) {
        let sum = pktgen_summary(rx, Duration::from_secs(30))?;
        assert_eq!(field(&sum, "corrupt"), 0, "{name}: {sum}");
        assert_eq!(field(&sum, "duplicates"), 0, "{name}: {sum}");
        assert_eq!(field(&sum, "reordered"), 0, "{name}: {sum}");
        assert_eq!(field(&sum, "foreign"), 0, "{name}: {sum}");
        assert_eq!(field(&sum, "packets"), port.tx_packets, "{name}: {sum}");
        assert_eq!(
            port.tx_packets + port.drop_ring_full,
            SOURCES * COUNT,
            "{name}: frames unaccounted for: {port:?}"
        );
        assert_eq!(port.drops(), port.drop_ring_full, "{name}: {port:?}");
        eprintln!(
            "{name}: {} of {} delivered, {} dropped at its full ring",
            port.tx_packets,
            SOURCES * COUNT,
            port.drop_ring_full
        );
    }
    Ok(())
}

/// Starts `pktgen --mode MODE --count COUNT -q` (with `--json` if `json`) on
/// the port `vale0:MODE`.
fn pktgen_on_own_port(
    daemon: &Daemon,
    label: &str,
    mode: &str,
    count: u64,
    json: bool,
) -> Result<Proc> {
    let port = format!("vale0:{mode}");
    let count = count.to_string();
    let mut args = vec!["pktgen", &port, "--mode", mode, "--count", &count];
    if json {
        args.push("--json");
    }
    args.push("-q");
    Ok(daemon.spawn(label, &args)?)
}

/// `pktgen --mode ping` against `--mode pong` through the daemon: every ping
/// answered, the RTT percentiles printed, both sides counting exactly.
#[test]
fn pktgen_ping_pong_through_the_daemon() -> Result<()> {
    const PINGS: u64 = 2000;
    let daemon = Daemon::start(&[])?;
    let mut pong = pktgen_on_own_port(&daemon, "pong", "pong", PINGS, true)?;
    daemon.wait_port("vale0:pong", true)?;
    // The human-readable summary: the RTT line.
    let mut ping = pktgen_on_own_port(&daemon, "ping", "ping", PINGS, false)?;
    let status = ping
        .wait_timeout(Duration::from_secs(120))?
        .context("ping did not finish")?;
    let out = ping.read_stdout()?;
    ensure!(status.success(), "ping failed ({status}): {out}");
    let rtt_line = out
        .lines()
        .find(|l| l.contains("RTT us min"))
        .with_context(|| format!("no RTT line in {out:?}"))?;
    assert!(
        rtt_line.contains(&format!("{PINGS} packets")) && rtt_line.contains("; 0 timeouts"),
        "{rtt_line}"
    );
    for key in ["p50", "p99", "max"] {
        assert!(rtt_line.contains(key), "{rtt_line}");
    }
    let pong_sum = pktgen_summary(&mut pong, Duration::from_secs(30))?;
    assert_eq!(field(&pong_sum, "packets"), PINGS, "{pong_sum}");
    assert_eq!(field(&pong_sum, "corrupt"), 0, "{pong_sum}");
    // The JSON summary: every ping answered, ordered percentiles. The same
    // ports again: the daemon removes them once it has seen the first
    // pair's clients leave (until then they are busy, and `wait_port`
    // would find the old pong port).
    daemon.wait_port("vale0:ping", false)?;
    daemon.wait_port("vale0:pong", false)?;
    let mut pong = pktgen_on_own_port(&daemon, "pong2", "pong", PINGS, true)?;
    daemon.wait_port("vale0:pong", true)?;
    let mut ping = pktgen_on_own_port(&daemon, "ping2", "ping", PINGS, true)?;
    let sum = pktgen_summary(&mut ping, Duration::from_secs(120))?;
    assert_eq!(field(&sum, "packets"), PINGS, "{sum}");
    assert_eq!(field(&sum, "lost"), 0, "{sum}");
    assert_eq!(field(&sum, "ping_timeouts"), 0, "{sum}");
    let rtt: Vec<f64> = ["min", "p50", "p99", "max"]
        .iter()
        .map(|k| sum["rtt_us"][k].as_f64().unwrap_or(-1.0))
        .collect();
    assert!(
        rtt[0] > 0.0 && rtt.windows(2).all(|w| w[0] <= w[1]),
        "RTT percentiles out of order: {sum}"
    );
    let pong_sum = pktgen_summary(&mut pong, Duration::from_secs(30))?;
    assert_eq!(field(&pong_sum, "packets"), PINGS, "{pong_sum}");
    Ok(())
}

/// `$VSWITCH_SOCKET` names the socket for the daemon and every subcommand
/// when `--socket` is absent.
#[test]
fn vswitch_socket_names_the_socket() -> Result<()> {
    let dir = unique_temp_dir("vsw-env")?;
    let socket = dir.path().join("env.sock");
    let mut cmd = Command::new(vswitch_bin());
    cmd.arg("daemon").env("VSWITCH_SOCKET", &socket);
    let daemon = Proc::spawn("daemon", cmd, Capture::Files(dir.path().to_owned()))?;
    wait_until(Duration::from_secs(10), Duration::from_millis(10), || {
        socket.exists()
    })
    .with_context(|| {
        format!(
            "the daemon made no socket at $VSWITCH_SOCKET; log:\n{}",
            daemon.read_stderr().unwrap_or_default()
        )
    })?;
    let with_env = |args: &[&str]| {
        let mut cmd = Command::new(vswitch_bin());
        cmd.args(args).env("VSWITCH_SOCKET", &socket);
        cmd
    };
    check_cli_reaches_daemon(with_env)?;
    Ok(())
}

/// Without `--socket` and `$VSWITCH_SOCKET`, daemon and CLI meet at
/// /run/vswitch/vswitch.sock. The daemon runs in a private mount namespace
/// with a tmpfs on /run (`unshare -m`), and the CLI joins that namespace
/// (`nsenter -m`), so this never touches a daemon of the host's.
#[test]
fn the_default_socket_path() -> Result<()> {
    let dir = unique_temp_dir("vsw-default")?;
    let script = format!(
        "mount -t tmpfs -o mode=0755 vswitch-test /run && exec {} daemon",
        vswitch_bin().display()
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env_remove("VSWITCH_SOCKET");
    let daemon = Proc::spawn("daemon", cmd, Capture::Files(dir.path().to_owned()))
        .context("unshare (util-linux) is needed")?;
    let pid = daemon.pid().to_string();
    let in_daemon_ns = move |args: &[&str]| {
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &pid, "-m", "--"])
            .arg(vswitch_bin())
            .args(args)
            .env_remove("VSWITCH_SOCKET");
        cmd
    };
    let pid = daemon.pid().to_string();
    wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
        let mut probe = Command::new("nsenter");
        probe.args([
            "-t",
            &pid,
            "-m",
            "--",
            "test",
            "-S",
            "/run/vswitch/vswitch.sock",
        ]);
        run_bounded(probe, Duration::from_secs(5)).is_ok_and(|o| o.status.success())
    })
    .with_context(|| {
        format!(
            "no socket at /run/vswitch/vswitch.sock in the daemon's mount namespace; log:\n{}",
            daemon.read_stderr().unwrap_or_default()
        )
    })?;
    check_cli_reaches_daemon(in_daemon_ns)?;
    Ok(())
}

/// `list`, `create`, pktgen tx/rx and `stats` through commands made by
/// `cli` (which points them at the daemon without `--socket`).
fn check_cli_reaches_daemon(cli: impl Fn(&[&str]) -> Command) -> Result<()> {
    let run = |args: &[&str]| -> Result<String> {
        let out = run_bounded(cli(args), Duration::from_secs(60))?;
        ensure!(
            out.status.success(),
            "vswitch {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    run(&["create", "vale0:rx"])?;
    let list: Value = serde_json::from_str(&run(&["list", "--json"])?)?;
    ensure!(
        list["switches"][0]["ports"][0]["name"] == "vale0:rx",
        "{list}"
    );
    // Traffic between two pktgen processes found the same daemon.
    let dir = unique_temp_dir("vsw-cli")?;
    let mut rx = Proc::spawn(
        "rx",
        cli(&[
            "pktgen", "vale0:rx", "--mode", "rx", "--json", "-q", "--count", "1000",
        ]),
        Capture::Files(dir.path().to_owned()),
    )?;
    // A persistent port without a client drops what is sent to it: send
    // once the receiver holds the port.
    let rx_clients = || -> Option<u64> {
        let list: Value = serde_json::from_str(&run(&["list", "--json"]).ok()?).ok()?;
        list["switches"][0]["ports"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == "vale0:rx")?["clients"]
            .as_u64()
    };
    wait_until(Duration::from_secs(10), Duration::from_millis(10), || {
        rx_clients().is_some_and(|n| n >= 1)
    })
    .context("the receiver never opened vale0:rx")?;
    let tx = run(&[
        "pktgen", "vale0:tx", "--mode", "tx", "--json", "-q", "--count", "1000", "--rate", "100000",
    ])?;
    let tx: Value = serde_json::from_str(tx.trim())?;
    assert_eq!(field(&tx, "packets"), 1000, "{tx}");
    let rx_sum = pktgen_summary(&mut rx, Duration::from_secs(30))?;
    assert_eq!(field(&rx_sum, "packets"), 1000, "{rx_sum}");
    let stats: Value = serde_json::from_str(&run(&["stats", "vale0:rx", "--json"])?)?;
    ensure!(stats.to_string().contains("vale0:rx"), "{stats}");
    // The port is in use until the daemon has seen the receiver leave.
    wait_until(Duration::from_secs(10), Duration::from_millis(10), || {
        rx_clients() == Some(0)
    })
    .context("the receiver never left vale0:rx")?;
    run(&["delete", "vale0:rx"])?;
    Ok(())
}

/// `--spin-us`: the daemon forwards with no spinning at all (every idle
/// moment sleeps on the kicks) and with a long spin, every frame accounted
/// for either way.
#[test]
fn spin_us_zero_and_long_both_forward() -> Result<()> {
    for spin in ["0", "200000"] {
        let daemon = Daemon::start(&["--spin-us", spin])?;
        let mut rx = daemon.pktgen_rx("vale0:rx", &["--idle-timeout", "2"])?;
        // Paced, so the forwarding thread goes idle between bursts.
        let mut tx = daemon.pktgen_tx(
            "vale0:tx",
            &["--count", "50000", "--rate", "50000", "--burst", "16"],
        )?;
        let tx_sum = pktgen_summary(&mut tx, Duration::from_secs(60))?;
        assert_eq!(field(&tx_sum, "packets"), 50_000, "spin {spin}: {tx_sum}");
        let port = daemon.settled_counters("vale0:rx", 50_000)?;
        let rx_sum = pktgen_summary(&mut rx, Duration::from_secs(30))?;
        assert_eq!(field(&rx_sum, "corrupt"), 0, "spin {spin}: {rx_sum}");
        assert_eq!(field(&rx_sum, "packets"), port.tx_packets, "spin {spin}");
        assert_eq!(
            port.tx_packets + port.drop_ring_full,
            50_000,
            "spin {spin}: {port:?}"
        );
        // A single idle kick after the traffic still wakes the thread.
        let mut a = daemon.open("vale0:a")?;
        let mut b = daemon.open("vale0:b")?;
        send(&mut a, MacAddr::local(0xa), MacAddr::BROADCAST, 1);
        let got = receive(&mut b, 1)?;
        assert_eq!(got.len(), 1, "spin {spin}: {got:?}");
    }
    Ok(())
}

/// `--fdb-size`: a table full of addresses refuses new ones and counts the
/// refusals; frames to a refused address are unknown unicast and flood.
#[test]
fn a_full_fdb_refuses_counts_and_floods() -> Result<()> {
    const SOURCES: u32 = 64;
    let daemon = Daemon::start(&["--fdb-size", "8"])?;
    let mut a = daemon.open("vale0:a")?;
    let mut b = daemon.open("vale0:b")?;
    let mut c = daemon.open("vale0:c")?;
    let mac_b = MacAddr::local(0xb0);
    // B is learned first (the table has room), then A sends from 64
    // addresses, each once: the table fills, the rest are refused.
    send(&mut b, mac_b, MacAddr::BROADCAST, 0);
    receive(&mut a, 1)?;
    receive(&mut c, 1)?;
    for i in 0..SOURCES {
        send(&mut a, MacAddr::local(0xa000 + i), mac_b, u64::from(i) + 1);
    }
    let got = receive(&mut b, SOURCES as usize)?;
    assert_eq!(got.len(), SOURCES as usize);
    let fdb = daemon.cli_json(&["fdb", "vale0", "--json"])?;
    let stats = &fdb["stats"];
    let entries = field(stats, "entries");
    let capacity = field(stats, "capacity");
    assert_eq!(capacity, 8, "{fdb}");
    assert!(entries <= capacity, "{fdb}");
    assert_eq!(
        field(stats, "refused"),
        u64::from(SOURCES) + 1 - entries,
        "every address that found no room is counted once: {fdb}"
    );
    // Frames to a refused address flood: both A and C get them.
    let learned: Vec<String> = fdb["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["mac"].as_str().map(str::to_owned))
        .collect();
    let refused = (0..SOURCES)
        .map(|i| MacAddr::local(0xa000 + i))
        .find(|m| !learned.contains(&m.to_string()))
        .context("no refused address")?;
    send(&mut b, mac_b, refused, 1000);
    let at_a = receive(&mut a, 1)?;
    let at_c = receive(&mut c, 1)?;
    assert_eq!(at_a, vec![1000]);
    assert_eq!(at_c, vec![1000]);
    // A learned address does not flood: only A gets it.
    if let Some(known) = (0..SOURCES)
        .map(|i| MacAddr::local(0xa000 + i))
        .find(|m| learned.contains(&m.to_string()))
    {
        send(&mut b, mac_b, known, 1001);
        assert_eq!(receive(&mut a, 1)?, vec![1001]);
        send(&mut b, mac_b, MacAddr::BROADCAST, 1002);
        assert_eq!(receive(&mut c, 1)?, vec![1002], "C got the unicast frame");
        receive(&mut a, 1)?;
    }
    Ok(())
}

/// Sends one 60-byte test frame with sequence number `seq`.
fn send(port: &mut switch_port::client::PortClient, src: MacAddr, dst: MacAddr, seq: u64) {
    let t = FrameTemplate::new(dst.0, src.0, Kind::Data, 60).expect("valid size");
    let buf = port.reserve().expect("TX ring has room");
    t.write(buf, seq, 0);
    port.commit(60);
    port.publish();
}

/// Receives `n` test frames (bounded: 5 s) and returns their sequence
/// numbers.
fn receive(port: &mut switch_port::client::PortClient, n: usize) -> Result<Vec<u64>> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    while got.len() < n {
        if Instant::now() > deadline {
            bail!("received {got:?}, expected {n} frames");
        }
        port.wait(
            Interest::RX,
            Duration::from_micros(50),
            Some(Duration::from_millis(100)),
        )?;
        port.recv(512, |f| {
            got.push(testframe::parse(f).expect("intact test frame").seq);
        });
    }
    Ok(got)
}
