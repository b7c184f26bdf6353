//! `bench nic`'s receive variants of the NIC port, side by side under the
//! same offered load: two line-rate sources, pinned to CPU 0 and CPU 1,
//! into a fresh veth per variant.
//!
//! ```text
//!  ns peer: p0 <-veth-> n0 :ns switch (daemon --threads T, attach --queues all)
//!
//!  1 queue / 1 thread    sources on CPU 0 and 1 -> queue 0 -> one thread -> pktgen rx
//!  2 queues / 2 threads  source on CPU q -> queue q -> thread of queue q -> pktgen rx
//!  deferred irqs         1 queue / 1 thread, n0's napi_defer_hard_irqs 2 and
//!                        gro_flush_timeout 200 us (set on the bench's own veth)
//!  busy poll             1 queue / 1 thread, attach --busy-poll 64
//!  busy poll, deferred   both
//! ```
//!
//! A veth receives on the queue its peer transmitted on; the peer's
//! transmit queue of a frame the source clones is chosen by XPS (set here:
//! CPU q transmits on queue q), so each source feeds its own queue. Each
//! case reports the frames every queue redirected (the veth's
//! `rx_queue_N_xdp_redirect`), which shows whether both queues worked.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use bench::line_source::Mechanism;
use testbed::Queues;

use crate::nic_line_rate::{send_on, spec};
use crate::nic_port::{nic_case, NicSwitch};
use crate::repeat::repeat;
use crate::report::{Case, Report};
use crate::veth_pair::{VethPair, PEER_IF, PEER_MAC, SWITCH_IF, SWITCH_MAC};

/// The CPUs the two sources run on.
const SOURCE_CPUS: [usize; 2] = [0, 1];

/// One way to run the NIC port's receive side.
struct Variant {
    /// The case's name.
    name: &'static str,
    /// Receive (and transmit) queues of the veth.
    queues: u16,
    /// The daemon's forwarding threads.
    threads: usize,
    /// Options of `vswitch attach` beyond `--queues all`.
    attach: &'static [&'static str],
    /// Defer the switch end's interrupts (`napi_defer_hard_irqs`,
    /// `gro_flush_timeout`), as busy polling wants.
    defer_irqs: bool,
}

/// One queue on one thread.
pub const ONE_QUEUE: &str = "NIC port rx, 1 queue / 1 thread";
/// Two queues on two threads.
pub const TWO_QUEUES: &str = "NIC port rx, 2 queues / 2 threads";
/// One queue on one thread, interrupts deferred, no busy polling.
pub const DEFERRED: &str = "NIC port rx, 1 queue / 1 thread, deferred irqs";
/// One queue on one thread, busy-polled.
pub const BUSY_POLL: &str = "NIC port rx, 1 queue / 1 thread, busy poll 64";
/// One queue on one thread, busy-polled, interrupts deferred.
pub const BUSY_POLL_DEFERRED: &str = "NIC port rx, 1 queue / 1 thread, busy poll 64, deferred irqs";

const VARIANTS: &[Variant] = &[
    Variant {
        name: ONE_QUEUE,
        queues: 1,
        threads: 1,
        attach: &[],
        defer_irqs: false,
    },
    Variant {
        name: TWO_QUEUES,
        queues: 2,
        threads: 2,
        attach: &[],
        defer_irqs: false,
    },
    Variant {
        name: DEFERRED,
        queues: 1,
        threads: 1,
        attach: &[],
        defer_irqs: true,
    },
    Variant {
        name: BUSY_POLL,
        queues: 1,
        threads: 1,
        attach: &["--busy-poll", "64"],
        defer_irqs: false,
    },
    Variant {
        name: BUSY_POLL_DEFERRED,
        queues: 1,
        threads: 1,
        attach: &["--busy-poll", "64"],
        defer_irqs: true,
    },
];

/// Defers `SWITCH_IF`'s interrupts as busy polling wants (the kernel's
/// documented companions of `SO_PREFER_BUSY_POLL`).
fn defer_irqs(bed: &VethPair) -> Result<()> {
    let dir = format!("/sys/class/net/{SWITCH_IF}");
    bed.switch
        .run(
            "sh",
            [
                "-c",
                &format!(
                    "echo 2 > {dir}/napi_defer_hard_irqs && echo 200000 > {dir}/gro_flush_timeout"
                ),
            ],
        )
        .with_context(|| format!("deferring the interrupts of {SWITCH_IF}"))?;
    Ok(())
}

