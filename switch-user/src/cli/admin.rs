//! `create`, `delete`, `list`, `fdb` and `show-config`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use switch_port::control::client::Connection;
use switch_port::mac::MacAddr;
use switch_port::names::{PortName, SwitchName};
use switch_port::protocol::{Request, Response, Vid, VlanMode};

/// Arguments of `vswitch create`.
#[derive(clap::Args)]
pub struct CreateArgs {
    /// The port, SWITCH:PORT (e.g. vale0:p1).
    port: PortName,
    /// Slots per ring (a power of two, 64..16384).
    #[arg(long)]
    ring_size: Option<u32>,
    /// Bytes per buffer (a multiple of 64, 128..16384; 9216 for jumbo frames).
    #[arg(long)]
    buf_size: Option<u32>,
    /// Lock the port to this source MAC address: frames with another source
    /// are dropped (counted as spoofed) and no other port may use it.
    #[arg(long, value_name = "MAC")]
    mac: Option<MacAddr>,
    /// Most addresses the port may have learned at once (default: the daemon's --max-macs).
    #[arg(long, value_name = "N")]
    max_macs: Option<u32>,
    /// Most frames a second the port may flood (broadcast, multicast,
    /// unknown unicast); 0 for no cap (default: the daemon's --storm-pps).
    #[arg(long, value_name = "PPS")]
    storm_pps: Option<u64>,
    /// Make it an access port of this VLAN (1..4094): untagged on the port,
    /// tagged inside the switch.
    #[arg(long, value_name = "VID", conflicts_with = "trunk")]
    vlan: Option<Vid>,
    /// Make it a trunk carrying these VLANs tagged, and untagged frames in
    /// the native one if given: 10,20[,native=1].
    #[arg(long, value_name = "VIDS", value_parser = VlanMode::parse_trunk)]
    trunk: Option<VlanMode>,
}

/// The VLAN mode of `--vlan` or `--trunk`.
pub fn vlan_mode(vlan: Option<Vid>, trunk: Option<VlanMode>) -> Option<VlanMode> {
    vlan.map(|Vid(vlan)| VlanMode::Access { vlan }).or(trunk)
}

/// Arguments of `vswitch delete`.
#[derive(clap::Args)]
pub struct DeleteArgs {
    /// The port, SWITCH:PORT.
    port: PortName,
}

/// Arguments of `vswitch list`.
#[derive(clap::Args)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Arguments of `vswitch fdb`.
#[derive(clap::Args)]
pub struct FdbArgs {
    /// The switch (e.g. vale0).
    switch: SwitchName,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn create(socket: &Path, args: CreateArgs) -> Result<ExitCode> {
    let mut conn = Connection::connect(socket)?;
    conn.call(&Request::CreatePort {
        port: args.port.clone(),
        ring_size: args.ring_size,
        buf_size: args.buf_size,
        mac: args.mac,
        max_macs: args.max_macs,
        storm_pps: args.storm_pps,
        vlan: vlan_mode(args.vlan, args.trunk),
    })?;
    println!("created persistent port {}", args.port);
    Ok(ExitCode::SUCCESS)
}

pub fn delete(socket: &Path, args: DeleteArgs) -> Result<ExitCode> {
    let mut conn = Connection::connect(socket)?;
    conn.call(&Request::DeletePort {
        port: args.port.clone(),
    })?;
    println!("deleted port {}", args.port);
    Ok(ExitCode::SUCCESS)
}

pub fn list(socket: &Path, args: ListArgs) -> Result<ExitCode> {
    let mut conn = Connection::connect(socket)?;
    let (Response::List { switches }, _) = conn.call(&Request::List {})? else {
        anyhow::bail!("unexpected answer to list");
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "switches": switches }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    if switches.is_empty() {
        println!("no switches (a switch exists while it has ports)");
    }
    for s in switches {
        println!("{} ({} of {} ports)", s.name, s.ports.len(), s.max_ports);
        println!(
            "  {:>4}  {:<24} {:<5} {:<16} {:>7} {:<10} {:>5} {:>6}  {:<17} {:>8} {:>9}  {:<14}  state",
            "id",
            "port",
            "kind",
            "owner",
            "clients",
            "persistent",
            "slots",
            "buf",
            "mac",
            "max-macs",
            "storm-pps",
            "vlan"
        );
        for p in s.ports {
            let owner = match &p.owner_name {
                Some(name) => format!("{name} ({})", p.owner_uid),
                None => p.owner_uid.to_string(),
            };
            println!(
                "  {:>4}  {:<24} {:<5} {:<16} {:>7} {:<10} {:>5} {:>6}  {:<17} {:>8} {:>9}  {:<14}  {}",
                p.id,
                p.name.as_str(),
                format!("{:?}", p.kind).to_lowercase(),
                owner,
                p.clients,
                if p.persistent { "yes" } else { "no" },
                p.ring_size,
                p.buf_size,
                p.mac.map_or_else(|| "-".to_owned(), |m| m.to_string()),
                p.max_macs,
                if p.storm_pps == 0 {
                    "-".to_owned()
                } else {
                    p.storm_pps.to_string()
                },
                match &p.vlan {
                    None => "-".to_owned(),
                    Some(VlanMode::Access { vlan }) => format!("access {vlan}"),
                    Some(trunk) => format!("trunk {trunk}"),
                },
                if p.errored {
                    "client wrote bad ring entries"
                } else {
                    "ok"
                }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn fdb(socket: &Path, args: FdbArgs) -> Result<ExitCode> {
    let mut conn = Connection::connect(socket)?;
    let (
        Response::Fdb {
            switch,
            entries,
            stats,
        },
        _,
    ) = conn.call(&Request::Fdb {
        switch: args.switch,
    })?
    else {
        anyhow::bail!("unexpected answer to fdb");
    };
    if args.json {
        let v = serde_json::json!({ "switch": switch, "entries": entries, "stats": stats });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{switch}: {} of {} entries, {} learned, {} moved, {} refused (table full), {} refused (port at its --max-macs), {} aged out",
        stats.entries,
        stats.capacity,
        stats.learned,
        stats.moved,
        stats.refused,
        stats.port_limited,
        stats.aged
    );
    println!("  {:>4}  {:<17}  {:<24}  age (s)", "vlan", "mac", "port");
    for e in entries {
        println!(
            "  {:>4}  {:<17}  {:<24} {:>8}",
            if e.vlan == 0 {
                "-".to_owned()
            } else {
                e.vlan.to_string()
            },
            e.mac.to_string(),
            e.port.as_str(),
            e.age_secs
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn show_config(socket: &Path) -> Result<ExitCode> {
    let mut conn = Connection::connect(socket)?;
    let (Response::Config { commands }, _) = conn.call(&Request::ShowConfig {})? else {
        anyhow::bail!("unexpected answer to show-config");
    };
    for command in commands {
        println!("{command}");
    }
    Ok(ExitCode::SUCCESS)
}
