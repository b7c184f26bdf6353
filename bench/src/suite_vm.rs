//! `bench vm`: the seed's table, side by side in one run. The same guest
//! image runs under our VMM (its e1000 on a vswitch port) in each
//! configuration, and under QEMU (its e1000 on a tap in a Linux bridge inside
//! a namespace) in every configuration QEMU's e1000 supports with this guest:
//! plain, mitigation, and mitigation with the guest's send combining (a
//! guest-side mode, passed on the guest's command line under both). For
//! each: VM to VM throughput at each frame size, VM to a pktgen port (ours),
//! and ping-pong RTT, with the exits and interrupts per packet the guests
//! counted themselves and the machine's CPU time per packet (vCPUs, I/O
//! threads, the CSB's polling net worker, the switch, softirq: everything).
//! Throughput runs repeat `--repeats` times (median, min, max). Our VMM's
//! ping-pongs (guest to guest, and pktgen to guest) come with a per-hop
//! breakdown from the VMMs' timestamps ([`crate::latency_breakdown`]),
//! beside the switch's own pktgen-to-pktgen round trip; the scaling case
//! is [`crate::vm_scale`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use testbed::{unique_temp_dir, Daemon, Netns};

use crate::cpu_cost::CpuWindow;
use crate::guest_vm::{guest_exits, guest_irqs, tsc_khz, vmm_exits, GuestVm};
use crate::latency_breakdown::{self, Hop, Trace};
use crate::plot::{self, Bar};
use crate::repeat::repeat;
use crate::report::{Case, Report};

/// Arguments of `bench vm`.
#[derive(clap::Args)]
pub struct VmArgs {
    /// Seconds of traffic per throughput run.
    #[arg(long, default_value_t = 3.0)]
    pub(crate) seconds: f64,
    /// Runs per throughput case (the table gives the median, min and max).
    #[arg(long, default_value_t = 3)]
    pub(crate) repeats: usize,
    /// Frame sizes.
    #[arg(long, value_delimiter = ',', default_value = "64,1514")]
    pub(crate) sizes: Vec<usize>,
    /// Round trips per ping-pong run.
    #[arg(long, default_value_t = 2000)]
    pub(crate) pings: u64,
    /// Only these configurations (names as in the table; a name shared by
    /// our VMM and QEMU selects both).
    #[arg(long, value_delimiter = ',')]
    pub(crate) only: Vec<String>,
    /// Run the ping-pongs without the VMMs' test-frame timestamps
    /// (`--e1000 trace=N`), and so without the per-hop breakdown.
    #[arg(long)]
    pub(crate) no_trace: bool,
    /// VM counts of the scaling case (our VMM, `--scale-config`): N/2
    /// sender->receiver pairs at once, then N/2 ping->pong pairs at once.
    /// 0 skips it.
    #[arg(long, value_delimiter = ',', default_value = "2,4,8")]
    pub(crate) scale: Vec<usize>,
    /// The configuration of the scaling case's throughput runs (its
    /// ping-pongs use the same e1000 options with `burst=1`).
    #[arg(long, default_value = "csb+batch")]
    pub(crate) scale_config: String,
    /// Offered rates in Mpps of the paced VM-to-VM case (our VMM only,
    /// 64-byte frames): the sending guest paces itself (`rate=`), so the
    /// configurations carry the same load and their delivered rate and
    /// losses compare below capacity. 0 skips it.
    #[arg(long, value_delimiter = ',', default_value = "2")]
    pub(crate) paced_mpps: Vec<f64>,
    /// Seconds over which an idle pair of guests is measured (cores used by
    /// their monitors and the switch); 0 skips it.
    #[arg(long, default_value_t = 5.0)]
    pub(crate) idle_seconds: f64,
    /// Where the vswitch and vmm binaries are.
    #[arg(long, default_value = "target/release")]
    pub(crate) bin_dir: PathBuf,
    /// The JSON output.
    #[arg(long, default_value = "target/bench/vm.json")]
    pub(crate) out: PathBuf,
}

