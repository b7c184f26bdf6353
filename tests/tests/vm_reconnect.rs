//! VMs that ride out a restart of their switch daemon: two VMs ping-pong
//! through a daemon that is killed with SIGKILL mid-run and started again on
//! the same socket; each VMM sets its e1000's link down, re-opens its port
//! on the new daemon and sets the link up, and the ping-pong resumes without
//! restarting either VMM.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use e2e_tests::{field, live_stats, Daemon, Vm};
use testbed::wait_until;

/// A counter of the live statistics (0 until the file exists).
fn live(dir: &Path, label: &str, section: &str, key: &str) -> u64 {
    live_stats(dir, label)
        .and_then(|s| s[section][key].as_u64())
        .unwrap_or(0)
}

#[test]
fn vms_ping_pong_across_a_daemon_restart() -> Result<()> {
    ping_pong_across_a_restart("plain")
}

#[test]
fn csb_vms_ping_pong_across_a_daemon_restart() -> Result<()> {
    ping_pong_across_a_restart("csb")
}

/// Two VMs (guest TX mode `txmode`) ping-pong; the daemon is killed and
/// started again mid-run.
fn ping_pong_across_a_restart(txmode: &str) -> Result<()> {
    let mut daemon = Daemon::start(&[])?;
    let dir = daemon.dir().to_owned();
    let mut pong = Vm::start_pong(
        &daemon,
        "52:54:00:00:03:01",
        &format!("pong txmode={txmode} idle=8"),
    )?;
    let mut ping = Vm::start(
        &daemon,
        "vm-ping",
        "vale0:ping",
        "52:54:00:00:03:02",
        &[],
        &format!("ping count=4000 rate=400 dst=52:54:00:00:03:01 txmode={txmode}"),
    )?;

    // The ping-pong runs. (Progress is read from the switch's counters of
    // the ping VM's port, the pongs delivered to it: a VMM whose data path
    // is offloaded to the switch counts its frames only when it takes the
    // data path back.)
    let pongs = |d: &Daemon| d.counters("vale0:ping").map_or(0, |c| c.tx_packets);
    wait_until(Duration::from_secs(30), Duration::from_millis(50), || {
        pongs(&daemon) >= 100
    })
    .context("the ping-pong did not start")?;
    let received_before = pongs(&daemon);

    // The daemon dies; both VMMs notice and set their links down.
    daemon.proc_mut().kill(libc::SIGKILL)?;
    ensure!(
        daemon
            .proc_mut()
            .wait_timeout(Duration::from_secs(10))?
            .is_some(),
        "the daemon survived SIGKILL"
    );
    for label in ["vm-ping", "vm-pong"] {
        wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            live(&dir, label, "link", "down") >= 1
        })
        .with_context(|| {
            format!(
                "{label} did not set its link down; its VMM: {:?}\nstderr:\n{}",
                live_stats(&dir, label),
                std::fs::read_to_string(dir.join(format!("{label}.stderr"))).unwrap_or_default()
            )
        })?;
    }

    // A new daemon on the same socket: the VMMs re-open their ports and the
    // ping-pong resumes (in about 2 s: a VMM retries at most a second
    // apart and writes its statistics once a second; 30 s for a loaded
    // machine, which may leave the VMs without a CPU for a while).
    let restarted = Daemon::wrap(
        testbed::Daemon::builder()
            .dir(&dir)
            .env("RUST_LOG", "info")
            .start()?,
    );
    let restarted_at = Instant::now();
    wait_until(Duration::from_secs(30), Duration::from_millis(50), || {
        live(&dir, "vm-ping", "link", "up") >= 1
            && live(&dir, "vm-pong", "link", "up") >= 1
            && pongs(&restarted) >= 20
    })
    .with_context(|| {
        format!(
            "the ping-pong did not resume; ping VMM {:?}\nping serial:\n{}\npong serial:\n{}",
            live_stats(&dir, "vm-ping").map(|s| (
                s["link"].clone(),
                s["rx"].clone(),
                s["tx"].clone()
            )),
            ping.serial(),
            pong.serial()
        ) + &format!(
            "\npong VMM {:?}\ndaemon log:\n{}",
            live_stats(&dir, "vm-pong").map(|s| (
                s["link"].clone(),
                s["rx"].clone(),
                s["tx"].clone(),
                s["kicks"].clone()
            )),
            restarted.log()
        )
    })?;
    eprintln!(
        "{txmode}: ping-pong resumed {:?} after the restart",
        restarted_at.elapsed()
    );

    let (result, stats) = ping.finish(Duration::from_secs(120))?;
    let (_, pong_stats) = pong.finish(Duration::from_secs(30))?;
    for stats in [&stats, &pong_stats] {
        assert_eq!(stats["link"]["down"], 1, "{stats}");
        assert_eq!(stats["link"]["up"], 1, "{stats}");
    }
    let causes = &result["irq_causes"];
    assert_eq!(field(causes, "link_down"), 1, "{result}");
    assert_eq!(field(causes, "link_up"), 1, "{result}");
    assert!(field(&result, "frames") > received_before, "{result}");
    eprintln!("{txmode}: ping across a restart: {result}");
    Ok(())
}
