//! `vmm`: boots a PVH guest image in a KVM VM with an emulated e1000 attached
//! to a vswitch port.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use vmm::irq::IrqMode;
use vmm::net::backend::BackendSpec;
use vmm::net::NetConfig;
use vmm::sandbox::{Credentials, SandboxConfig, SeccompMode};
use vmm::vcpu::VmEnd;
use vmm::vm::{SerialTarget, Vm, VmConfig, EXIT_CODE_SETUP};

#[derive(Parser, Debug)]
#[command(
    name = "vmm",
    version,
    about = "Boot a PVH guest image in a KVM VM with an emulated Intel e1000 on a vswitch port",
    after_help = "Guest arguments after `--` form the guest command line \
(e.g. `-- tx count=100000 size=60`); `tsc_khz=N` is appended from KVM when absent.\n\n\
Exit status: the guest's exit code (the byte it writes to port 0x501); \
124 if the VM could not be set up; 125 if the guest crashed (triple fault, KVM error); \
128+N when stopped by signal N (SIGINT, SIGTERM), after writing the stats."
)]
struct Cli {
    /// The guest image: an ELF with a PVH entry note (ELF note 18, "Xen").
    #[arg(long, value_name = "IMAGE")]
    kernel: PathBuf,

    /// Guest RAM in MiB (2..=3072).
    #[arg(long, value_name = "MiB", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(2..=3072))]
    mem: u64,

    /// Attach an e1000 to switch port SWITCH:PORT (e.g. vale0:vm1). Test
    /// backends without a switch: `sink` (drops transmitted frames) and
    /// `pong` (answers test-frame pings, drops the rest).
    #[arg(long, value_name = "SWITCH:PORT")]
    net: Option<String>,

    /// The e1000's MAC address (default: derived from the port name, locally
    /// administered). The switch port is locked to it: frames from the guest
    /// with another source address are dropped.
    #[arg(long, value_name = "MAC", requires = "net")]
    mac: Option<String>,

    /// Serial console output: a file path, or `stdout`.
    #[arg(long, value_name = "FILE|stdout", default_value = "stdout")]
    serial: String,

    /// Write counters as JSON to FILE every second and at exit.
    #[arg(long, value_name = "FILE")]
    stats_json: Option<PathBuf>,

    /// Do not ride out a restart of the switch daemon: by default the VMM
    /// watches its port's control connection, sets the e1000's link down
    /// when the daemon goes away, re-opens the port (retrying every 50 ms,
    /// doubling to 1 s, until it succeeds) and sets the link up again.
    #[arg(long, requires = "net")]
    no_reconnect: bool,