/// Each CPU of [`SOURCE_CPUS`] transmits on its own queue of `PEER_IF`
/// (nothing to choose with one queue).
fn pin_transmit_queues(bed: &VethPair, queues: u16) -> Result<()> {
    for q in (0..queues).filter(|_| queues > 1) {
        let mask = 1u64 << SOURCE_CPUS[q as usize % SOURCE_CPUS.len()];
        let path = format!("/sys/class/net/{PEER_IF}/queues/tx-{q}/xps_cpus");
        bed.peer
            .run("sh", ["-c", &format!("echo {mask:x} > {path}")])
            .with_context(|| format!("setting XPS in {path}"))?;
    }
    Ok(())
}

/// Frames each receive queue of `SWITCH_IF` redirected to its socket so far.
fn redirected_per_queue(bed: &VethPair, queues: u16) -> Result<Vec<u64>> {
    let text = bed.switch.run("ethtool", ["-S", SWITCH_IF])?;
    testbed::link::queue_stat(&text, "xdp_redirect", queues.into())
        .with_context(|| format!("no rx_queue_N_xdp_redirect in ethtool -S {SWITCH_IF}"))
}

/// The two sources at once, each for `d`: frames sent and the longer
/// sending time.
fn send_both(bed: &VethPair, size: usize, d: Duration, m: Mechanism) -> Result<(u64, f64)> {
    std::thread::scope(|scope| {
        let senders: Vec<_> = SOURCE_CPUS
            .iter()
            .map(|&cpu| {
                // Each source its own addresses (its own sequences at pktgen).
                let mut src = PEER_MAC;
                src.0[4] = 0x10 + cpu as u8;
                let spec = spec(size, src, SWITCH_MAC);
                scope.spawn(move || send_on(&bed.peer, PEER_IF, spec, m, d, cpu))
            })
            .collect();
        let mut total = (0u64, 0f64);
        for s in senders {
            let stats = s
                .join()
                .map_err(|_| anyhow::anyhow!("a source thread panicked"))??;
            total.0 += stats.frames;
            total.1 = total.1.max(stats.seconds);
        }
        Ok(total)
    })
}

fn measure(
    variant: &Variant,
    switch: &NicSwitch,
    bed: &VethPair,
    size: usize,
    d: Duration,
    m: Mechanism,
) -> Result<Case> {
    let before = redirected_per_queue(bed, variant.queues)?;
    let r = switch.measure_rx_from(size, d.as_secs_f64(), || send_both(bed, size, d, m))?;
    let after = redirected_per_queue(bed, variant.queues)?;
    let mut case = nic_case(variant.name, "rx", size, &r)
        .with("queues", variant.queues)
        .with("threads", variant.threads)
        .with("sources", SOURCE_CPUS.len());
    for (q, (a, b)) in after.iter().zip(&before).enumerate() {
        case = case.with(&format!("queue{q}_redirected"), a.saturating_sub(*b));
    }
    Ok(case)
}

/// Runs every variant for every size, each on a fresh veth and daemon.
pub fn rx_variants(
    bin_dir: &Path,
    sizes: &[usize],
    d: Duration,
    repeats: usize,
    m: Mechanism,
    report: &mut Report,
) -> Result<()> {
    for variant in VARIANTS {
        let queues = Queues {
            rx: variant.queues.into(),
            tx: variant.queues.into(),
        };
        let bed = VethPair::with_queues(Some(queues))?;
        pin_transmit_queues(&bed, variant.queues)?;
        if variant.defer_irqs {
            defer_irqs(&bed)?;
        }
        let threads = variant.threads.to_string();
        let mut attach = vec!["--queues", "all"];
        attach.extend_from_slice(variant.attach);
        let switch = NicSwitch::start_with(
            bin_dir,
            &bed.switch,
            SWITCH_IF,
            &["--threads", &threads],
            &attach,
        )?;
        for &size in sizes {
            report.push(
                repeat(repeats, || measure(variant, &switch, &bed, size, d, m))
                    .with_context(|| format!("{} ({size} B)", variant.name))?,
            );
        }
        switch.stop()?;
    }
    Ok(())
}
