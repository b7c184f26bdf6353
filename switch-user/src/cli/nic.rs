//! `attach` and `detach`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use switch_port::control::client::Connection;
use switch_port::names::SwitchName;
use switch_port::protocol::{Request, Response, Vid, VlanMode};

use super::admin::vlan_mode;

/// Arguments of `vswitch attach`.
#[derive(clap::Args)]
pub struct AttachArgs {
    /// The switch (e.g. vale0).
    switch: SwitchName,
    /// The network interface (e.g. eth0); the port is SWITCH:IFACE.
    iface: String,
    /// Receive queues to serve: a number, or `all` (default).
    #[arg(long, default_value = "all")]
    queues: String,
    /// Require zero-copy AF_XDP (fails on drivers without it, e.g. veth).
    #[arg(long, conflicts_with = "copy")]
    zero_copy: bool,
    /// Force copy mode (the default where zero-copy is unsupported).
    #[arg(long)]
    copy: bool,
    /// Also attach the host stack as a port: a TAP interface the host gives
    /// an address, since AF_XDP takes the NIC's receive path.
    #[arg(long)]
    host: bool,
    /// The TAP's name (default: IFACE-host, first 10 characters of IFACE).
    #[arg(long, requires = "host")]
    host_name: Option<String>,
    /// Frames the XDP program passes to the kernel stack instead of the
    /// switch: an EtherType (0x0806) or a destination MAC. Repeatable.
    #[arg(long, value_name = "ETHERTYPE|MAC")]
    pass: Vec<String>,
    /// Make the NIC an access port of this VLAN (1..4094).
    #[arg(long, value_name = "VID", conflicts_with = "trunk")]
    vlan: Option<Vid>,
    /// Make the NIC a trunk: 10,20[,native=1] (tagged on the wire).
    #[arg(long, value_name = "VIDS", value_parser = VlanMode::parse_trunk)]
    trunk: Option<VlanMode>,
    /// Make the host port an access port of this VLAN.
    #[arg(
        long,
        value_name = "VID",
        requires = "host",
        conflicts_with = "host_trunk"
    )]
    host_vlan: Option<Vid>,
    /// Make the host port a trunk: 10,20[,native=1].
    #[arg(long, value_name = "VIDS", requires = "host", value_parser = VlanMode::parse_trunk)]
    host_trunk: Option<VlanMode>,
    /// Partial TCP/UDP checksums (a veth peer's local stack leaves them
    /// unfinished for the "hardware"): `complete` finishes them in
    /// software, `trust` forwards frames as they are, `auto` completes on
    /// a veth and trusts other NICs.
    #[arg(long, value_enum, default_value_t = ChecksumArg::Auto)]
    checksum: ChecksumArg,
    /// Busy-poll the NIC's queues from the forwarding threads with this
    /// NAPI budget (frames per poll, 1..65535): sets SO_PREFER_BUSY_POLL,
    /// SO_BUSY_POLL and SO_BUSY_POLL_BUDGET on its sockets. It replaces
    /// interrupts only where the device defers them (`napi_defer_hard_irqs`,
    /// `gro_flush_timeout` in /sys/class/net/IFACE/), which is left to you.
    #[arg(long, value_name = "BUDGET", value_parser = clap::value_parser!(u32).range(1..=65535))]
    busy_poll: Option<u32>,
}

/// `--checksum`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ChecksumArg {
    Auto,
    Complete,
    Trust,
}

/// Arguments of `vswitch detach`.
#[derive(clap::Args)]
pub struct DetachArgs {
    /// The switch.
    switch: SwitchName,
    /// The network interface.
    iface: String,
}

pub fn attach(socket: &Path, args: AttachArgs) -> Result<ExitCode> {
    let queues = match args.queues.as_str() {
        "all" => None,
        n => Some(
            n.parse::<u32>()
                .map_err(|_| anyhow::anyhow!("--queues takes a number or `all`, not {n:?}"))?,
        ),
    };
    let zero_copy = match (args.zero_copy, args.copy) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    let mut conn = Connection::connect(socket)?;
    let (response, _) = conn.call(&Request::Attach {
        switch: args.switch,
        iface: args.iface.clone(),
        queues,
        zero_copy,
        host: args.host,
        host_name: args.host_name,
        pass: args.pass,
        checksum: match args.checksum {
            ChecksumArg::Auto => None,
            ChecksumArg::Complete => Some("complete".into()),
            ChecksumArg::Trust => Some("trust".into()),
        },
        vlan: vlan_mode(args.vlan, args.trunk),
        host_vlan: vlan_mode(args.host_vlan, args.host_trunk),
        busy_poll: args.busy_poll,
    })?;
    if let Response::Attached {
        nic_port,
        host_port,
        queues,
        nic_queues,
        xdp_mode,
        zero_copy,
    } = response
    {
        println!(
            "attached {} as {nic_port}: {queues} queue(s), XDP in {xdp_mode} mode, {} sockets",
            args.iface,
            if zero_copy { "zero-copy" } else { "copy-mode" }
        );
        if queues < nic_queues {
            eprintln!(
                "warning: {} has {nic_queues} receive queues; frames arriving on the {} without a socket are dropped \
                 (use --queues all, or shrink the NIC's channels with `ethtool -L {} combined {queues}`)",
                args.iface,
                nic_queues - queues,
                args.iface
            );
        }
        if let Some(h) = host_port {
            println!("host stack port {h} (give its TAP an address to reach the switch)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn detach(socket: &Path, args: DetachArgs) -> Result<ExitCode> {
    let mut conn = Connection::connect(socket)?;
    conn.call(&Request::Detach {
        switch: args.switch.clone(),
        iface: args.iface.clone(),
    })?;
    println!("detached {} from {}", args.iface, args.switch);
    Ok(ExitCode::SUCCESS)
}
