//! The `vswitch` command line: argument parsing and one module per subcommand.

mod admin;
mod capture;
mod generate;
mod nic;
mod pktgen_cmd;
mod stats;
mod top;
mod tunnel;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use switch_port::control::client::socket_path;
use switch_user::access::AccessPolicy;
use switch_user::admission::{
    ConnectionLimits, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_USER, RESERVED_FOR_ROOT,
};
use switch_user::bridge::learning::{DEFAULT_CAPACITY, DEFAULT_MAX_AGE_SECS, DEFAULT_MAX_MACS};
use switch_user::bridge::switch::DEFAULT_MAX_PORTS;
use switch_user::control::{ExtraHandler, ServerConfig};
use switch_user::daemon::{self, DaemonConfig};
use switch_user::deadlines::DEFAULT_CONTROL_TIMEOUT_SECS;
use switch_user::nic::manager::NicManager;
use switch_user::quota::{self, UserLimits};
use switch_user::registry::SwitchConfig;
use switch_user::tunnel::manager::TunnelManager;
use switch_user::users;

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
    vswitch list; vswitch stats --watch 1; vswitch top; vswitch fdb vale0\n  \
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
    /// Show ports sorted by rate, refreshed every second (full screen on a
    /// terminal: q quits; plain lines otherwise).
    Top(top::TopArgs),
    /// Show the learned addresses (forwarding database) of a switch.
    Fdb(admin::FdbArgs),
    /// Generate, receive, or ping-pong test traffic on a port (like netmap's pkt-gen).
    Pktgen(pktgen_cmd::PktgenArgs),
    /// Attach a network interface to a switch (AF_XDP sockets steered by an XDP program).
    Attach(nic::AttachArgs),
    /// Detach a network interface (and its host port) from a switch.
    Detach(nic::DetachArgs),
    /// Capture a port's frames into a pcapng (or pcap) file or a pipe (`-w -`).
    Capture(capture::CaptureArgs),
    /// Add, delete or list mirrors: copies of ports' traffic sent to another port.
    Mirror(capture::MirrorArgs),
    /// Add, delete or list VXLAN tunnel ports (RFC 7348) to other hosts' switches.
    #[command(subcommand)]
    Tunnel(tunnel::TunnelCommand),
    /// Print the commands that recreate the saved configuration (persistent ports, attachments).
    ShowConfig,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(generate::CompletionsArgs),
    /// Write the manual pages (vswitch.1, vswitch-COMMAND.1) into a directory.
    Man(generate::ManArgs),
}

#[derive(clap::Args)]
struct DaemonArgs {
    /// Log level: error, warn, info, debug, trace or off. Overrides
    /// $RUST_LOG, which is used when this is absent (default: info).
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<log::LevelFilter>,
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
    /// Addresses a client port may have learned at once (NIC and host ports:
    /// half of --fdb-size); `vswitch create --max-macs` sets a port's own.
    #[arg(long, default_value_t = DEFAULT_MAX_MACS)]
    max_macs: u32,
    /// Frames a second each port may flood (broadcast, multicast, unknown
    /// unicast); 0 for no cap. `vswitch create --storm-pps` sets a port's own.
    #[arg(long, default_value_t = 0)]
    storm_pps: u64,
    /// Permission bits of the control socket, in octal: who may connect at all.
    #[arg(long, default_value = "0660", value_parser = parse_mode)]
    socket_mode: u32,
    /// Group of the control socket (name or gid): its members may connect
    /// (default: the daemon's own group, root's).
    #[arg(long, value_name = "GROUP")]
    socket_group: Option<String>,
    /// Group (name or gid) whose members administer the daemon like root:
    /// attach and detach NICs, open, delete and inspect every port.
    #[arg(long, value_name = "GROUP")]
    admin_group: Option<String>,
    /// Ports one user (not root, not the admin group) may own.
    #[arg(long, default_value_t = quota::DEFAULT_MAX_PORTS)]
    max_ports_per_user: usize,
    /// Switches one user's ports may span.
    #[arg(long, default_value_t = quota::DEFAULT_MAX_SWITCHES)]
    max_switches_per_user: usize,
    /// MiB of port memory one user's ports may take (a default port takes 4).
    #[arg(long, value_name = "MIB", default_value_t = quota::DEFAULT_MAX_PORT_MEMORY_MIB)]
    max_port_memory_per_user: u64,
    /// Control connections served at once (the last 16 only for root).
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Control connections one user (not root) may have open at once.
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS_PER_USER)]
    max_connections_per_user: usize,
    /// Seconds a client has to send a whole request (the first one counted
    /// from connecting) and to read its response.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_CONTROL_TIMEOUT_SECS)]
    control_timeout: u64,
    /// The file the configuration (persistent ports, NIC attachments) is
    /// saved in and restored from at start; `none` for no file.
    #[arg(long, value_name = "FILE|none", default_value = switch_user::state::DEFAULT_STATE_PATH)]
    state: PathBuf,
    /// Serve Prometheus metrics over HTTP at ADDR:PORT/metrics (e.g.
    /// 127.0.0.1:9469); see docs/observability.md.
    #[arg(long, value_name = "ADDR:PORT")]
    metrics_listen: Option<std::net::SocketAddr>,
}