/// One configuration of the table.
pub(crate) struct Config {
    pub(crate) name: &'static str,
    pub(crate) qemu: bool,
    /// `--e1000` options of our VMM, or QEMU's mitigation.
    pub(crate) e1000: &'static [&'static str],
    pub(crate) mitigation: bool,
    /// Guest TX mode and burst of senders (and ping/pong).
    pub(crate) guest: &'static str,
    /// Guest mode of receivers.
    pub(crate) receiver: &'static str,
    pub(crate) threads: &'static str,
}

impl Config {
    /// Whether the switch walks the guests' rings (`offload=on`).
    pub(crate) fn offloaded(&self) -> bool {
        self.e1000.contains(&"offload=on")
    }
}

pub(crate) const CONFIGS: &[Config] = &[
    Config {
        name: "plain",
        qemu: false,
        e1000: &["mitigation=off"],
        mitigation: false,
        guest: "txmode=plain",
        receiver: "txmode=plain",
        threads: "per VM: vCPU + I/O thread; switch: 1 forwarding thread",
    },
    Config {
        name: "mitigation",
        qemu: false,
        e1000: &["mitigation=on"],
        mitigation: true,
        guest: "txmode=plain",
        receiver: "txmode=plain",
        threads: "per VM: vCPU + I/O thread; switch: 1 forwarding thread",
    },
    Config {
        name: "mitigation+combining",
        qemu: false,
        e1000: &["mitigation=on"],
        mitigation: true,
        guest: "txmode=combine",
        receiver: "txmode=plain",
        threads: "per VM: vCPU + I/O thread; switch: 1 forwarding thread",
    },
    Config {
        name: "csb",
        qemu: false,
        e1000: &["mitigation=off", "csb=on"],
        mitigation: false,
        guest: "txmode=csb burst=1",
        receiver: "txmode=csb",
        threads: "per VM: vCPU + net worker; switch: 1 forwarding thread",
    },
    Config {
        name: "csb+batch",
        qemu: false,
        e1000: &["mitigation=off", "csb=on"],
        mitigation: false,
        guest: "txmode=csb burst=64",
        receiver: "txmode=csb",
        threads: "per VM: vCPU + net worker; switch: 1 forwarding thread",
    },
    Config {
        name: "csb+offload",
        qemu: false,
        e1000: &["mitigation=off", "csb=on", "offload=on"],
        mitigation: false,
        guest: "txmode=csb burst=64",
        receiver: "txmode=csb",
        threads: "per VM: vCPU (+ I/O thread for interrupts); switch: 1 forwarding thread walks the guests' rings",
    },
    Config {
        name: "plain",
        qemu: true,
        e1000: &[],
        mitigation: false,
        guest: "txmode=plain",
        receiver: "txmode=plain",
        threads: "per VM: QEMU vCPU + main loop; Linux bridge in softirq",
    },
    Config {
        name: "mitigation",
        qemu: true,
        e1000: &[],
        mitigation: true,
        guest: "txmode=plain",
        receiver: "txmode=plain",
        threads: "per VM: QEMU vCPU + main loop; Linux bridge in softirq",
    },
    Config {
        name: "mitigation+combining",
        qemu: true,
        e1000: &[],
        mitigation: true,
        guest: "txmode=combine",
        receiver: "txmode=plain",
        threads: "per VM: QEMU vCPU + main loop; Linux bridge in softirq",
    },
];

/// The receiving guest's MAC.
pub(crate) const RX_MAC: &str = "52:54:00:00:0b:01";
/// The sending guest's MAC.
pub(crate) const TX_MAC: &str = "52:54:00:00:0b:02";

/// Where the guests of one configuration run.
pub(crate) enum Host {
    Ours {
        bin_dir: PathBuf,
        daemon: Box<Daemon>,
    },
    Qemu {
        ns: Netns,
    },
}

/// A host and what its guests share.
pub(crate) struct Bed {
    pub(crate) host: Host,
    pub(crate) image: PathBuf,
    pub(crate) dir: PathBuf,
    pub(crate) tsc_khz: u64,
}

