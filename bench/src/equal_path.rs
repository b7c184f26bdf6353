//! The Linux bridge and the switch on equal paths: the same namespaces, the
//! same veths, the same AF_PACKET sender and receiver; only the forwarder in
//! the middle namespace changes.
//!
//! ```text
//!  ns tx          ns middle                                   ns rx
//!  tx0 <-veth-> tx0p --[ br0 ]-------------------- rx0p <-veth-> rx0
//!  tx0 <-veth-> tx0p --[ NIC port - vale0 - NIC port ]- rx0p <-veth-> rx0
//! ```
//!
//! The bridge runs first; then `br0` is deleted and a `vswitch daemon` in
//! the middle namespace attaches `tx0p` and `rx0p` (AF_XDP NIC ports). Both
//! forwarders know the receiver's address before measuring (the bridge from
//! a static entry, the switch from one frame the receiver sends).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::af_packet::{self, PeerConfig, SenderConfig, TxMethod};
use crate::linux_bridge::{BridgeTopology, RX_MAC, TX_MAC};
use crate::nic_port::NicSwitch;
use crate::peer_case::{af_packet_case, PairPath};
use crate::repeat::repeat;
use crate::report::{Case, Report};

/// The Linux bridge case.
pub const BRIDGE: &str = "same veths: Linux bridge";
/// Its path, in the case's `path` field.
const BRIDGE_PATH: &str = "AF_PACKET -> veth -> Linux bridge -> veth -> AF_PACKET";
/// The switch case.
pub const SWITCH: &str = "same veths: vswitch, 2 NIC ports";
/// Its path.
const SWITCH_PATH: &str =
    "AF_PACKET -> veth -> NIC port -> vswitch -> NIC port -> veth -> AF_PACKET";

/// Measures both forwarders at each of `sizes` (60..=1514), each run
/// `repeats` times, and adds the cases and the ratio notes.
pub fn run(
    bin_dir: &Path,
    sizes: &[usize],
    duration: Duration,
    repeats: usize,
    report: &mut Report,
    notes: &mut Vec<String>,
) -> Result<()> {
    let largest = sizes.iter().copied().max().unwrap_or(64);
    let topology = BridgeTopology::new(largest).context("building the bridge topology")?;
    let path = PairPath {
        tx_ns: &topology.tx,
        tx_if: "tx0",
        rx_ns: &topology.rx,
        rx_if: "rx0",
    };
    let measure = |name: &str, kind: &str, size: usize| -> Result<Case> {
        repeat(repeats, || {
            af_packet_case(name, kind, &path, &PeerConfig::new(size, duration))
        })
    };
    for &size in sizes {
        report.push(measure(BRIDGE, "linux_bridge", size)?.with("path", BRIDGE_PATH));
    }
    let switch = switch_in_place_of_bridge(bin_dir, &topology)?;
    for &size in sizes {
        report.push(measure(SWITCH, "nic_port", size)?.with("path", SWITCH_PATH));
    }
    switch.stop()?;
    drop(topology);
    for &size in sizes {
        if let (Some(ours), Some(bridge)) = (report.mpps(SWITCH, size), report.mpps(BRIDGE, size)) {
            notes.push(format!(
                "{size} B, same veths, sender and receiver: vswitch with two NIC ports forwards \
                 {:.2}x the Linux bridge's rate",
                ours / bridge.max(1e-9)
            ));
        }
        let cpu = |name: &str| report.cpu_ns_per_packet(name, size);
        if let (Some(ours), Some(bridge)) = (cpu(SWITCH), cpu(BRIDGE)) {
            notes.push(format!(
                "{size} B, same path: CPU per frame {ours:.0} ns (vswitch) against {bridge:.0} ns \
                 (Linux bridge)"
            ));
        }
    }
    Ok(())
}

/// Deletes the topology's bridge and starts, in the middle namespace, a
/// switch with `tx0p` and `rx0p` as NIC ports that has learned the
/// receiver's address.
pub fn switch_in_place_of_bridge(bin_dir: &Path, topology: &BridgeTopology) -> Result<NicSwitch> {
    topology.remove_bridge()?;
    let switch = NicSwitch::start(bin_dir, &topology.bridge, "tx0p")?;
    switch.attach("rx0p")?;
    // The receiver never sends: one frame from it teaches the switch where
    // it is (the bridge had a static entry), so neither floods.
    af_packet::send_in(
        &topology.rx,
        &SenderConfig {
            ifname: "rx0".into(),
            frame_len: 64,
            src: RX_MAC,
            dst: TX_MAC,
            batch: 1,
            duration: Duration::from_secs(1),
            max_packets: 1,
            method: TxMethod::Sendmmsg,
        },
    )?;
    testbed::wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
        switch.learned(RX_MAC).unwrap_or(false)
    })
    .context("the switch did not learn the receiver's address")?;
    Ok(switch)
}
