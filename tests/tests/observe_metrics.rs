//! The daemon's Prometheus endpoint (`daemon --metrics-listen`), `stats
//! --format prometheus` and `vswitch top` against a real daemon with real
//! traffic: promtool accepts the text, its counters equal `stats --json`
//! once the traffic stopped, bad requests get an error status and the
//! endpoint keeps serving.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use e2e_tests::nic::{send_test_frames, NicBed, HOST_IF};
use e2e_tests::{field, pktgen_summary, Daemon, Vm};
use serde_json::Value;
use testbed::{skip_or_fail, wait_for, wait_until, Mac};

const FRAMES: u64 = 20_000;

/// The address the daemon's metrics endpoint listens on (from its log:
/// it was started on port 0, so the kernel chose a free one).
fn metrics_addr(daemon: &Daemon) -> Result<SocketAddr> {
    let addr = wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
        let log = daemon.log();
        let rest = log.split("metrics on http://").nth(1)?;
        rest.split("/metrics").next()?.parse().ok()
    })
    .context("the daemon did not log its metrics address")?;
    Ok(addr)
}

/// Sends `request` and returns the status code and the body.
fn http(addr: SocketAddr, request: &[u8]) -> Result<(u16, String, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    // The server may answer (and close) before it read everything sent.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let answer = String::from_utf8(answer)?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .with_context(|| format!("no HTTP head in {answer:?}"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status in {head:?}"))?;
    Ok((status, head.to_owned(), body.to_owned()))
}

fn get_metrics(addr: SocketAddr) -> Result<String> {
    let (status, head, body) = http(addr, b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")?;
    ensure!(status == 200, "GET /metrics: {head}");
    ensure!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    Ok(body)
}

/// Runs `promtool check metrics` on `text`; `Ok(false)` when promtool is
/// not installed (and this is not CI).
fn promtool_accepts(text: &str) -> Result<bool> {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            skip_or_fail("promtool is not installed (Debian: prometheus)");
            return Ok(false);
        }
        Err(e) => return Err(e.into()),
    };
    child
        .stdin
        .take()
        .context("promtool stdin")?
        .write_all(text.as_bytes())?;
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "promtool check metrics: {}\n{}{}\n--- text ---\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(true)
}

/// The samples of a scrape: `name{labels}` to value.
fn samples(text: &str) -> Result<BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (key, value) = line
            .rsplit_once(' ')
            .with_context(|| format!("bad sample line {line:?}"))?;
        let value: f64 = value
            .parse()
            .with_context(|| format!("bad value in {line:?}"))?;
        ensure!(out.insert(key.to_owned(), value).is_none(), "{key} twice");
    }
    Ok(out)
}

fn sample(samples: &BTreeMap<String, f64>, key: &str) -> Result<f64> {
    samples
        .get(key)
        .copied()
        .with_context(|| format!("no sample {key}"))
}

/// Sends `FRAMES` frames from `vale0:tx` to `vale0:rx` (both persistent, so
/// their counters stay after the clients leave) and waits until both
/// pktgens ended.
fn traffic(daemon: &Daemon) -> Result<()> {
    for port in ["vale0:tx", "vale0:rx"] {
        let out = daemon.cli(&["create", port])?;
        ensure!(out.status.success(), "create {port}: {out:?}");
    }
    let mut rx = daemon.pktgen_rx("vale0:rx", &["--idle-timeout", "1"])?;
    let count = FRAMES.to_string();
    let mut tx = daemon.pktgen_tx("vale0:tx", &["--count", &count, "--rate", "200000"])?;
    let tx_sum = pktgen_summary(&mut tx, Duration::from_secs(60))?;
    ensure!(field(&tx_sum, "packets") == FRAMES, "{tx_sum}");
    daemon.settled_counters("vale0:rx", FRAMES)?;
    pktgen_summary(&mut rx, Duration::from_secs(30))?;
    Ok(())
}