    /// The vswitch daemon's control socket.
    #[arg(
        long,
        value_name = "PATH",
        env = "VSWITCH_SOCKET",
        default_value = "/run/vswitch/vswitch.sock"
    )]
    socket: PathBuf,

    /// How the e1000 interrupt reaches the guest: `edge` pulses the GSI
    /// (KVM_IRQ_LINE) on each rising edge (needed on paravirtual KVM);
    /// `level` uses a resample irqfd (level-triggered INTx, for VT-x/AMD-V
    /// hosts).
    #[arg(long, value_enum, value_name = "MODE", default_value_t = IrqMode::Edge)]
    irq: IrqMode,

    /// e1000 options, KEY=VALUE, comma-separated or repeated:
    /// `mitigation=on|off` (interrupt moderation, default on);
    /// `csb=on|off` (the CSB paravirtual extension, subsystem id 0x1101, default on);
    /// `spin-us=N` (how long the CSB net worker keeps polling after its last
    /// work before it sleeps and asks for kicks, default 50);
    /// `trace=N` (keep up to N timestamps of test-frame pings and pongs
    /// crossing the backend, written in `--stats-json` under `latency`;
    /// docs/latency-breakdown.md);
    /// `offload=on|off` (once the guest enables the CSB, hand its rings to
    /// the switch daemon, which then moves the frames itself; needs csb=on
    /// and a switch port, default off; docs/offload.md).
    #[arg(long = "e1000", value_name = "KEY=VALUE")]
    e1000: Vec<String>,

    /// Microseconds an idle vCPU keeps going back to the guest (yielding the
    /// host CPU in between) before it halts until an interrupt: waking a
    /// halted vCPU costs far more than a VM exit on nested paravirtual KVM,
    /// so a short poll keeps round trips fast (like KVM's halt_poll_ns).
    #[arg(long, value_name = "US", default_value_t = vmm::vcpu::DEFAULT_HALT_POLL_US,
          value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    halt_poll_us: u64,

    /// Seccomp filters installed on every VMM thread before the guest runs:
    /// `kill` ends the VMM (SIGSYS) on a system call outside its thread's
    /// list; `log` allows it and has the kernel log it; `off` installs none.
    #[arg(long, value_enum, value_name = "MODE", default_value_t = SeccompMode::Kill)]
    seccomp: SeccompMode,

    /// Become USER (uid, primary gid, no supplementary groups) after set-up
    /// and before the guest runs. The `--stats-json` directory must be
    /// writable by USER.
    #[arg(long, value_name = "USER")]
    user: Option<String>,

    /// Check that the sandbox is enforced: right after installing its
    /// filter, the vCPU thread makes a forbidden system call (socket). With
    /// `--seccomp kill` the VMM dies of SIGSYS before the guest starts; with
    /// `log` or `off` the VM runs normally.
    #[arg(long)]
    seccomp_selftest: bool,

    /// Serve the counters in the Prometheus text format over HTTP at
    /// ADDR:PORT/metrics (port 0: a free one, printed on stderr); see
    /// docs/observability.md.
    #[arg(long, value_name = "ADDR:PORT")]
    metrics_listen: Option<std::net::SocketAddr>,

    /// Guest arguments (the PVH command line).
    #[arg(last = true, value_name = "GUEST ARGS")]
    guest_args: Vec<String>,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    if let Err(e) = vmm::stop_signal::install() {
        return fail(anyhow::anyhow!("cannot install signal handlers: {e}"));
    }
    let config = match build_config(&cli) {
        Ok(config) => config,
        Err(e) => return fail(e),
    };
    let vm = match Vm::new(&config) {
        Ok(vm) => vm,
        Err(e) => return fail(e.into()),
    };
    if let Some(addr) = vm.metrics_addr() {
        eprintln!("vmm: metrics on http://{addr}/metrics");
    }
    let stats = std::sync::Arc::clone(vm.stats());
    let outcome = match vm.run() {
        Ok(outcome) => outcome,
        Err(e) => return fail(e.into()),
    };
    eprintln!("{}", stats.summary(outcome.exit_code));
    match &outcome.end {
        VmEnd::Crash(why) => eprintln!("vmm: guest crashed: {why}"),
        VmEnd::Stopped(signo) => eprintln!("vmm: stopped by signal {signo}"),
        VmEnd::Exit(_) | VmEnd::PowerOff => {}
    }
    ExitCode::from(u8::try_from(outcome.exit_code).unwrap_or(u8::MAX))
}

fn fail(e: anyhow::Error) -> ExitCode {
    eprintln!("vmm: error: {e:#}");
    ExitCode::from(EXIT_CODE_SETUP as u8)
}

fn build_config(cli: &Cli) -> anyhow::Result<VmConfig> {
    let serial = match cli.serial.as_str() {
        "stdout" | "-" => SerialTarget::Stdout,
        path => SerialTarget::File(PathBuf::from(path)),
    };
    Ok(VmConfig {
        kernel: cli.kernel.clone(),
        mem_mib: cli.mem,
        guest_args: cli.guest_args.clone(),
        serial,
        irq_mode: cli.irq,
        stats_json: cli.stats_json.clone(),
        net: net_config(cli)?,
        halt_poll: std::time::Duration::from_micros(cli.halt_poll_us),
        sandbox: SandboxConfig {
            seccomp: cli.seccomp,
            user: match &cli.user {
                Some(name) => Some(Credentials::lookup(name).context("--user")?),
                None => None,
            },
            selftest: cli.seccomp_selftest,
        },
        metrics_listen: cli.metrics_listen,
    })
}

