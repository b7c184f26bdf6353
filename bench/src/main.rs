//! `bench`: the project's benchmarks. `bench switch` runs every switch case
//! side by side (forwarding core, end to end, the Linux bridge, the copy
//! ceiling), prints one table and writes JSON; `linux-bridge` and `veth-rx`
//! run a single peer case.

mod af_packet;
mod copy_ceiling;
mod cpu_cost;
mod equal_path;
mod guest_vm;
mod latency_breakdown;
mod linux_bridge;
mod nic_line_rate;
mod nic_port;
mod nic_rx_variants;
mod nic_vm;
mod peer_case;
mod pktgen_summary;
mod plot;
mod procs;
mod raw_afxdp;
mod repeat;
mod report;
mod suite_args;
mod suite_nic;
mod suite_switch;
mod suite_vm;
mod switch_capture;
mod switch_core;
mod switch_e2e;
mod switch_scale;
mod veth_pair;
mod vlan_core;
mod vm_idle;
mod vm_scale;
mod vxlan_tunnel;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use crate::af_packet::{PeerConfig, PeerResult, TxMethod};

/// Peer benchmarks in network namespaces the benchmark creates.
#[derive(Parser)]
#[command(name = "bench")]
struct Cli {
    #[command(subcommand)]
    case: Case,
}

#[derive(Subcommand)]
enum Case {
    /// The switch suite: core, end to end, Linux bridge and copy ceiling, side by side.
    Switch(suite_switch::SwitchArgs),
    /// The VM suite: the seed's table, our VMM per configuration beside QEMU.
    Vm(suite_vm::VmArgs),
    /// The NIC suite: a NIC port beside raw AF_XDP, AF_PACKET and the Linux bridge, driven at line rate.
    Nic(suite_nic::NicArgs),
    /// AF_PACKET sender -> veth -> Linux bridge -> veth -> AF_PACKET receiver.
    LinuxBridge(RunArgs),
    /// AF_PACKET sender on one end of a veth, receiver on the other.
    VethRx(RunArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// Frame length in bytes, without FCS.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Seconds of sending (at most 60).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Frames per system call.
    #[arg(long, default_value_t = af_packet::DEFAULT_BATCH)]
    batch: usize,
    /// How the sender hands frames to the kernel.
    #[arg(long, value_enum, default_value_t = TxArg::Sendmmsg)]
    tx: TxArg,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum TxArg {
    Sendmmsg,
    TxRing,
}

impl RunArgs {
    fn config(&self) -> anyhow::Result<PeerConfig> {
        let mut config = PeerConfig::new(self.size, suite_args::duration(self.seconds)?);
        config.batch = self.batch;
        config.method = match self.tx {
            TxArg::Sendmmsg => TxMethod::Sendmmsg,
            TxArg::TxRing => TxMethod::TxRing,
        };
        Ok(config)
    }
}

fn print(result: &PeerResult, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(result)?);
        return Ok(());
    }
    println!(
        "{:<16} {:>6} {:>9} {:>6} {:>10} {:>10} {:>8} {:>9} {:>8} {:>7} {:>7} {:>7}",
        "case",
        "bytes",
        "tx",
        "batch",
        "sent",
        "received",
        "Mpps",
        "Gbit/s",
        "ns/pkt",
        "lost",
        "rx-drop",
        "corrupt"
    );
    println!(
        "{:<16} {:>6} {:>9} {:>6} {:>10} {:>10} {:>8.3} {:>9.3} {:>8.1} {:>7} {:>7} {:>7}",
        result.case,
        result.frame_len,
        result.tx_method.to_string(),
        result.batch,
        result.sent,
        result.received,
        result.mpps,
        result.gbps,
        result.ns_per_pkt,
        result.lost,
        result.rx_ring_drops,
        result.corrupt
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Namespaces left by earlier runs that were killed.
    testbed::sweep_stale(testbed::DEFAULT_PREFIX).context("sweeping stale namespaces")?;
    let (result, json) = match &cli.case {
        Case::Switch(args) => return suite_switch::run(args),
        Case::Vm(args) => return suite_vm::run(args),
        Case::Nic(args) => return suite_nic::run(args),
        Case::LinuxBridge(args) => (linux_bridge::linux_bridge(&args.config()?)?, args.json),
        Case::VethRx(args) => (af_packet::veth_receive(&args.config()?)?, args.json),
    };
    print(&result, json)
}