/// Drops the lines that change between two reads of an idle daemon.
fn steady(text: &str) -> String {
    text.lines()
        .filter(|l| {
            !l.starts_with("vswitch_uptime_seconds ")
                && !l.starts_with("vswitch_thread_sleeps_total{")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn metrics_agree_with_stats_json_and_promtool_accepts_them() -> Result<()> {
    let daemon = Daemon::start(&["--metrics-listen", "127.0.0.1:0"])?;
    let addr = metrics_addr(&daemon)?;
    traffic(&daemon)?;

    let scraped = get_metrics(addr)?;
    let json = daemon.cli_json(&["stats", "--json"])?;
    let out = daemon.cli(&["stats", "--format", "prometheus"])?;
    ensure!(out.status.success(), "stats --format prometheus: {out:?}");
    let printed = String::from_utf8(out.stdout)?;
    assert_eq!(
        steady(&scraped),
        steady(&printed),
        "endpoint and CLI differ"
    );
    if !promtool_accepts(&scraped)? {
        return Ok(());
    }
    promtool_accepts(&printed)?;

    let s = samples(&scraped)?;
    let ports = json["ports"].as_array().context("ports")?;
    ensure!(ports.len() == 2, "{json}");
    for p in ports {
        let name = p["name"].as_str().context("name")?;
        let (switch, port) = name.split_once(':').context("port name")?;
        let labels = format!("switch=\"{switch}\",port=\"{port}\",kind=\"shm\"");
        let c = &p["counters"];
        for (metric, key) in [
            ("rx_packets", "rx_packets"),
            ("rx_bytes", "rx_bytes"),
            ("tx_packets", "tx_packets"),
            ("tx_bytes", "tx_bytes"),
            ("kicks_sent", "kicks_sent"),
            ("kicks_suppressed", "kicks_suppressed"),
            ("bad_indices", "bad_index"),
        ] {
            let got = sample(&s, &format!("vswitch_port_{metric}_total{{{labels}}}"))?;
            assert_eq!(got, field(c, key) as f64, "{name} {metric}");
        }
        for (reason, key) in [
            ("runt", "drop_runt"),
            ("bad_slot", "drop_bad_slot"),
            ("too_long", "drop_too_long"),
            ("ring_full", "drop_ring_full"),
            ("same_port", "drop_same_port"),
            ("filtered", "drop_filtered"),
            ("no_destination", "drop_no_destination"),
            ("no_client", "drop_no_client"),
            ("spoofed", "spoofed"),
            ("storm", "drop_storm"),
        ] {
            let got = sample(
                &s,
                &format!("vswitch_port_drops_total{{{labels},reason=\"{reason}\"}}"),
            )?;
            assert_eq!(got, field(c, key) as f64, "{name} drops {reason}");
        }
    }
    // The traffic is in it: every frame the sender sent was received.
    let tx_rx = sample(
        &s,
        "vswitch_port_rx_packets_total{switch=\"vale0\",port=\"tx\",kind=\"shm\"}",
    )?;
    assert_eq!(tx_rx, FRAMES as f64);

    let switches = json["switches"].as_array().context("switches")?;
    ensure!(switches.len() == 1, "{json}");
    let fdb = &switches[0]["fdb"];
    for (metric, key) in [
        ("vswitch_fdb_entries", "entries"),
        ("vswitch_fdb_capacity", "capacity"),
        ("vswitch_fdb_learned_total", "learned"),
        ("vswitch_fdb_moves_total", "moved"),
        ("vswitch_fdb_aged_total", "aged"),
    ] {
        let got = sample(&s, &format!("{metric}{{switch=\"vale0\"}}"))?;
        assert_eq!(got, field(fdb, key) as f64, "{metric}");
    }
    let full = sample(
        &s,
        "vswitch_fdb_refusals_total{switch=\"vale0\",reason=\"table_full\"}",
    )?;
    assert_eq!(full, field(fdb, "refused") as f64);
    assert!(field(fdb, "learned") >= 1, "{fdb}");

    let threads = json["threads"].as_array().context("threads")?;
    ensure!(threads.len() == 1, "{json}");
    let t = &threads[0];
    let frames = sample(&s, "vswitch_thread_frames_total{thread=\"0\"}")?;
    assert_eq!(frames, field(t, "frames") as f64);
    assert!(field(t, "frames") >= FRAMES, "{t}");
    let busy = sample(&s, "vswitch_thread_busy_seconds_total{thread=\"0\"}")?;
    assert_eq!(busy, field(t, "busy_ns") as f64 / 1e9);
    assert!(busy > 0.0, "no busy time after {FRAMES} frames");
    Ok(())
}

#[test]
fn bad_requests_get_an_error_and_the_endpoint_keeps_serving() -> Result<()> {
    let daemon = Daemon::start(&["--metrics-listen", "127.0.0.1:0"])?;
    let addr = metrics_addr(&daemon)?;
    let oversize = vec![b'a'; 64 * 1024];
    let cases: [(&[u8], u16); 5] = [
        (
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
            400,
        ),
        (b"GET /metrics\r\n\r\n", 400),
        (&oversize, 431),
        (b"GET /secret HTTP/1.1\r\n\r\n", 404),
        (b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405),
    ];
    for (request, status) in cases {
        let (got, head, _) = http(addr, request)?;
        assert_eq!(got, status, "{head}");
    }
    // A client that connects and leaves without a word.
    drop(TcpStream::connect(addr)?);
    // A client that starts a request and stalls: it holds the endpoint
    // until its deadline (408), never the control socket, and the next
    // scrape is answered after it.
    let mut stalled = TcpStream::connect(addr)?;
    stalled.write_all(b"GET /metr")?;
    let out = daemon.cli(&["stats", "--json"])?;
    ensure!(out.status.success(), "stats while a scrape stalls: {out:?}");
    let body = get_metrics(addr)?;
    let mut answer = String::new();
    stalled.set_read_timeout(Some(Duration::from_secs(10)))?;
    stalled.read_to_string(&mut answer)?;
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(body.contains("# TYPE vswitch_port_rx_packets_total counter"));
    let out = daemon.cli(&["stats", "--json"])?;
    ensure!(
        out.status.success(),
        "the daemon stopped answering: {out:?}"
    );
    if daemon.log().contains("panicked") {
        bail!("the daemon panicked:\n{}", daemon.log());
    }
    Ok(())
}

#[test]
fn a_metrics_address_in_use_stops_the_daemon_before_it_creates_its_socket() -> Result<()> {
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = taken.local_addr()?.to_string();
    let dir = testbed::unique_temp_dir("metrics-in-use")?;
    let socket = dir.path().join("vswitch.sock");
    let mut command = Command::new(testbed::vswitch_bin());
    command.arg("--socket").arg(&socket).args([
        "daemon",
        "--state",
        "none",
        "--metrics-listen",
        &addr,
    ]);
    let out = testbed::run_bounded(command, Duration::from_secs(30))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot serve metrics on {addr}")),
        "{stderr}"
    );
    assert!(!socket.exists(), "the control socket was created");
    Ok(())
}

#[test]
fn stats_prometheus_refuses_watch() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let out = daemon.cli(&["stats", "--format", "prometheus", "--watch", "1"])?;
    assert!(!out.status.success());
    let json: Value = daemon.cli_json(&["stats", "--json"])?;
    assert!(
        json["threads"].is_array() && json["switches"].is_array(),
        "{json}"
    );
    Ok(())
}

#[test]
fn top_without_a_terminal_prints_rates_and_stops_after_count() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let mut rx = daemon.pktgen_rx("vale0:rx", &["--idle-timeout", "1"])?;
    // About four seconds of traffic: top samples it twice, half a second apart.
    let mut tx = daemon.pktgen_tx("vale0:tx", &["--count", "400000", "--rate", "100000"])?;
    daemon.wait_port("vale0:tx", true)?;
    let out = daemon.cli(&["top", "--count", "2", "--interval", "0.5"])?;
    ensure!(out.status.success(), "top: {out:?}");
    let text = String::from_utf8(out.stdout)?;
    let blocks: Vec<&str> = text
        .split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .collect();
    assert_eq!(blocks.len(), 2, "two refreshes:\n{text}");
    let mut sending = 0.0f64;
    for block in &blocks {
        let mut lines = block.lines();
        let summary = lines.next().unwrap_or("");
        assert!(
            summary.contains("port(s)") && summary.contains("forward-0"),
            "{block}"
        );
        let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
        assert_eq!(
            header,
            ["port", "kind", "rx_pps", "tx_pps", "rx_bps", "tx_bps", "drops_ps"],
            "{block}"
        );
        for line in lines {
            let cols: Vec<&str> = line.split_whitespace().collect();
            ensure!(cols.len() == 7, "bad line {line:?}");
            if cols[0] == "vale0:tx" {
                sending = sending.max(cols[2].parse()?);
            }
        }
    }
    assert!(sending > 0.0, "no rate for the sender:\n{text}");
    pktgen_summary(&mut tx, Duration::from_secs(60))?;
    pktgen_summary(&mut rx, Duration::from_secs(30))?;
    Ok(())
}

