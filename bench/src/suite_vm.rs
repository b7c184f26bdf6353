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
//! Throughput runs repeat `--repeats` times (median, min, max).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use testbed::{unique_temp_dir, Daemon, Netns};

use crate::cpu_cost::CpuWindow;
use crate::guest_vm::{guest_exits, guest_irqs, tsc_khz, vmm_exits, GuestVm};
use crate::plot::{self, Bar};
use crate::repeat::repeat;
use crate::report::{Case, Report};

/// Arguments of `bench vm`.
#[derive(clap::Args)]
pub struct VmArgs {
    /// Seconds of traffic per throughput run.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Runs per throughput case (the table gives the median, min and max).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Frame sizes.
    #[arg(long, value_delimiter = ',', default_value = "64,1514")]
    sizes: Vec<usize>,
    /// Round trips per ping-pong run.
    #[arg(long, default_value_t = 2000)]
    pings: u64,
    /// Only these configurations (names as in the table; a name shared by
    /// our VMM and QEMU selects both).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Where the vswitch and vmm binaries are.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// The JSON output.
    #[arg(long, default_value = "target/bench/vm.json")]
    out: PathBuf,
}

/// One configuration of the table.
struct Config {
    name: &'static str,
    qemu: bool,
    /// `--e1000` options of our VMM, or QEMU's mitigation.
    e1000: &'static [&'static str],
    mitigation: bool,
    /// Guest TX mode and burst of senders (and ping/pong).
    guest: &'static str,
    /// Guest mode of receivers.
    receiver: &'static str,
    threads: &'static str,
}

const CONFIGS: &[Config] = &[
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

const RX_MAC: &str = "52:54:00:00:0b:01";
const TX_MAC: &str = "52:54:00:00:0b:02";

/// Where the guests of one configuration run.
enum Host {
    Ours {
        bin_dir: PathBuf,
        daemon: Box<Daemon>,
    },
    Qemu {
        ns: Netns,
    },
}

struct Bed {
    host: Host,
    image: PathBuf,
    dir: PathBuf,
    tsc_khz: u64,
}

impl Bed {
    fn start(
        &self,
        config: &Config,
        label: &str,
        slot: usize,
        mac: &str,
        args: &str,
    ) -> Result<GuestVm> {
        let args = format!("{args} quiet tsc_khz={}", self.tsc_khz);
        match &self.host {
            Host::Ours { bin_dir, daemon } => GuestVm::ours(
                bin_dir,
                &self.image,
                &self.dir,
                label,
                daemon.socket(),
                &format!("vale0:{label}"),
                mac,
                config.e1000,
                &args,
            ),
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
    fn ready(&self, vm: &GuestVm, word: &str) -> Result<()> {
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

/// Where the sending guest prints its mode line, just before it sends.
const TX_STARTS: &str = "guest: tx txmode=";

fn vm_to_vm(bed: &Bed, config: &Config, size: usize, seconds: f64) -> Result<Measured> {
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
            "tx size={size} duration={} {} dst={RX_MAC}",
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

fn ping_pong(bed: &Bed, config: &Config, pings: u64) -> Result<(f64, f64)> {
    let mut pong = bed.start(
        config,
        "pong",
        0,
        RX_MAC,
        &format!("pong count={pings} {}", config.guest),
    )?;
    bed.ready(&pong, "pong")?;
    let mut ping = bed.start(
        config,
        "ping",
        1,
        TX_MAC,
        &format!("ping count={pings} dst={RX_MAC} {}", config.guest),
    )?;
    let out = ping.finish(Duration::from_secs(600))?;
    let _ = pong.finish(Duration::from_secs(30));
    let rtt = &out.result["rtt_us"];
    Ok((
        rtt["p50"].as_f64().unwrap_or(f64::NAN),
        rtt["p99"].as_f64().unwrap_or(f64::NAN),
    ))
}

fn our_host(bin_dir: &Path, dir: &Path) -> Result<Host> {
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
        let rtt = match ping_pong(&bed, config, args.pings) {
            Ok(r) => Some(r),
            Err(e) => {
                notes.push(format!("{kind} {}: ping-pong failed: {e:#}", config.name));
                None
            }
        };
        let mut runs: Vec<(&str, usize)> = args.sizes.iter().map(|&s| ("vm->vm", s)).collect();
        if !config.qemu {
            runs.extend(args.sizes.iter().map(|&s| ("vm->pktgen", s)));
        }
        for (name, size) in runs {
            let outcome = repeat(repeats, || {
                let m = if name == "vm->vm" {
                    vm_to_vm(&bed, config, size, args.seconds)?
                } else {
                    vm_to_pktgen(&bed, config, size, args.seconds)?
                };
                Ok(case(name, config, size, rtt, &m))
            });
            match outcome {
                Ok(c) => report.push(c),
                Err(e) => notes.push(format!(
                    "{kind} {} {name} {size} B failed: {e:#}",
                    config.name
                )),
            }
        }
    }
    ratio_notes(&report, &args.sizes, &mut notes);
    let svg = args.out.with_extension("svg");
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