impl Bed {
    /// Starts a guest of `config` (see [`Bed::start_traced`]).
    pub(crate) fn start(
        &self,
        config: &Config,
        label: &str,
        slot: usize,
        mac: &str,
        args: &str,
    ) -> Result<GuestVm> {
        self.start_traced(config, label, slot, mac, args, None)
    }

    /// Starts a guest; under our VMM with `trace` test-frame timestamps
    /// kept if given (`--e1000 trace=N`).
    pub(crate) fn start_traced(
        &self,
        config: &Config,
        label: &str,
        slot: usize,
        mac: &str,
        args: &str,
        trace: Option<u64>,
    ) -> Result<GuestVm> {
        let args = format!("{args} quiet tsc_khz={}", self.tsc_khz);
        match &self.host {
            Host::Ours { bin_dir, daemon } => {
                let trace = trace.map(|n| format!("trace={n}"));
                let mut e1000 = config.e1000.to_vec();
                e1000.extend(trace.as_deref());
                GuestVm::ours(
                    bin_dir,
                    &self.image,
                    &self.dir,
                    label,
                    daemon.socket(),
                    &format!("vale0:{label}"),
                    mac,
                    &e1000,
                    &args,
                )
            }
            Host::Qemu { ns } => GuestVm::qemu(
                ns,
                &self.image,
                &self.dir,
                label,
                &format!("tap{slot}"),
                mac,
                config.mitigation,
                &args,
            ),
        }
    }

    /// Waits for a receiving guest to be ready (QEMU's e1000 also ignores
    /// frames for a second after the guest's RCTL write).
    pub(crate) fn ready(&self, vm: &GuestVm, word: &str) -> Result<()> {
        vm.wait_line(&format!("guest: {word}"), Duration::from_secs(60))?;
        if matches!(self.host, Host::Qemu { .. }) {
            std::thread::sleep(Duration::from_millis(1300));
        }
        Ok(())
    }
}

struct Measured {
    pps: f64,
    frames: u64,
    exits: u64,
    irqs: u64,
    lost: u64,
    tx_pps: f64,
    /// Exits our VMM counted over the whole runs (setup included).
    vmm_exits: Option<u64>,
    /// Busy CPU nanoseconds of the machine per received frame, from the
    /// sending guest's start of traffic to its exit.
    cpu_ns_per_packet: Option<f64>,
}

/// Frame size of the paced VM-to-VM case.
const PACED_SIZE: usize = 64;

/// Where the sending guest prints its mode line, just before it sends.
const TX_STARTS: &str = "guest: tx txmode=";

/// A VM-to-VM run; `rate` paces the sender to that many frames a second.
fn vm_to_vm(
    bed: &Bed,
    config: &Config,
    size: usize,
    seconds: f64,
    rate: Option<u64>,
) -> Result<Measured> {
    let pace = rate.map(|r| format!(" rate={r}")).unwrap_or_default();
    let mut rx = bed.start(
        config,
        "rx",
        0,
        RX_MAC,
        &format!(
            "rx size={size} duration={} {}",
            seconds as u64 + 60,
            config.receiver
        ),
    )?;
    bed.ready(&rx, "rx")?;
    let mut tx = bed.start(
        config,
        "tx",
        1,
        TX_MAC,
        &format!(
            "tx size={size} duration={} {} dst={RX_MAC}{pace}",
            seconds.max(1.0) as u64,
            config.guest
        ),
    )?;
    tx.wait_line(TX_STARTS, Duration::from_secs(60))?;
    let cpu = CpuWindow::start();
    let tx_out = tx.finish(Duration::from_secs_f64(seconds + 120.0))?;
    let busy = cpu.busy_seconds();
    let rx_out = rx.finish(Duration::from_secs(90))?;
    let frames = rx_out.result["unique"].as_u64().unwrap_or(0);
    let secs = rx_out.result["seconds"].as_f64().unwrap_or(0.0);
    if frames == 0 || secs <= 0.0 {
        bail!("the receiving guest got nothing: {}", rx_out.result);
    }
    let sent = tx_out.result["frames"].as_u64().unwrap_or(0);
    Ok(Measured {
        pps: frames as f64 / secs,
        frames,
        exits: guest_exits(&tx_out.result) + guest_exits(&rx_out.result),
        irqs: guest_irqs(&tx_out.result) + guest_irqs(&rx_out.result),
        lost: sent.saturating_sub(frames),
        tx_pps: tx_out.result["pps"].as_f64().unwrap_or(0.0),
        vmm_exits: vmm_exits(&tx_out.vmm_stats)
            .zip(vmm_exits(&rx_out.vmm_stats))
            .map(|(a, b)| a + b),
        cpu_ns_per_packet: busy.map(|b| b * 1e9 / frames as f64),
    })
}

