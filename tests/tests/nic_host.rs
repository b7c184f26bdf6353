//! The host port (`attach --host`): a TAP in the daemon's namespace that the
//! host stack gives an address, reaching namespaces across the switch.

use anyhow::{ensure, Result};
use e2e_tests::nic::{fdb, ping_from, NicBed};
use testbed::link;

const HOST_ADDR: &str = "10.9.0.254";

#[test]
fn the_host_stack_pings_namespaces_across_the_switch() -> Result<()> {
    let bed = NicBed::new(&["a0", "b0"], None)?;
    let (h1, h2) = (&bed.hosts[0], &bed.hosts[1]);
    bed.attach("a0", &["--host"])?;
    bed.attach("b0", &[])?;
    // The default TAP name is IFACE-host, in the daemon's namespace, up.
    bed.daemon.wait_port("vale0:a0-host", true)?;
    ensure!(
        link::exists(Some(bed.switch.name()), "a0-host"),
        "no TAP a0-host in the switch namespace"
    );
    bed.switch.add_addr("a0-host", &format!("{HOST_ADDR}/24"))?;

    // The host reaches the namespace behind its own NIC and the one behind
    // the other NIC; a namespace reaches the host.
    ensure!(
        ping_from(&bed.switch, &h1.addr, 3)?,
        "host -> h1 failed: {}",
        bed.daemon.log()
    );
    ensure!(ping_from(&bed.switch, &h2.addr, 3)?, "host -> h2 failed");
    ensure!(h2.ping(HOST_ADDR, 3)?, "h2 -> host failed");

    let tap = bed.extra_counters("vale0:a0-host")?;
    assert!(tap["tap_rx"] >= 6 && tap["tap_tx"] >= 6, "{tap:?}");
    let tap_mac = bed.switch.mac("a0-host")?.to_string();
    let table = fdb(&bed.daemon)?;
    ensure!(
        table
            .iter()
            .any(|(mac, port)| *mac == tap_mac && port == "vale0:a0-host"),
        "the TAP's MAC {tap_mac} was not learned on vale0:a0-host: {table:?}"
    );

    // Detaching the NIC removes its host port and the TAP with it.
    bed.detach("a0")?;
    bed.daemon.wait_port("vale0:a0-host", false)?;
    bed.daemon.wait_port("vale0:a0", false)?;
    ensure!(
        !link::exists(Some(bed.switch.name()), "a0-host"),
        "TAP a0-host outlived the detach"
    );
    Ok(())
}

#[test]
fn the_host_port_can_be_named() -> Result<()> {
    let bed = NicBed::new(&["a0"], None)?;
    bed.attach("a0", &["--host", "--host-name", "hostp0"])?;
    bed.daemon.wait_port("vale0:hostp0", true)?;
    ensure!(link::exists(Some(bed.switch.name()), "hostp0"));
    bed.switch.add_addr("hostp0", &format!("{HOST_ADDR}/24"))?;
    ensure!(
        bed.hosts[0].ping(HOST_ADDR, 2)?,
        "h1 -> named host port failed"
    );
    Ok(())
}