fn net_config(cli: &Cli) -> anyhow::Result<Option<NetConfig>> {
    let Some(spec) = &cli.net else {
        if !cli.e1000.is_empty() {
            bail!("--e1000 options need --net");
        }
        return Ok(None);
    };
    let backend = BackendSpec::parse(spec)?;
    let mac = match &cli.mac {
        Some(text) => parse_mac(text).with_context(|| format!("--mac {text:?}"))?,
        None => default_mac(backend.name()),
    };
    let mut net = NetConfig::new(backend, cli.socket.clone(), mac);
    net.reconnect = !cli.no_reconnect;
    for option in cli.e1000.iter().flat_map(|o| o.split(',')) {
        match option.split_once('=') {
            Some(("mitigation", value)) => net.mitigation = on_off(option, value)?,
            Some(("csb", value)) => net.csb = on_off(option, value)?,
            Some(("offload", value)) => net.offload = on_off(option, value)?,
            Some(("spin-us", value)) => {
                let us: u64 = value
                    .parse()
                    .ok()
                    .filter(|&us| us <= MAX_SPIN_US)
                    .with_context(|| {
                        format!("--e1000 {option:?}: expected microseconds, 0..={MAX_SPIN_US}")
                    })?;
                net.spin = Duration::from_micros(us);
            }
            Some(("trace", value)) => {
                net.trace_samples = value
                    .parse()
                    .ok()
                    .filter(|&n| (1..=MAX_TRACE).contains(&n))
                    .with_context(|| {
                        format!("--e1000 {option:?}: expected a sample count, 1..={MAX_TRACE}")
                    })?;
            }
            _ => bail!(
                "--e1000 {option:?}: expected mitigation=on|off, csb=on|off, spin-us=N, \
                 trace=N or offload=on|off"
            ),
        }
    }
    if net.offload {
        if !net.csb {
            bail!("--e1000 offload=on needs csb=on: only a CSB data path can be offloaded");
        }
        if !matches!(net.backend, BackendSpec::Switch(_)) {
            bail!(
                "--e1000 offload=on needs a switch port (--net SWITCH:PORT): \
                 the switch daemon walks the guest's rings"
            );
        }
    }
    Ok(Some(net))
}

/// Longest accepted `spin-us`: one second.
const MAX_SPIN_US: u64 = 1_000_000;
/// Most test-frame timestamps `trace=` keeps.
const MAX_TRACE: usize = vmm::net::latency_trace::MAX_SAMPLES;

fn on_off(option: &str, value: &str) -> anyhow::Result<bool> {
    match value {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => bail!("--e1000 {option:?}: expected on or off"),
    }
}

/// Parses `aa:bb:cc:dd:ee:ff` (or with `-`); refuses multicast addresses.
fn parse_mac(text: &str) -> anyhow::Result<[u8; 6]> {
    let parts: Vec<&str> = text.split([':', '-']).collect();
    if parts.len() != 6 {
        bail!("expected six hex bytes like 52:54:00:12:34:56");
    }
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(parts) {
        if part.len() != 2 {
            bail!("expected six hex bytes like 52:54:00:12:34:56");
        }
        *byte = u8::from_str_radix(part, 16).context("not a hex byte")?;
    }
    if mac[0] & 1 != 0 {
        bail!("a multicast address cannot be a NIC's address");
    }
    Ok(mac)
}