fn vm_to_pktgen(bed: &Bed, config: &Config, size: usize, seconds: f64) -> Result<Measured> {
    let Host::Ours { daemon, .. } = &bed.host else {
        bail!("pktgen runs on our switch only");
    };
    let size_arg = size.to_string();
    let mut rx = daemon.spawn(
        "pktgen-rx",
        &[
            "pktgen",
            "vale0:sink",
            "--mode",
            "rx",
            "--ring-size",
            "16384",
            "--json",
            "-q",
            "--idle-timeout",
            "2",
            "--size",
            &size_arg,
        ],
    )?;
    std::thread::sleep(Duration::from_millis(300));
    let mut tx = bed.start(
        config,
        "tx",
        1,
        TX_MAC,
        &format!(
            "tx size={size} duration={} {} dst=02:00:00:00:0b:99",
            seconds.max(1.0) as u64,
            config.guest
        ),
    )?;
    tx.wait_line(TX_STARTS, Duration::from_secs(60))?;
    let cpu = CpuWindow::start();
    let tx_out = tx.finish(Duration::from_secs_f64(seconds + 120.0))?;
    let busy = cpu.busy_seconds();
    rx.wait_timeout(Duration::from_secs(30))?
        .context("pktgen rx did not finish")?;
    let summary: Value = serde_json::from_str(rx.read_stdout()?.lines().last().unwrap_or(""))?;
    let frames = summary["packets"].as_u64().unwrap_or(0);
    let sent = tx_out.result["frames"].as_u64().unwrap_or(0);
    Ok(Measured {
        pps: summary["mpps"].as_f64().unwrap_or(0.0) * 1e6,
        frames,
        exits: guest_exits(&tx_out.result),
        irqs: guest_irqs(&tx_out.result),
        lost: sent.saturating_sub(frames),
        tx_pps: tx_out.result["pps"].as_f64().unwrap_or(0.0),
        vmm_exits: vmm_exits(&tx_out.vmm_stats),
        cpu_ns_per_packet: busy.filter(|_| frames > 0).map(|b| b * 1e9 / frames as f64),
    })
}

/// A ping-pong's outcome: RTT percentiles as the pinging side measured
/// them, and with the VMMs' timestamps the per-hop breakdown.
struct PingPong {
    p50: f64,
    p99: f64,
    hops: Option<Vec<Hop>>,
    /// Our VMM: from its start to the guest's first frame (the first
    /// warm-up ping), milliseconds.
    startup_ms: Option<f64>,
}

/// Timestamps each VMM keeps for `pings` round trips (a ping and a pong
/// each, warm-up pings and slack included).
pub(crate) fn trace_samples(pings: u64) -> u64 {
    2 * pings + 64
}

/// Starts the pong guest (slot 0) and waits until it answers.
fn start_pong(
    bed: &Bed,
    config: &Config,
    label: &str,
    mac: &str,
    pings: u64,
    trace: Option<u64>,
) -> Result<GuestVm> {
    let pong = bed.start_traced(
        config,
        label,
        0,
        mac,
        &format!("pong count={pings} {}", config.guest),
        trace,
    )?;
    bed.ready(&pong, "pong")?;
    Ok(pong)
}