#[test]
fn the_vmm_serves_its_counters_from_inside_its_sandbox() -> Result<()> {
    const COUNT: u64 = 30_000;
    let daemon = Daemon::start(&[])?;
    let mac = "52:54:00:00:13:01";
    let mut vm = Vm::start(
        &daemon,
        "vm-metrics",
        "vale0:vm1",
        mac,
        &["--metrics-listen", "127.0.0.1:0", "--seccomp", "kill"],
        &format!("rx count={COUNT} size=60"),
    )?;
    vm.wait_for_serial("guest: rx", Duration::from_secs(30))?;
    let addr: SocketAddr = wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
        let log = vm.vm.proc_mut().read_stderr().ok()?;
        let rest = log.split("vmm: metrics on http://").nth(1)?;
        rest.split("/metrics").next()?.parse().ok()
    })
    .context("the vmm did not print its metrics address")?;
    // Three seconds of traffic towards the guest, scraped meanwhile.
    let count = COUNT.to_string();
    let mut tx = daemon.pktgen_tx(
        "vale0:gen",
        &["--count", &count, "--rate", "10000", "--dst-mac", mac],
    )?;
    let scraped = wait_for(Duration::from_secs(30), Duration::from_millis(100), || {
        let text = get_metrics(addr).ok()?;
        let rx = samples(&text).ok()?.get("vmm_rx_packets_total").copied()?;
        (rx > 0.0).then_some(text)
    })
    .context("the vmm's metrics never showed a received frame")?;
    let s = samples(&scraped)?;
    assert!(sample(&s, "vmm_exits_total")? > 0.0);
    assert!(sample(&s, "vmm_interrupts_injected_total")? > 0.0);
    assert!(scraped.contains("# TYPE vmm_exits_mmio_total counter"));
    // A bad request in the sandbox: refused, and the endpoint still serves.
    let (status, head, _) = http(addr, b"BREW /pot HTTP/1.1\r\n\r\n")?;
    assert_eq!(status, 405, "{head}");
    let (status, head, _) = http(addr, &vec![b'x'; 32 * 1024])?;
    assert_eq!(status, 431, "{head}");
    let again = samples(&get_metrics(addr)?)?;
    assert!(sample(&again, "vmm_rx_packets_total")? >= sample(&s, "vmm_rx_packets_total")?);
    let promtool = promtool_accepts(&scraped)?;

    pktgen_summary(&mut tx, Duration::from_secs(60))?;
    // The guest ends once it has every frame (or the vmm was killed by
    // its seccomp filter: finish reports that).
    let (_result, stats) = vm.finish(Duration::from_secs(60))?;
    assert!(
        stats["rx"]["packets"].as_f64().unwrap_or(0.0) >= sample(&again, "vmm_rx_packets_total")?,
        "{stats}"
    );
    if !promtool {
        eprintln!("promtool missing: the text format was not checked");
    }
    Ok(())
}