fn parse_mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o777 => Ok(mode),
        _ => Err(format!("{s:?} is not an octal mode from 0 to 0777")),
    }
}

fn group(name: &Option<String>, flag: &str) -> Result<Option<users::Group>> {
    name.as_deref()
        .map(|n| users::group(n).with_context(|| format!("{flag} {n}")))
        .transpose()
}

/// Starts the daemon's logger on stderr: `level` when given, else
/// `$RUST_LOG` (env_logger's filter syntax), else info. Under systemd
/// (`$JOURNAL_STREAM` set) lines carry no timestamp: the journal adds its own.
fn init_logging(level: Option<log::LevelFilter>) {
    let mut builder = match level {
        Some(level) => {
            let mut builder = env_logger::Builder::new();
            builder.filter_level(level);
            builder
        }
        None => env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")),
    };
    builder.format_target(false);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.format_timestamp(None);
    }
    builder.init();
}

/// Parses the command line and runs it.
pub fn run() -> Result<ExitCode> {
    let cli = Cli::parse();
    let socket = socket_path(cli.socket.as_deref());
    match cli.command {
        Command::Daemon(args) => {
            init_logging(args.log_level);
            daemon::run(
                DaemonConfig {
                    socket,
                    threads: args.threads.max(1),
                    spin: Duration::from_micros(args.spin_us),
                    switch: SwitchConfig {
                        max_ports: args.max_ports,
                        fdb_capacity: args.fdb_size,
                        fdb_max_age_secs: args.fdb_max_age,
                        max_macs: args.max_macs,
                        storm_pps: args.storm_pps,
                    },
                    socket_mode: args.socket_mode,
                    socket_group: group(&args.socket_group, "--socket-group")?,
                    server: ServerConfig {
                        policy: AccessPolicy::new(group(&args.admin_group, "--admin-group")?),
                        connections: ConnectionLimits {
                            max_total: args.max_connections,
                            max_per_user: args.max_connections_per_user,
                            reserved_for_root: RESERVED_FOR_ROOT.min(args.max_connections / 2),
                        },
                        timeout: Duration::from_secs(args.control_timeout.max(1)),
                    },
                    limits: UserLimits {
                        max_ports: args.max_ports_per_user,
                        max_switches: args.max_switches_per_user,
                        max_port_memory: args.max_port_memory_per_user.saturating_mul(1 << 20),
                    },
                    state: (args.state.as_os_str() != "none").then_some(args.state),
                    metrics_listen: args.metrics_listen,
                },
                |registry| {
                    vec![
                        Box::new(NicManager::new(registry.clone())) as Box<dyn ExtraHandler>,
                        Box::new(TunnelManager::new(registry.clone())),
                    ]
                },
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Create(args) => admin::create(&socket, args),
        Command::Delete(args) => admin::delete(&socket, args),
        Command::List(args) => admin::list(&socket, args),
        Command::Stats(args) => stats::run(&socket, args),
        Command::Top(args) => top::run(&socket, args),
        Command::Fdb(args) => admin::fdb(&socket, args),
        Command::Pktgen(args) => pktgen_cmd::run(&socket, args),
        Command::Attach(args) => nic::attach(&socket, args),
        Command::Detach(args) => nic::detach(&socket, args),
        Command::Tunnel(command) => tunnel::run(&socket, command),
        Command::ShowConfig => admin::show_config(&socket),
        Command::Capture(args) => capture::capture(&socket, args),
        Command::Mirror(args) => capture::mirror(&socket, args),
        Command::Completions(args) => generate::completions(args),
        Command::Man(args) => generate::man(args),
    }
}