/// A locally administered MAC derived from the port name (FNV-1a), so that
/// VMs on different ports differ: 52:54:00:xx:xx:xx.
fn default_mac(port: &str) -> [u8; 6] {
    let hash = port.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let h = hash.to_le_bytes();
    [0x52, 0x54, 0x00, h[0], h[1], h[2]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        assert_eq!(
            parse_mac("52:54:00:ab:CD:0f").unwrap(),
            [0x52, 0x54, 0, 0xab, 0xcd, 0x0f]
        );
        assert_eq!(parse_mac("52-54-00-00-00-01").unwrap()[5], 1);
        assert!(parse_mac("01:00:5e:00:00:01").is_err());
        assert!(parse_mac("52:54:00:00:00").is_err());
        assert!(parse_mac("52:54:00:00:00:xyz").is_err());
        assert_ne!(default_mac("vale0:a"), default_mac("vale0:b"));
        assert_eq!(default_mac("vale0:a")[0], 0x52);
    }

    #[test]
    fn cli_parses() {
        let cli = Cli::try_parse_from([
            "vmm",
            "--kernel",
            "k",
            "--net",
            "vale0:vm1",
            "--e1000",
            "mitigation=off,spin-us=7",
            "--e1000",
            "csb=off",
            "--irq",
            "level",
            "--",
            "tx",
            "count=5",
        ])
        .unwrap();
        let config = build_config(&cli).unwrap();
        let net = config.net.unwrap();
        assert!(!net.mitigation);
        assert!(!net.csb);
        assert_eq!(net.spin, Duration::from_micros(7));
        assert_eq!(net.trace_samples, 0, "no timestamps by default");
        assert_eq!(net.backend, BackendSpec::Switch("vale0:vm1".into()));
        assert_eq!(config.guest_args, ["tx", "count=5"]);
        assert_eq!(config.irq_mode, IrqMode::Level);
        assert_eq!(
            config.sandbox.seccomp,
            SeccompMode::Kill,
            "filters on by default"
        );
        assert!(config.sandbox.user.is_none() && !config.sandbox.selftest);
        let sandboxed = Cli::try_parse_from([
            "vmm",
            "--kernel",
            "k",
            "--seccomp",
            "log",
            "--user",
            "nobody",
            "--seccomp-selftest",
        ])
        .unwrap();
        let sandbox = build_config(&sandboxed).unwrap().sandbox;
        assert_eq!(sandbox.seccomp, SeccompMode::Log);
        assert_eq!(sandbox.user.unwrap().name, "nobody");
        assert!(sandbox.selftest);
        let root = Cli::try_parse_from(["vmm", "--kernel", "k", "--user", "root"]).unwrap();
        assert!(
            build_config(&root).is_err(),
            "dropping to root drops nothing"
        );
        let traced = Cli::try_parse_from([
            "vmm", "--kernel", "k", "--net", "pong", "--e1000", "trace=64",
        ])
        .unwrap();
        assert_eq!(
            build_config(&traced).unwrap().net.unwrap().trace_samples,
            64
        );
        let bad = Cli::try_parse_from(["vmm", "--kernel", "k", "--net", "sink", "--e1000", "x=1"])
            .unwrap();
        assert!(build_config(&bad).is_err());
        for bad in [
            "csb=maybe",
            "spin-us=-1",
            "spin-us=2000000",
            "spin-us=",
            "trace=0",
            "trace=x",
            "trace=2000000",
        ] {
            let cli =
                Cli::try_parse_from(["vmm", "--kernel", "k", "--net", "sink", "--e1000", bad])
                    .unwrap();
            assert!(build_config(&cli).is_err(), "{bad}");
        }
        let defaults = Cli::try_parse_from(["vmm", "--kernel", "k", "--net", "sink"]).unwrap();
        let net = build_config(&defaults).unwrap().net.unwrap();
        assert!(net.csb && net.mitigation, "CSB and moderation default on");
        assert_eq!(net.spin, vmm::net::worker::DEFAULT_SPIN);
        assert!(!net.offload, "offload defaults off");
        let offload = |net: &str, options: &str| {
            let cli =
                Cli::try_parse_from(["vmm", "--kernel", "k", "--net", net, "--e1000", options])
                    .unwrap();
            build_config(&cli).map(|config| config.net.unwrap().offload)
        };
        assert!(offload("vale0:vm1", "offload=on").unwrap());
        assert!(!offload("vale0:vm1", "offload=off").unwrap());
        let no_csb = offload("vale0:vm1", "csb=off,offload=on").unwrap_err();
        assert!(format!("{no_csb:#}").contains("needs csb=on"), "{no_csb:#}");
        let no_switch = offload("pong", "offload=on").unwrap_err();
        assert!(
            format!("{no_switch:#}").contains("needs a switch port"),
            "{no_switch:#}"
        );
        assert!(offload("vale0:vm1", "offload=yes").is_err());
        assert!(
            Cli::try_parse_from(["vmm", "--kernel", "k", "--mac", "52:54:00:00:00:01"]).is_err()
        );
    }
}