#[test]
fn nic_and_host_port_counters_are_metrics_too() -> Result<()> {
    let bed = NicBed::with_daemon(&["m0"], None, |ns| {
        Daemon::start_in(ns, &["--metrics-listen", "127.0.0.1:0"])
    })?;
    bed.attach("m0", &["--host"])?;
    bed.daemon.wait_port("vale0:m0-host", true)?;
    let h = &bed.hosts[0];
    let dst = Mac([0x02, 0x76, 0x73, 0x6e, 0xff, 0x13]);
    let sent = send_test_frames(&h.ns, HOST_IF, h.mac, dst, 0..200, 60, None)?;
    // Wait until the switch took them all, and its counters rest (the
    // host's own stack may send a frame now and then: read twice, equal).
    wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
        bed.extra_counters("vale0:m0")
            .map(|c| c.get("xsk_rx").copied().unwrap_or(0) >= sent)
            .unwrap_or(false)
    })
    .context("the NIC port did not receive the frames")?;
    let (scraped, json) = wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        let before = bed.daemon.cli_json(&["stats", "--json"]).ok()?;
        let addr = metrics_addr(&bed.daemon).ok()?;
        // The endpoint listens in the daemon's namespace.
        let scraped = bed.switch.run_in(move || get_metrics(addr)).ok()?.ok()?;
        let after = bed.daemon.cli_json(&["stats", "--json"]).ok()?;
        (before["ports"] == after["ports"]).then_some((scraped, after))
    })
    .context("the counters never rested")?;
    if !promtool_accepts(&scraped)? {
        return Ok(());
    }
    let s = samples(&scraped)?;
    let mut checked = 0;
    for p in json["ports"].as_array().context("ports")? {
        let name = p["name"].as_str().context("name")?;
        let kind = p["kind"].as_str().context("kind")?;
        let (switch, port) = name.split_once(':').context("port name")?;
        let labels = format!("switch=\"{switch}\",port=\"{port}\",kind=\"{kind}\"");
        for pair in p["extra"].as_array().context("extra")? {
            let counter = pair[0].as_str().context("extra name")?;
            let value = pair[1].as_u64().context("extra value")?;
            let gauge = counter.ends_with("_queues") || counter.ends_with("_max_frame");
            let suffix = if gauge { "" } else { "_total" };
            let metric = format!("vswitch_{kind}_{counter}{suffix}{{{labels}}}");
            assert_eq!(sample(&s, &metric)?, value as f64, "{metric}");
            checked += 1;
        }
        let rx = sample(&s, &format!("vswitch_port_rx_packets_total{{{labels}}}"))?;
        assert_eq!(rx, field(&p["counters"], "rx_packets") as f64, "{name}");
    }
    assert!(checked > 10, "only {checked} NIC and host counters");
    assert!(
        sample(
            &s,
            "vswitch_nic_xsk_queues{switch=\"vale0\",port=\"m0\",kind=\"nic\"}"
        )? >= 1.0
    );
    Ok(())
}
