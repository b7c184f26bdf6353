//! `tunnel add`, `tunnel del` and `tunnel list`.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

use switch_port::control::client::Connection;
use switch_port::names::{PortName, SwitchName};
use switch_port::protocol::{
    Request, Response, TunnelSpec, Vid, VlanMode, DEFAULT_UNDERLAY_MTU, VXLAN_PORT,
};

use super::admin::vlan_mode;

/// The `tunnel` subcommands.
#[derive(clap::Subcommand)]
pub enum TunnelCommand {
    /// Add a VXLAN tunnel port SWITCH:NAME (admins only).
    Add(AddArgs),
    /// Delete a tunnel port (admins only).
    Del(DelArgs),
    /// List the tunnel ports.
    List(ListArgs),
}

/// Arguments of `vswitch tunnel add`.
#[derive(clap::Args)]
pub struct AddArgs {
    /// The switch (e.g. vale0).
    switch: SwitchName,
    /// The port's name; the port is SWITCH:NAME.
    name: String,
    /// The VXLAN network identifier (0 to 16777215).
    #[arg(long)]
    vni: u32,
    /// The local VTEP address (the UDP socket binds to it; tunnels of
    /// different VNIs share one address and port).
    #[arg(long, value_name = "IP")]
    local: Ipv4Addr,
    /// A remote VTEP: broadcast, multicast and unknown unicast go to every
    /// one (head-end replication). Repeatable.
    #[arg(long, value_name = "IP")]
    remote: Vec<Ipv4Addr>,
    /// A multicast group that gets them too (joined on --local's interface).
    #[arg(long, value_name = "MCAST_IP")]
    group: Option<Ipv4Addr>,
    /// The UDP port of the VTEPs.
    #[arg(long, default_value_t = VXLAN_PORT)]
    dst_port: u16,
    /// The underlay's IP MTU: frames longer than this minus 36 bytes are
    /// dropped (inner IP MTU: this minus 50).
    #[arg(long, default_value_t = DEFAULT_UNDERLAY_MTU)]
    underlay_mtu: u16,
    /// Map the VNI to this VLAN of the switch (1..4094): the tunnel port is
    /// an access port of it (frames leave untagged inside the VNI).
    #[arg(long, value_name = "VID", conflicts_with = "trunk")]
    vlan: Option<Vid>,
    /// Make the tunnel port a trunk: these VLANs travel tagged inside the
    /// VNI, untagged frames in the native one if given: 10,20[,native=1].
    #[arg(long, value_name = "VIDS", value_parser = VlanMode::parse_trunk)]
    trunk: Option<VlanMode>,
    /// Move the datagrams through AF_XDP sockets on the interface that
    /// holds --local (an XDP program steers the tunnel's UDP datagrams to
    /// them; the rest stays with the kernel). Unicast remotes only.
    #[arg(long, conflicts_with = "group")]
    underlay_xdp: bool,
}

/// Arguments of `vswitch tunnel del`.
#[derive(clap::Args)]
pub struct DelArgs {
    /// The switch.
    switch: SwitchName,
    /// The tunnel port's name.
    name: String,
}

/// Arguments of `vswitch tunnel list`.
#[derive(clap::Args)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn port(switch: &SwitchName, name: &str) -> Result<PortName> {
    PortName::join(switch, name).with_context(|| format!("bad tunnel name {name:?}"))
}

pub fn run(socket: &Path, command: TunnelCommand) -> Result<ExitCode> {
    let mut conn = Connection::connect(socket)?;
    match command {
        TunnelCommand::Add(a) => {
            let port = port(&a.switch, &a.name)?;
            conn.call(&Request::TunnelAdd {
                port: port.clone(),
                tunnel: TunnelSpec {
                    vni: a.vni,
                    local: a.local,
                    remotes: a.remote,
                    group: a.group,
                    dst_port: a.dst_port,
                    underlay_mtu: a.underlay_mtu,
                    vlan: vlan_mode(a.vlan, a.trunk),
                    underlay_xdp: a.underlay_xdp,
                },
            })?;
            println!("added tunnel port {port} (VNI {})", a.vni);
        }
        TunnelCommand::Del(a) => {
            let port = port(&a.switch, &a.name)?;
            conn.call(&Request::TunnelDel { port: port.clone() })?;
            println!("deleted tunnel port {port}");
        }
        TunnelCommand::List(a) => {
            let (response, _) = conn.call(&Request::TunnelList {})?;
            let Response::Tunnels { tunnels } = response else {
                anyhow::bail!("unexpected response to tunnel list: {response:?}");
            };
            if a.json {
                println!("{}", serde_json::to_string_pretty(&tunnels)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<20} {:>8} {:<12} {:<15} {:>5} {:>5} {:>7}  remotes",
                "PORT", "VNI", "VLAN", "LOCAL", "UDP", "MTU", "LEARNED"
            );
            for t in tunnels {
                let mut remotes: Vec<String> =
                    t.spec.remotes.iter().map(ToString::to_string).collect();
                if let Some(g) = t.spec.group {
                    remotes.push(format!("group {g}"));
                }
                if t.spec.underlay_xdp {
                    remotes.push("(AF_XDP underlay)".into());
                }
                println!(
                    "{:<20} {:>8} {:<12} {:<15} {:>5} {:>5} {:>7}  {}",
                    t.port.to_string(),
                    t.spec.vni,
                    match &t.spec.vlan {
                        None => "-".to_owned(),
                        Some(VlanMode::Access { vlan }) => format!("access {vlan}"),
                        Some(trunk) => format!("trunk {trunk}"),
                    },
                    t.spec.local.to_string(),
                    t.spec.dst_port,
                    t.spec.underlay_mtu,
                    t.learned,
                    if remotes.is_empty() {
                        "-".to_owned()
                    } else {
                        remotes.join(",")
                    }
                );
                for v in &t.vteps {
                    println!(
                        "    {}  behind {:<15}  {:>4} s",
                        v.mac,
                        v.vtep.to_string(),
                        v.age_secs
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
