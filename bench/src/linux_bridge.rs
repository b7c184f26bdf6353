//! The Linux bridge peer: AF_PACKET sender -> veth -> Linux bridge -> veth
//! -> AF_PACKET receiver, each part in a namespace of its own that the
//! benchmark creates and removes.
//!
//! ```text
//!  ns tx          ns bridge                     ns rx
//!  tx0 <-veth-> tx0p --[br0]-- rx0p <-veth-> rx0
//! ```
//!
//! The bridge forwards in softirq context on the sender's CPU (veth
//! transmit hands each frame to the peer's backlog, which runs when the
//! sender's system call re-enables bottom halves), so the sender's core pays
//! for the whole path; the receiver reads its ring on the other core.

use std::time::Duration;

use anyhow::Context;
use testbed::{Mac, Netns};

use crate::af_packet::{self, PeerConfig, PeerResult};

/// The sender's address (`tx0`).
pub const TX_MAC: Mac = Mac([0x02, 0x76, 0x73, 0x62, 0x00, 0x01]);
/// The receiver's address (`rx0`).
pub const RX_MAC: Mac = Mac([0x02, 0x76, 0x73, 0x62, 0x00, 0x02]);
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// The three namespaces and their links; dropping it removes everything.
pub struct BridgeTopology {
    /// Holds the sender's end, `tx0`.
    pub tx: Netns,
    /// Holds the bridge `br0` and its ports `tx0p`, `rx0p`.
    pub bridge: Netns,
    /// Holds the receiver's end, `rx0`.
    pub rx: Netns,
}

impl BridgeTopology {
    /// Builds the namespaces, veths and bridge for frames up to `frame_len`
    /// bytes, and waits until both bridge ports forward.
    pub fn new(frame_len: usize) -> anyhow::Result<BridgeTopology> {
        let topology = BridgeTopology {
            tx: Netns::new(testbed::DEFAULT_PREFIX)?,
            bridge: Netns::new(testbed::DEFAULT_PREFIX)?,
            rx: Netns::new(testbed::DEFAULT_PREFIX)?,
        };
        let (tx, br, rx) = (&topology.tx, &topology.bridge, &topology.rx);
        for ns in [tx, br, rx] {
            ns.disable_ipv6()?;
        }
        let mtu = af_packet::mtu_for(frame_len);
        br.add_bridge("br0")?;
        br.set_mtu("br0", mtu)?;
        br.add_veth("tx0p", "tx0", Some(tx), None)?;
        br.add_veth("rx0p", "rx0", Some(rx), None)?;
        for port in ["tx0p", "rx0p"] {
            br.set_mtu(port, mtu)?;
            br.enslave(port, "br0")?;
            br.set_up(port)?;
        }
        br.set_up("br0")?;
        tx.set_mtu("tx0", mtu)?;
        tx.set_mac("tx0", TX_MAC)?;
        tx.set_up("tx0")?;
        rx.set_mtu("rx0", mtu)?;
        rx.set_mac("rx0", RX_MAC)?;
        rx.set_up("rx0")?;
        // The receiver never sends, so the bridge would flood its frames:
        // a static entry makes it a plain forward.
        br.add_fdb_static("rx0p", RX_MAC)?;
        testbed::wait_until(SETTLE_TIMEOUT, Duration::from_millis(10), || {
            ["tx0p", "rx0p"]
                .iter()
                .all(|port| br.bridge_port_state(port).ok().as_deref() == Some("forwarding"))
                && tx.is_lower_up("tx0").unwrap_or(false)
                && rx.is_lower_up("rx0").unwrap_or(false)
        })
        .context("bridge ports did not reach the forwarding state")?;
        Ok(topology)
    }
}

impl BridgeTopology {
    /// Deletes `br0`, which releases `tx0p` and `rx0p` (still up, in the
    /// bridge namespace) for another forwarder.
    pub fn remove_bridge(&self) -> anyhow::Result<()> {
        self.bridge.ip(["link", "del", "br0"])?;
        Ok(())
    }
}

/// Measures the Linux bridge peer: frames of `config.frame_len` bytes for
/// `config.duration` through a fresh topology, removed afterwards.
pub fn linux_bridge(config: &PeerConfig) -> anyhow::Result<PeerResult> {
    let topology = BridgeTopology::new(config.frame_len).context("building the bridge topology")?;
    let result = af_packet::measure_pair(
        "linux-bridge",
        &topology.tx,
        "tx0",
        &topology.rx,
        "rx0",
        config,
    )
    .context("measuring the Linux bridge")?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::af_packet::TxMethod;

    #[test]
    fn frames_cross_the_bridge_intact_and_the_namespaces_go() {
        let config = PeerConfig {
            frame_len: 64,
            duration: Duration::from_millis(300),
            batch: 64,
            method: TxMethod::Sendmmsg,
        };
        let topology = BridgeTopology::new(config.frame_len).unwrap();
        let names: Vec<String> = [&topology.tx, &topology.bridge, &topology.rx]
            .iter()
            .map(|ns| ns.name().to_string())
            .collect();
        let result = af_packet::measure_pair(
            "linux-bridge",
            &topology.tx,
            "tx0",
            &topology.rx,
            "rx0",
            &config,
        )
        .unwrap();
        assert!(result.sent > 1000, "{result:?}");
        assert!(result.received > 0, "{result:?}");
        assert_eq!(
            result.received + result.rx_ring_drops,
            result.sent,
            "{result:?}"
        );
        assert_eq!(result.corrupt, 0, "{result:?}");
        // Other traffic (a stray IPv6 or bridge frame) may appear; it is
        // counted as foreign, never mistaken for ours.
        drop(topology);
        for name in names {
            assert!(!std::path::Path::new("/run/netns").join(&name).exists());
        }
    }
}