/// Guest ping -> guest pong: the guest's RTT, and with `trace` the hops.
fn ping_pong(bed: &Bed, config: &Config, pings: u64, trace: bool) -> Result<PingPong> {
    let trace = (trace && !config.qemu).then(|| trace_samples(pings));
    let mut pong = start_pong(bed, config, "pong", RX_MAC, pings, trace)?;
    let mut ping = bed.start_traced(
        config,
        "ping",
        1,
        TX_MAC,
        &format!("ping count={pings} dst={RX_MAC} {}", config.guest),
        trace,
    )?;
    let out = ping.finish(Duration::from_secs(600))?;
    let pong_out = pong.finish(Duration::from_secs(30));
    let rtt = &out.result["rtt_us"];
    let p50 = rtt["p50"].as_f64().unwrap_or(f64::NAN);
    let a = Trace::from_stats(&out.vmm_stats);
    let b = pong_out.ok().and_then(|o| Trace::from_stats(&o.vmm_stats));
    Ok(PingPong {
        p50,
        p99: rtt["p99"].as_f64().unwrap_or(f64::NAN),
        startup_ms: a
            .as_ref()
            .and_then(Trace::first_tx_ping_ns)
            .map(|ns| ns.saturating_sub(ping.started_ns()) as f64 / 1e6),
        hops: a
            .zip(b)
            .map(|(a, b)| latency_breakdown::vm_to_vm(&a, &b, p50, bed.tsc_khz)),
    })
}

/// `vswitch pktgen --mode ping` -> guest pong on our switch.
fn pktgen_ping_pong(bed: &Bed, config: &Config, pings: u64, trace: bool) -> Result<PingPong> {
    let Host::Ours { daemon, .. } = &bed.host else {
        bail!("pktgen runs on our switch only");
    };
    let mut pong = start_pong(
        bed,
        config,
        "pong",
        RX_MAC,
        pings,
        trace.then(|| trace_samples(pings)),
    )?;
    let count = pings.to_string();
    let mut ping = daemon.spawn(
        "pktgen-ping",
        &[
            "pktgen",
            "vale0:pinger",
            "--mode",
            "ping",
            "--count",
            &count,
            "--dst-mac",
            RX_MAC,
            "--json",
            "-q",
        ],
    )?;
    ping.wait_timeout(Duration::from_secs(600))?
        .context("pktgen ping did not finish")?;
    let summary: Value = serde_json::from_str(ping.read_stdout()?.lines().last().unwrap_or(""))
        .context("pktgen ping printed no JSON summary")?;
    let pong_out = pong.finish(Duration::from_secs(30));
    let rtt = &summary["rtt_us"];
    let p50 = rtt["p50"].as_f64().unwrap_or(f64::NAN);
    let b = pong_out.ok().and_then(|o| Trace::from_stats(&o.vmm_stats));
    Ok(PingPong {
        p50,
        p99: rtt["p99"].as_f64().unwrap_or(f64::NAN),
        startup_ms: None,
        hops: b.map(|b| latency_breakdown::pktgen_to_vm(&b, p50)),
    })
}

/// `vswitch pktgen` ping -> pktgen pong on a fresh daemon, no VM: the
/// switch's own round trip, for scale beside the VMs' hops.
fn switch_only_ping_pong(bin_dir: &Path, pings: u64) -> Result<PingPong> {
    let dir = unique_temp_dir("vsw-bench-vm-switch")?;
    let Host::Ours { daemon, .. } = our_host(bin_dir, dir.path())? else {
        bail!("our host expected");
    };
    let count = pings.to_string();
    let mut pong = daemon.spawn(
        "pktgen-pong",
        &[
            "pktgen",
            "vale0:pong",
            "--mode",
            "pong",
            "--count",
            &count,
            "--json",
            "-q",
        ],
    )?;
    std::thread::sleep(Duration::from_millis(300));
    let mut ping = daemon.spawn(
        "pktgen-ping",
        &[
            "pktgen",
            "vale0:ping",
            "--mode",
            "ping",
            "--count",
            &count,
            "--json",
            "-q",
        ],
    )?;
    ping.wait_timeout(Duration::from_secs(600))?
        .context("pktgen ping did not finish")?;
    let summary: Value = serde_json::from_str(ping.read_stdout()?.lines().last().unwrap_or(""))
        .context("pktgen ping printed no JSON summary")?;
    let _ = pong.wait_timeout(Duration::from_secs(30));
    let rtt = &summary["rtt_us"];
    Ok(PingPong {
        p50: rtt["p50"].as_f64().unwrap_or(f64::NAN),
        p99: rtt["p99"].as_f64().unwrap_or(f64::NAN),
        startup_ms: None,
        hops: None,
    })
}

