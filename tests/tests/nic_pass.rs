//! The pass list of `attach --pass`: frames of a listed EtherType or to a
//! listed MAC go to the kernel stack of the attached interface; everything
//! else goes to the switch.

use std::time::Duration;

use anyhow::{ensure, Result};
use e2e_tests::nic::{send_test_frames, NicBed, HOST_IF};
use e2e_tests::{field, pktgen_summary};
use testbed::Mac;

/// The switch namespace's own address on `a0`.
const A0_ADDR: &str = "10.9.0.100";
const FRAMES: u64 = 500;

#[test]
fn listed_ethertypes_reach_the_kernel_and_the_rest_the_switch() -> Result<()> {
    let bed = NicBed::new(&["a0"], None)?;
    let h1 = &bed.hosts[0];
    bed.switch.add_addr("a0", &format!("{A0_ADDR}/24"))?;

    // Without a pass list the switch takes every frame: the stack on a0
    // never sees the ARP request, so its address does not answer.
    bed.attach("a0", &[])?;
    ensure!(
        !h1.ping(A0_ADDR, 1)?,
        "a0's own address answered without --pass"
    );
    bed.detach("a0")?;
    bed.daemon.wait_port("vale0:a0", false)?;

    bed.attach("a0", &["--pass", "0x0806", "--pass", "0x0800"])?;
    let mut rx = bed.daemon.spawn(
        "rx",
        &[
            "pktgen",
            "vale0:rx",
            "--mode",
            "rx",
            "--json",
            "-q",
            "--idle-timeout",
            "2",
            "--duration",
            "60",
        ],
    )?;
    bed.daemon.wait_port("vale0:rx", true)?;
    // ARP and IPv4 are passed: a0's address answers. (h1 forgets what
    // its ARP retries may have learned while nothing was attached.)
    h1.ns.ip(["neigh", "flush", "dev", HOST_IF])?;
    ensure!(
        h1.ping(A0_ADDR, 3)?,
        "ping of a0's address failed with ARP and IPv4 passed: {}",
        bed.daemon.log()
    );
    // Test frames (EtherType 0x88B5) are not listed: they reach the switch.
    let dst = Mac([0x02, 0x76, 0x73, 0x6e, 0xff, 0x02]);
    let mut sent = 0;
    for burst in 0..FRAMES / 100 {
        sent += send_test_frames(
            &h1.ns,
            HOST_IF,
            h1.mac,
            dst,
            burst * 100..(burst + 1) * 100,
            60,
            None,
        )?;
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(sent, FRAMES);
    let summary = pktgen_summary(&mut rx, Duration::from_secs(90))?;
    assert_eq!(field(&summary, "packets"), FRAMES, "{summary}");
    assert_eq!(field(&summary, "corrupt"), 0, "{summary}");
    // ARP and ICMP went to the kernel (counted as passed), never to the switch.
    assert_eq!(field(&summary, "foreign"), 0, "{summary}");
    let extra = bed.extra_counters("vale0:a0")?;
    assert!(extra["xdp_passed"] >= 4, "{extra:?}");
    assert_eq!(extra["xdp_redirected"], FRAMES, "{extra:?}");
    Ok(())
}

#[test]
fn a_listed_mac_reaches_the_kernel() -> Result<()> {
    let bed = NicBed::new(&["a0"], None)?;
    let h1 = &bed.hosts[0];
    bed.switch.add_addr("a0", &format!("{A0_ADDR}/24"))?;
    let a0_mac = bed.switch.mac("a0")?;
    // ARP requests are broadcasts, which go to the switch: h1 knows a0's
    // MAC statically. a0's own ARP request for h1 leaves through the
    // kernel; h1's unicast reply to a0's MAC is passed.
    h1.ns.ip([
        "neigh",
        "add",
        A0_ADDR,
        "lladdr",
        &a0_mac.to_string(),
        "dev",
        HOST_IF,
    ])?;
    bed.attach("a0", &["--pass", &a0_mac.to_string()])?;
    ensure!(
        h1.ping(A0_ADDR, 3)?,
        "ping of a0's address failed with its MAC passed: {}",
        bed.daemon.log()
    );
    let extra = bed.extra_counters("vale0:a0")?;
    assert!(extra["xdp_passed"] >= 3, "{extra:?}");
    Ok(())
}
