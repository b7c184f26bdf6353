//! `cargo xtask demo`, the README's first command, runs to the end with one
//! second of traffic per step, and every step shows what it should: pktgen
//! summaries, the guests' result lines, the ping across the NIC port, the
//! ping-pong across the VXLAN tunnel to a second host's switch.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use testbed::run_bounded;

#[test]
fn cargo_xtask_demo_runs_to_the_end() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("tests/ sits in the workspace")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut demo = Command::new(cargo);
    demo.current_dir(root)
        .args(["xtask", "demo", "--seconds", "1"])
        .env_remove("CARGO_TARGET_DIR");
    // Set-up and the builds are no-ops when `cargo xtask test` (or the
    // builds the test instructions name) ran before; the traffic takes
    // about half a minute.
    let out = run_bounded(demo, Duration::from_secs(1800))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.success(),
        "demo failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    for needle in [
        // Step 1: pktgen tx's and rx's summaries, both frame sizes.
        "tx on vale0:a",
        "rx on vale0:b",
        "packets of 1514 bytes",
        // Steps 2 and 3: every guest reported its result.
        "sender:   ",
        "receiver: ",
        "ping: ",
        "RTT us",
        // Step 4: the ping across the NIC port and the host port.
        "5 packets transmitted, 5 received",
        "attached nic0 as vale0:nic0",
        "detached nic0 from vale0",
        // Step 5: the second host's switch answers across the tunnel.
        "added tunnel port vale0:vx (VNI 42)",
        "1000 packets of 60 bytes",
        "0 timeouts",
        "demo finished",
    ] {
        assert!(stdout.contains(needle), "no {needle:?} in:\n{stdout}");
    }
    assert!(
        !stdout.contains("(no result line)"),
        "a guest of the demo failed:\n{stdout}"
    );
    Ok(())
}