/// A ping-pong as a case: the rate column is round trips per second at
/// the p50 RTT.
fn rtt_case(name: &str, config: &Config, kind: &str, pp: &PingPong) -> Case {
    let mut case = Case::new(
        format!("{name} {}", config.name),
        kind,
        testframe::MIN_FRAME_LEN,
        1e6 / pp.p50,
    )
    .with("config", config.name)
    .with("guest", config.guest)
    .with("rtt_p50_us", pp.p50)
    .with("rtt_p99_us", pp.p99);
    if let Some(ms) = pp.startup_ms {
        case = case.with("startup_ms", ms);
    }
    if let Some(hops) = &pp.hops {
        case.extra.extend(latency_breakdown::extras(hops));
    }
    case
}

pub(crate) fn our_host(bin_dir: &Path, dir: &Path) -> Result<Host> {
    let daemon = Daemon::builder()
        .binary(bin_dir.join("vswitch"))
        .dir(dir)
        .start()?;
    Ok(Host::Ours {
        bin_dir: bin_dir.to_owned(),
        daemon: Box::new(daemon),
    })
}

fn qemu_host() -> Result<Host> {
    let ns = Netns::new("vsw")?;
    ns.add_tap_bridge("br0", &["tap0", "tap1"])?;
    Ok(Host::Qemu { ns })
}

fn case(name: &str, config: &Config, size: usize, rtt: Option<(f64, f64)>, m: &Measured) -> Case {
    let kind = if config.qemu { "qemu" } else { "ours" };
    let per = |n: u64| n as f64 / m.frames.max(1) as f64;
    Case::new(format!("{name} {}", config.name), kind, size, m.pps)
        .with_cpu(m.cpu_ns_per_packet)
        .with("config", config.name)
        .with("guest", config.guest)
        .with("exits_per_pkt", per(m.exits))
        .with("irqs_per_pkt", per(m.irqs))
        .with("rtt_p50_us", rtt.map(|r| r.0))
        .with("rtt_p99_us", rtt.map(|r| r.1))
        .with("tx_mpps", m.tx_pps / 1e6)
        .with("lost", m.lost)
        .with("vmm_exits_per_pkt", m.vmm_exits.map(per))
        .with("threads", config.threads)
}

/// The VM-to-VM rate of `config` (by name) at `size` under `kind`.
fn vm_to_vm_mpps(report: &Report, kind: &str, config: &str, size: usize) -> Option<f64> {
    report
        .cases
        .iter()
        .find(|c| {
            c.kind == kind
                && c.frame_size == size
                && c.name.starts_with("vm->vm")
                && c.extra.get("config").and_then(|v| v.as_str()) == Some(config)
        })
        .map(|c| c.mpps)
}

