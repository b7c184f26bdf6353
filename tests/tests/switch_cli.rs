//! The CLI against a real daemon: create, list, stats, fdb, delete (with
//! `--json` parsed and checked), and the daemon's clean exit.

use std::time::Duration;

use anyhow::Result;
use e2e_tests::Daemon;
use switch_port::client::Interest;
use switch_port::mac::MacAddr;
use testbed::wait_until;
use testframe::{FrameTemplate, Kind};

#[test]
fn create_list_stats_fdb_delete() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let out = daemon.cli(&[
        "create",
        "vale0:p1",
        "--ring-size",
        "256",
        "--buf-size",
        "9216",
    ])?;
    assert!(out.status.success(), "{out:?}");
    let out = daemon.cli(&["create", "vale0:p1"])?;
    assert!(!out.status.success(), "creating twice succeeded");
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = daemon.cli(&["create", "vale0:p2", "--ring-size", "1000"])?;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("power of two"),
        "{out:?}"
    );

    let list = daemon.cli_json(&["list", "--json"])?;
    let p1 = &list["switches"][0]["ports"][0];
    assert_eq!(list["switches"][0]["name"], "vale0");
    assert_eq!(p1["name"], "vale0:p1");
    assert_eq!(p1["persistent"], true);
    assert_eq!(p1["clients"], 0);
    assert_eq!(p1["ring_size"], 256);
    assert_eq!(p1["buf_size"], 9216);
    assert_eq!(p1["kind"], "shm");

    // Traffic from a client towards the persistent port shows in stats and fdb.
    let mut gen = daemon.open("vale0:gen")?;
    let src: MacAddr = "02:00:00:00:0a:01".parse()?;
    let template = FrameTemplate::new(MacAddr::BROADCAST.0, src.0, Kind::Data, 1514).expect("size");
    let mut sent = 0u64;
    while sent < 1000 {
        while sent < 1000 {
            let Some(buf) = gen.reserve() else { break };
            template.write(buf, sent, 0);
            gen.commit(1514);
            sent += 1;
        }
        gen.publish();
        gen.wait(
            Interest::TX,
            Duration::from_micros(50),
            Some(Duration::from_secs(1)),
        )?;
    }
    // The source counts its frames when the switch takes them, before they
    // are delivered (or dropped) at the destination: wait for the
    // destination's account of all of them.
    let p1 = daemon.settled_counters("vale0:p1", 1000)?;
    assert_eq!(daemon.counters("vale0:gen")?.rx_packets, 1000, "{p1:?}");
    let stats = daemon.cli_json(&["stats", "vale0:p1", "--json"])?;
    let c = &stats["ports"][0]["counters"];
    assert_eq!(stats["ports"][0]["name"], "vale0:p1");
    // Nothing queues in a port without a client: its frames are dropped
    // and counted, not kept for whoever opens it next.
    assert_eq!(c["drop_no_client"], 1000, "{stats}");
    assert_eq!(c["tx_packets"], 0, "{stats}");
    let all = daemon.cli_json(&["stats", "--json"])?;
    assert!(all["ports"]
        .as_array()
        .is_some_and(|p| p.iter().any(|p| p["name"] == "vale0:p1")));
    let fdb = daemon.cli_json(&["fdb", "vale0", "--json"])?;
    let entry = fdb["entries"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["mac"] == "02:00:00:00:0a:01").cloned())
        .unwrap_or_default();
    assert_eq!(entry["port"], "vale0:gen", "{fdb}");
    assert!(entry["age_secs"].as_u64().is_some());
    assert!(fdb["stats"]["learned"].as_u64().unwrap_or(0) >= 1);

    // Watch prints rate samples.
    let mut watch = daemon.spawn("watch", &["stats", "--watch", "0.2", "--json"])?;
    wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        watch
            .read_stdout()
            .map(|s| s.lines().count() >= 2)
            .unwrap_or(false)
    })?;
    watch.stop()?;
    let first = watch.read_stdout()?.lines().next().unwrap_or("").to_owned();
    let sample: serde_json::Value = serde_json::from_str(&first)?;
    assert!(sample["ports"][0]["rx_pps"].is_number(), "{sample}");

    // Human output works too.
    let out = daemon.cli(&["list"])?;
    assert!(String::from_utf8_lossy(&out.stdout).contains("vale0:p1"));
    let out = daemon.cli(&["stats"])?;
    assert!(String::from_utf8_lossy(&out.stdout).contains("no client 1000"));

    drop(gen);
    // Delete: unknown port, then the real one.
    let out = daemon.cli(&["delete", "vale0:nope"])?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no port vale0:nope"));
    let out = daemon.cli(&["delete", "vale0:p1"])?;
    assert!(out.status.success(), "{out:?}");
    let list = daemon.cli_json(&["list", "--json"])?;
    assert_eq!(list["switches"], serde_json::json!([]));
    Ok(())
}

#[test]
fn daemon_exits_cleanly_on_sigterm() -> Result<()> {
    let mut daemon = Daemon::start(&[])?;
    let socket = daemon.socket().to_owned();
    assert!(socket.exists());
    let _port = daemon.open("vale0:x")?;
    daemon.proc_mut().kill(libc::SIGTERM)?;
    let status = daemon
        .proc_mut()
        .wait_timeout(Duration::from_secs(10))?
        .expect("daemon did not exit on SIGTERM");
    assert!(status.success(), "{status}");
    assert!(!socket.exists(), "socket file left behind");
    assert!(daemon.log().contains("shutting down"));
    Ok(())
}
