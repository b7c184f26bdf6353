//! The `vswitch` command line: argument parsing and one module per subcommand.

mod admin;
mod nic;
mod pktgen_cmd;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};

use switch_port::control::client::socket_path;
use switch_user::bridge::learning::{DEFAULT_CAPACITY, DEFAULT_MAX_AGE_SECS};
use switch_user::bridge::switch::DEFAULT_MAX_PORTS;
use switch_user::control::ExtraHandler;
use switch_user::daemon::{self, DaemonConfig};
use switch_user::nic::manager::NicManager;
use switch_user::registry::SwitchConfig;

/// A userspace virtual switch with VALE semantics: learning bridges named
/// `valeN` whose ports (`valeN:name`) are shared-memory rings for VMs and
/// applications, plus NICs attached through AF_XDP.
#[derive(Parser)]
#[command(name = "vswitch", version, propagate_version = true)]
#[command(after_help = "Examples:\n  \
    vswitch daemon --threads 1               start the switch (foreground)\n  \
    vswitch create vale0:p1                  a persistent port\n  \
    vswitch pktgen vale0:a --mode rx &       receive and verify\n  \
    vswitch pktgen vale0:b --mode tx --count 1000000\n  \
    vswitch list; vswitch stats --watch 1; vswitch fdb vale0\n  \
    vswitch attach vale0 eth0 --host          a NIC, and the host stack as a port\n\n\
    The control socket is --socket, else $VSWITCH_SOCKET, else /run/vswitch/vswitch.sock.")]
struct Cli {
    /// The daemon's control socket.
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the switch daemon in the foreground (logs to stderr; SIGINT/SIGTERM stop it).
    Daemon(DaemonArgs),
    /// Create a persistent port that stays when its clients leave.
    Create(admin::CreateArgs),
    /// Delete a persistent port (it must have no client).
    Delete(admin::DeleteArgs),
    /// List switches and their ports.
    List(admin::ListArgs),
    /// Show port counters, once or every few seconds with rates.
    Stats(stats::StatsArgs),
    /// Show the learned addresses (forwarding database) of a switch.
    Fdb(admin::FdbArgs),
    /// Generate, receive, or ping-pong test traffic on a port (like netmap's pkt-gen).
    Pktgen(pktgen_cmd::PktgenArgs),
    /// Attach a network interface to a switch (AF_XDP sockets steered by an XDP program).
    Attach(nic::AttachArgs),
    /// Detach a network interface (and its host port) from a switch.
    Detach(nic::DetachArgs),
}

#[derive(clap::Args)]
struct DaemonArgs {
    /// Forwarding threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Microseconds a forwarding thread keeps polling (yielding the CPU between
    /// polls) after the last frame before it sleeps on the ports' kicks.
    #[arg(long, default_value_t = 50)]
    spin_us: u64,
    /// Ports per switch.
    #[arg(long, default_value_t = DEFAULT_MAX_PORTS)]
    max_ports: usize,
    /// Addresses per switch's forwarding table.
    #[arg(long, default_value_t = DEFAULT_CAPACITY)]
    fdb_size: usize,
    /// Seconds after which an address not seen again is forgotten.
    #[arg(long, default_value_t = DEFAULT_MAX_AGE_SECS)]
    fdb_max_age: u32,
}

/// Parses the command line and runs it.
pub fn run() -> Result<ExitCode> {
    let cli = Cli::parse();
    let socket = socket_path(cli.socket.as_deref());
    match cli.command {
        Command::Daemon(args) => {
            env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
                .format_target(false)
                .init();
            daemon::run(
                DaemonConfig {
                    socket,
                    threads: args.threads.max(1),
                    spin: Duration::from_micros(args.spin_us),
                    switch: SwitchConfig {
                        max_ports: args.max_ports,
                        fdb_capacity: args.fdb_size,
                        fdb_max_age_secs: args.fdb_max_age,
                    },
                },
                |registry| {
                    vec![Box::new(NicManager::new(registry.clone())) as Box<dyn ExtraHandler>]
                },
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Create(args) => admin::create(&socket, args),
        Command::Delete(args) => admin::delete(&socket, args),
        Command::List(args) => admin::list(&socket, args),
        Command::Stats(args) => stats::run(&socket, args),
        Command::Fdb(args) => admin::fdb(&socket, args),
        Command::Pktgen(args) => pktgen_cmd::run(&socket, args),
        Command::Attach(args) => nic::attach(&socket, args),
        Command::Detach(args) => nic::detach(&socket, args),
    }
}
