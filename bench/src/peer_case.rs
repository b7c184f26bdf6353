//! One AF_PACKET sender/receiver measurement ([`af_packet::measure_pair`])
//! as a report case, with the machine's CPU time per delivered frame.

use anyhow::{Context, Result};
use testbed::Netns;

use crate::af_packet::{self, PeerConfig};
use crate::cpu_cost::CpuWindow;
use crate::report::Case;

/// Where the frames go: from `tx_if` in `tx_ns` to `rx_if` in `rx_ns`.
pub struct PairPath<'a> {
    /// The sender's namespace.
    pub tx_ns: &'a Netns,
    /// The sender's interface.
    pub tx_if: &'a str,
    /// The receiver's namespace.
    pub rx_ns: &'a Netns,
    /// The receiver's interface.
    pub rx_if: &'a str,
}

/// Measures one run of `config` over `path` as case `name` of `kind`.
pub fn af_packet_case(
    name: &str,
    kind: &str,
    path: &PairPath,
    config: &PeerConfig,
) -> Result<Case> {
    let cpu = CpuWindow::start();
    let r = af_packet::measure_pair(kind, path.tx_ns, path.tx_if, path.rx_ns, path.rx_if, config)
        .with_context(|| format!("measuring {name}"))?;
    let cpu_ns = cpu.ns_per_packet(r.received);
    Ok(Case::new(name, kind, config.frame_len, r.mpps * 1e6)
        .with_cpu(cpu_ns)
        .with("tx", r.tx_method.to_string())
        .with("tx_mpps", r.tx_mpps)
        .with("lost", r.lost)
        .with("rx_ring_drops", r.rx_ring_drops)
        .with("corrupt", r.corrupt))
}