/// The fastest VM-to-VM configuration under `kind` at `size`.
fn best(report: &Report, kind: &str, size: usize) -> Option<(String, f64)> {
    report
        .cases
        .iter()
        .filter(|c| c.kind == kind && c.frame_size == size && c.name.starts_with("vm->vm"))
        .map(|c| {
            let config = c.extra.get("config").and_then(|v| v.as_str()).unwrap_or("");
            (config.to_owned(), c.mpps)
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// The two ratios: the same guest mode on both sides, and best against best.
fn ratio_notes(report: &Report, sizes: &[usize], notes: &mut Vec<String>) {
    for &size in sizes {
        for config in CONFIGS.iter().filter(|c| c.qemu) {
            let ours = vm_to_vm_mpps(report, "ours", config.name, size);
            let qemu = vm_to_vm_mpps(report, "qemu", config.name, size);
            if let (Some(ours), Some(qemu)) = (ours, qemu) {
                notes.push(format!(
                    "{size} B VM to VM, same mode ({}, guest {}): ours is {:.2}x QEMU's",
                    config.name,
                    config.guest,
                    ours / qemu.max(1e-12)
                ));
            }
        }
        if let (Some((ours_name, ours)), Some((qemu_name, qemu))) =
            (best(report, "ours", size), best(report, "qemu", size))
        {
            notes.push(format!(
                "{size} B VM to VM, best against best: ours ({ours_name}, {ours:.3} Mpps) is \
                 {:.1}x QEMU's ({qemu_name}, {qemu:.3} Mpps)",
                ours / qemu.max(1e-12)
            ));
        }
    }
}

/// Runs the suite.
pub fn run(args: &VmArgs) -> Result<()> {
    let image = testbed::guest_image();
    if !image.exists() {
        bail!(
            "no guest image at {} (cargo xtask build-guest)",
            image.display()
        );
    }
    let tsc = tsc_khz();
    let repeats = args.repeats.max(1);
    let mut report = Report::default();
    let mut notes = vec![
        format!(
            "guest TSC {tsc} kHz; exits and interrupts per packet are the guests' own counts \
             (MMIO, port I/O and LAPIC EOIs; NIC and timer interrupts) over their measured part, \
             summed over sender and receiver"
        ),
        "CPU ns/p: busy time of all CPUs (user, system, irq, softirq; vCPUs, I/O threads, the \
         CSB's polling net worker, the switch) from the sender's start of traffic to its exit, \
         per frame received"
            .to_owned(),
    ];
    match switch_only_ping_pong(&args.bin_dir, args.pings) {
        Ok(pp) => {
            notes.push(format!(
                "switch alone (pktgen ping <-> pktgen pong, no VM, both polling): RTT p50 {:.1} us, \
                 p99 {:.1} us; for scale beside ping_a_to_b and pong_b_to_a, which add the VMMs' \
                 publish, kicks and wake-ups to the switch's forwarding",
                pp.p50, pp.p99
            ));
            report.push(
                Case::new(
                    "pktgen<->pktgen ping-pong",
                    "ours",
                    testframe::MIN_FRAME_LEN,
                    1e6 / pp.p50,
                )
                .with("config", "switch only")
                .with("rtt_p50_us", pp.p50)
                .with("rtt_p99_us", pp.p99),
            );
        }
        Err(e) => notes.push(format!("switch-only ping-pong failed: {e:#}")),
    }
    for config in CONFIGS {
        if !args.only.is_empty() && !args.only.iter().any(|o| o == config.name) {
            continue;
        }
        let dir = unique_temp_dir("vsw-bench-vm")?;
        let host = if config.qemu {
            qemu_host()?
        } else {
            our_host(&args.bin_dir, dir.path())?
        };
        let bed = Bed {
            host,
            image: image.clone(),
            dir: dir.path().to_owned(),
            tsc_khz: tsc,
        };
        let kind = if config.qemu { "qemu" } else { "ours" };
        if args.idle_seconds > 0.0 {
            match crate::vm_idle::measure(&bed, config, args.idle_seconds) {
                Ok(idle) => {
                    notes.push(idle.summary(config, kind));
                    report.push(idle.case(config, kind, args.idle_seconds));
                }
                Err(e) => notes.push(format!("{kind} {}: idle pair failed: {e:#}", config.name)),
            }
        }
        // Offloaded, the VMMs see no frames: their timestamps would be empty.
        let trace = !args.no_trace && !config.offloaded();
        if config.offloaded() && !args.no_trace {
            notes.push(format!(
                "{kind} {}: no per-hop breakdown (the switch moves the frames; the VMMs, which take the timestamps, see none)",
                config.name
            ));
        }
        let rtt = match ping_pong(&bed, config, args.pings, trace) {
            Ok(pp) => {
                if let Some(hops) = &pp.hops {
                    notes.push(latency_breakdown::summary(
                        &format!("{kind} {} VM<->VM RTT p50 {:.1} us", config.name, pp.p50),
                        hops,
                    ));
                }
                report.push(rtt_case("vm<->vm ping-pong", config, kind, &pp));
                Some((pp.p50, pp.p99))
            }
            Err(e) => {
                notes.push(format!("{kind} {}: ping-pong failed: {e:#}", config.name));
                None
            }
        };
        if !config.qemu {
            match pktgen_ping_pong(&bed, config, args.pings, trace) {
                Ok(pp) => {
                    if let Some(hops) = &pp.hops {
                        notes.push(latency_breakdown::summary(
                            &format!(
                                "{kind} {} pktgen<->VM RTT p50 {:.1} us",
                                config.name, pp.p50
                            ),
                            hops,
                        ));
                    }
                    report.push(rtt_case("pktgen<->vm ping-pong", config, kind, &pp));
                }
                Err(e) => notes.push(format!(
                    "{kind} {}: pktgen ping-pong failed: {e:#}",
                    config.name
                )),
            }
        }
        // (name, frame size, offered Mpps of a paced run)
        let mut runs: Vec<(&str, usize, Option<f64>)> =
            args.sizes.iter().map(|&s| ("vm->vm", s, None)).collect();
        if !config.qemu {
            runs.extend(args.sizes.iter().map(|&s| ("vm->pktgen", s, None)));
            runs.extend(
                args.paced_mpps
                    .iter()
                    .filter(|&&mpps| mpps > 0.0)
                    .map(|&mpps| ("paced vm->vm", PACED_SIZE, Some(mpps))),
            );
        }
        for (name, size, paced) in runs {
            let outcome = repeat(repeats, || {
                let m = if name == "vm->pktgen" {
                    vm_to_pktgen(&bed, config, size, args.seconds)?
                } else {
                    let rate = paced.map(|mpps| (mpps * 1e6) as u64);
                    vm_to_vm(&bed, config, size, args.seconds, rate)?
                };
                let c = case(name, config, size, rtt, &m);
                Ok(match paced {
                    Some(mpps) => c.with("offered_mpps", mpps),
                    None => c,
                })
            });
            match outcome {
                Ok(c) => report.push(c),
                Err(e) => {
                    let what = paced.map_or(format!("{size} B"), |mpps| format!("at {mpps} Mpps"));
                    notes.push(format!(
                        "{kind} {} {name} {what} failed: {e:#}",
                        config.name
                    ))
                }
            }
        }
    }
    if !args.scale.iter().all(|&n| n == 0) {
        if let Err(e) = crate::vm_scale::run(args, &image, tsc, &mut report, &mut notes) {
            notes.push(format!("scaling case failed: {e:#}"));
        }
    }
    ratio_notes(&report, &args.sizes, &mut notes);
    let svg = args.out.with_extension("svg");
    if let Some(dir) = svg.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    for &size in args.sizes.iter().take(1) {
        let bars: Vec<Bar> = report
            .cases
            .iter()
            .filter(|c| c.name.starts_with("vm->vm") && c.frame_size == size)
            .map(|c| Bar {
                label: format!(
                    "{} {}",
                    c.kind,
                    c.extra.get("config").and_then(|v| v.as_str()).unwrap_or("")
                ),
                pps: c.mpps * 1e6,
                colour: if c.kind == "qemu" {
                    "#c0504d"
                } else {
                    "#4f81bd"
                },
            })
            .collect();
        plot::bar_chart(
            &svg,
            &format!("VM to VM, {size}-byte frames, frames per second (log scale)"),
            &bars,
        )?;
        notes.push(format!("plot: {}", svg.display()));
    }
    report.finish(&args.out, &notes, repeats)
}
