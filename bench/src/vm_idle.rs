//! What an idle pair of VMs costs: two guests that receive nothing, and
//! what serves them (our VMMs and the switch daemon, or QEMU and the Linux
//! bridge), measured as cores used over a few seconds once both guests are
//! ready and have settled. A design that polls where it should sleep shows
//! here as a fraction of a core per party.

use std::time::Duration;

use anyhow::Result;

use crate::procs::CpuMeter;
use crate::report::Case;
use crate::suite_vm::{Bed, Config, Host, RX_MAC, TX_MAC};

/// Time the guests get, once ready, before the measurement starts (the
/// spin of a receiver that has just stopped seeing frames, the first
/// moderation timers).
const SETTLE: Duration = Duration::from_secs(1);

/// Cores used by an idle pair.
pub(crate) struct IdleCost {
    /// Each monitor process (vCPU and I/O threads), cores.
    pub(crate) monitors: Vec<f64>,
    /// The switch daemon (ours only), cores.
    pub(crate) daemon: Option<f64>,
}

impl IdleCost {
    /// The case for the report, named after `config`.
    pub(crate) fn case(&self, config: &Config, kind: &str, seconds: f64) -> Case {
        let per_monitor = self.monitors.iter().sum::<f64>() / self.monitors.len().max(1) as f64;
        let mut case = Case::new("idle pair (no traffic)", kind, 0, 0.0)
            .with("config", config.name)
            .with("seconds", seconds)
            .with("monitor_cores", per_monitor);
        if let Some(daemon) = self.daemon {
            case = case.with("daemon_cores", daemon);
        }
        case
    }

    /// One line for the notes.
    pub(crate) fn summary(&self, config: &Config, kind: &str) -> String {
        let monitors: Vec<String> = self
            .monitors
            .iter()
            .map(|c| format!("{:.2}%", c * 100.0))
            .collect();
        let daemon = self
            .daemon
            .map(|d| format!(", switch daemon {:.2}%", d * 100.0))
            .unwrap_or_default();
        format!(
            "{kind} {} idle pair: monitors {} of a core each{daemon}",
            config.name,
            monitors.join(" and ")
        )
    }
}

/// Starts two receiving guests of `config` that get no traffic and measures
/// the cores their monitors and our daemon use over `seconds`.
pub(crate) fn measure(bed: &Bed, config: &Config, seconds: f64) -> Result<IdleCost> {
    let args = format!(
        "rx size=64 duration={} {}",
        seconds as u64 + 60,
        config.receiver
    );
    let a = bed.start(config, "idle_a", 0, RX_MAC, &args)?;
    let b = bed.start(config, "idle_b", 1, TX_MAC, &args)?;
    bed.ready(&a, "rx")?;
    bed.ready(&b, "rx")?;
    std::thread::sleep(SETTLE);
    let monitors = [CpuMeter::start(&[a.pid()]), CpuMeter::start(&[b.pid()])];
    let daemon = match &bed.host {
        Host::Ours { daemon, .. } => Some(CpuMeter::start(&[daemon.pid()])),
        Host::Qemu { .. } => None,
    };
    std::thread::sleep(Duration::from_secs_f64(seconds));
    Ok(IdleCost {
        monitors: monitors.iter().map(CpuMeter::cores).collect(),
        daemon: daemon.as_ref().map(CpuMeter::cores),
    })
}
