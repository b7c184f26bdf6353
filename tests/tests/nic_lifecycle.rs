//! What attaching leaves behind: detach, a daemon that exits on SIGTERM and
//! a daemon killed with SIGKILL all leave the interface without an XDP
//! program and out of promiscuous mode; a veth deleted while attached is
//! removed from the switch while the daemon and the other ports go on.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use e2e_tests::nic::NicBed;
use e2e_tests::Daemon;
use testbed::wait_until;

/// How long the kernel may take to release a closed bpf_link and socket.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

fn wait_no_xdp(bed: &NicBed, iface: &str) -> Result<()> {
    wait_until(RELEASE_TIMEOUT, Duration::from_millis(20), || {
        matches!(bed.has_xdp(iface), Ok(false)) && matches!(bed.promiscuity(iface), Ok(0))
    })
    .with_context(|| {
        format!(
            "{iface} kept its XDP program or promiscuous mode: {}",
            bed.switch
                .ip(["-d", "link", "show", "dev", iface])
                .unwrap_or_default()
        )
    })?;
    Ok(())
}

#[test]
fn detach_removes_the_xdp_program_and_promiscuous_mode() -> Result<()> {
    let bed = NicBed::new(&["a0", "b0"], None)?;
    bed.attach("a0", &[])?;
    bed.attach("b0", &[])?;
    assert!(bed.has_xdp("a0")?);
    assert_eq!(bed.promiscuity("a0")?, 1);
    bed.detach("a0")?;
    bed.daemon.wait_port("vale0:a0", false)?;
    wait_no_xdp(&bed, "a0")?;
    // The other NIC is untouched, and a0 can be attached again.
    assert!(bed.has_xdp("b0")?);
    bed.attach("a0", &[])?;
    assert!(bed.has_xdp("a0")?);
    let (h1, h2) = (&bed.hosts[0], &bed.hosts[1]);
    ensure!(h1.ping(&h2.addr, 2)?, "ping after re-attaching failed");
    Ok(())
}

#[test]
fn a_daemon_stopped_with_sigterm_leaves_no_xdp_program() -> Result<()> {
    let mut bed = NicBed::new(&["a0", "b0"], None)?;
    bed.attach("a0", &[])?;
    bed.attach("b0", &[])?;
    bed.daemon.proc_mut().kill(libc::SIGTERM)?;
    let status = bed
        .daemon
        .proc_mut()
        .wait_timeout(Duration::from_secs(10))?
        .context("the daemon did not exit on SIGTERM")?;
    assert!(status.success(), "daemon exited with {status}");
    assert!(bed.daemon.log().contains("stopped"), "{}", bed.daemon.log());
    wait_no_xdp(&bed, "a0")?;
    wait_no_xdp(&bed, "b0")?;
    Ok(())
}

#[test]
fn a_daemon_killed_with_sigkill_leaves_no_xdp_program() -> Result<()> {
    let bed = NicBed::new(&["a0"], None)?;
    // A second daemon in the same namespace, killed outright.
    let mut victim = Daemon::start_in(&bed.switch, &[])?;
    let out = victim.cli(&["attach", "vale0", "a0", "--host"])?;
    ensure!(out.status.success(), "attach failed: {out:?}");
    assert!(bed.has_xdp("a0")?);
    victim.proc_mut().kill(libc::SIGKILL)?;
    victim
        .proc_mut()
        .wait_timeout(Duration::from_secs(10))?
        .context("the daemon survived SIGKILL")?;
    wait_no_xdp(&bed, "a0")?;
    // The TAP of the host port went with its file descriptor.
    wait_until(RELEASE_TIMEOUT, Duration::from_millis(20), || {
        !testbed::link::exists(Some(bed.switch.name()), "a0-host")
    })
    .context("the host port's TAP outlived the killed daemon")?;
    // The interface is free for the next daemon.
    bed.attach("a0", &[])?;
    assert!(bed.has_xdp("a0")?);
    Ok(())
}

#[test]
fn a_deleted_veth_is_removed_and_the_other_ports_keep_working() -> Result<()> {
    let mut bed = NicBed::new(&["a0", "b0", "c0"], None)?;
    for iface in ["a0", "b0", "c0"] {
        bed.attach(iface, &[])?;
    }
    let (h1, h2) = (&bed.hosts[0], &bed.hosts[1]);
    ensure!(h1.ping(&h2.addr, 1)?, "ping before the deletion failed");
    bed.switch.ip(["link", "del", "dev", "c0"])?;
    // Housekeeping runs once a second.
    bed.daemon.wait_port("vale0:c0", false)?;
    assert!(
        bed.daemon.proc_mut().try_wait()?.is_none(),
        "the daemon exited: {}",
        bed.daemon.log()
    );
    assert!(
        bed.daemon.log().contains("vale0:c0"),
        "{}",
        bed.daemon.log()
    );
    ensure!(
        h1.ping(&h2.addr, 3)? && h2.ping(&h1.addr, 3)?,
        "pings between the remaining NICs failed: {}",
        bed.daemon.log()
    );
    // Nothing of the attachment is left but its saved configuration (kept
    // for when the interface comes back), which a detach forgets, once.
    let out = bed.daemon.cli(&["show-config"])?;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("vswitch attach vale0 c0"),
        "the vanished NIC's configuration was dropped"
    );
    let out = bed.daemon.cli(&["detach", "vale0", "c0"])?;
    assert!(
        out.status.success(),
        "detach did not forget the vanished NIC: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = bed.daemon.cli(&["detach", "vale0", "c0"])?;
    assert!(
        !out.status.success(),
        "a second detach of a vanished NIC succeeded"
    );
    Ok(())
}

#[test]
fn a_deleted_veth_takes_its_host_port_with_it() -> Result<()> {
    let bed = NicBed::new(&["a0"], None)?;
    bed.attach("a0", &["--host"])?;
    bed.daemon.wait_port("vale0:a0-host", true)?;
    bed.switch.ip(["link", "del", "dev", "a0"])?;
    bed.daemon.wait_port("vale0:a0", false)?;
    bed.daemon.wait_port("vale0:a0-host", false)?;
    wait_until(RELEASE_TIMEOUT, Duration::from_millis(20), || {
        !testbed::link::exists(Some(bed.switch.name()), "a0-host")
    })
    .context("the TAP of the vanished NIC's host port is still there")?;
    Ok(())
}
