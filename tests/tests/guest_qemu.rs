//! The guest image under QEMU's e1000 (qboot firmware, PVH boot, exit code
//! through `isa-debug-exit`), as the benchmark runs it for reference: two
//! guests on taps of a Linux bridge in a namespace of their own, a paced
//! `tx` into an `rx` with every frame arriving, and a ping-pong with every
//! ping answered; and the namespace's own stack pinging the guest's
//! `pong ip=` and exchanging UDP with it. (tests/tests/vm_conform runs its
//! register probe under QEMU too.)

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use e2e_tests::{field, guest_image, udp_echo};
use serde_json::Value;
use testbed::{Netns, Vm, VmOutcome, QEMU_BIN};

/// The firmware QEMU boots the guest with (Debian's qemu-system-x86).
const QBOOT: &str = "/usr/share/qemu/qboot.rom";

/// A namespace with bridge `br0` and taps `tap0`, `tap1` on it, or `None`
/// (skipped, a failure under `CI=true`) when QEMU or KVM is missing.
fn bridge_with_taps() -> Result<Option<Netns>> {
    if !testbed::have_kvm() {
        testbed::skip_or_fail("no /dev/kvm");
        return Ok(None);
    }
    if !qemu_runs() {
        testbed::skip_or_fail(format_args!(
            "needs {QEMU_BIN} and {QBOOT} (cargo xtask setup installs qemu-system-x86)"
        ));
        return Ok(None);
    }
    let ns = Netns::new(testbed::DEFAULT_PREFIX)?;
    ns.disable_ipv6()?;
    ns.add_tap_bridge("br0", &["tap0", "tap1"])?;
    Ok(Some(ns))
}

/// Whether QEMU and its qboot firmware are installed.
fn qemu_runs() -> bool {
    let mut version = Command::new(QEMU_BIN);
    version.arg("--version");
    Path::new(QBOOT).exists()
        && testbed::run_bounded(version, Duration::from_secs(30)).is_ok_and(|o| o.status.success())
}

/// Starts the guest image under QEMU on `tap` of `ns`.
fn qemu(ns: &Netns, label: &str, tap: &str, mac: &str, guest_args: &str) -> Result<Vm> {
    Ok(Vm::qemu(guest_image())
        .label(label)
        .netns(ns)
        .tap(tap)
        .mac(mac)
        .guest_args(guest_args)
        .start()?)
}

/// The guest's result line of a VM that exited with guest code 0.
fn result(outcome: &VmOutcome) -> Result<Value> {
    ensure!(
        !outcome.timed_out() && outcome.guest_code == Some(0),
        "guest failed: {}",
        outcome.report()
    );
    let line = outcome
        .result_line()
        .with_context(|| format!("no result line: {}", outcome.report()))?;
    Ok(serde_json::from_str(line)?)
}

#[test]
fn guest_tx_to_guest_rx_under_qemu() -> Result<()> {
    const FRAMES: u64 = 5000;
    let Some(ns) = bridge_with_taps()? else {
        return Ok(());
    };
    let mut rx = qemu(
        &ns,
        "qemu-rx",
        "tap0",
        "52:54:00:00:07:01",
        &format!("rx count={FRAMES}"),
    )?;
    rx.wait_for_serial("guest: rx", Duration::from_secs(60))?;
    // Paced far below what QEMU's plain e1000 moves here (3-4 kpps).
    let mut tx = qemu(
        &ns,
        "qemu-tx",
        "tap1",
        "52:54:00:00:07:02",
        &format!("tx count={FRAMES} rate=1000 dst=52:54:00:00:07:01"),
    )?;
    let sent = result(&tx.finish(Duration::from_secs(120))?)?;
    let got = result(&rx.finish(Duration::from_secs(60))?)?;
    assert_eq!(field(&sent, "frames"), FRAMES, "{sent}");
    assert_eq!(field(&got, "unique"), FRAMES, "{got}");
    assert_eq!(field(&got, "lost"), 0, "{got}");
    assert_eq!(field(&got, "corrupt"), 0, "{got}");
    assert_eq!(field(&got, "duplicates"), 0, "{got}");
    Ok(())
}

#[test]
fn guest_ping_pong_under_qemu() -> Result<()> {
    const PINGS: u64 = 500;
    let Some(ns) = bridge_with_taps()? else {
        return Ok(());
    };
    let mut pong = qemu(
        &ns,
        "qemu-pong",
        "tap0",
        "52:54:00:00:07:03",
        &format!("pong count={PINGS}"),
    )?;
    pong.wait_for_serial("guest: pong", Duration::from_secs(60))?;
    let mut ping = qemu(
        &ns,
        "qemu-ping",
        "tap1",
        "52:54:00:00:07:04",
        &format!("ping count={PINGS} dst=52:54:00:00:07:03"),
    )?;
    let pinged = result(&ping.finish(Duration::from_secs(120))?)?;
    let ponged = result(&pong.finish(Duration::from_secs(60))?)?;
    assert_eq!(field(&pinged, "lost"), 0, "{pinged}");
    assert!(
        pinged["rtt_us"]["p50"].as_f64().is_some_and(|v| v > 0.0),
        "{pinged}"
    );
    assert_eq!(field(&ponged, "frames"), PINGS, "{ponged}");
    Ok(())
}

#[test]
fn namespace_stack_pings_and_echoes_udp_with_a_guest_under_qemu() -> Result<()> {
    let Some(ns) = bridge_with_taps()? else {
        return Ok(());
    };
    ns.add_addr("br0", "10.9.1.254/24")?;
    let mut pong = qemu(
        &ns,
        "qemu-ip",
        "tap0",
        "52:54:00:00:07:05",
        "pong ip=10.9.1.10/24 duration=120",
    )?;
    pong.wait_for_serial("guest: answering", Duration::from_secs(60))?;
    // QEMU's e1000 refuses frames for about a second after the guest's
    // RCTL write: wait until a first ping is answered.
    testbed::wait_until(Duration::from_secs(15), Duration::from_millis(100), || {
        ns.ping("10.9.1.10", 1, Duration::from_secs(1))
            .unwrap_or(false)
    })
    .context("the guest never answered a ping")?;
    ensure!(
        ns.ping("10.9.1.10", 3, Duration::from_secs(2))?,
        "ping failed"
    );
    let target = std::net::SocketAddr::from(([10, 9, 1, 10], 7));
    ns.run_in(|| udp_echo::lockstep(target, 50, 100, Duration::from_secs(2)))??;
    let flood = ns.run_in(|| udp_echo::flood(target, 2000, 100, Duration::from_secs(2)))??;
    ensure!(
        flood.echoed > 0 && flood.duplicates == 0 && flood.corrupt == 0,
        "{flood:?}"
    );
    let out = result(&pong.finish(Duration::from_secs(60))?)?;
    let ip = &out["ip"];
    ensure!(field(ip, "icmp_echo") >= 4, "{out}");
    ensure!(field(ip, "udp_echo") >= 50 + flood.echoed, "{out}");
    Ok(())
}
