//! `bench vm`'s scaling case: N VMs on one switch (our VMM), in pairs. For
//! each N of `--scale`: N/2 guest `tx` -> guest `rx` pairs at once (the
//! aggregate VM-to-VM rate, the machine's CPU per frame, the daemon's and
//! each VMM's resident memory in the middle of the run), then N/2 guest
//! `ping` -> guest `pong` pairs at once (RTT p50 and p99 over the pairs,
//! and each VMM's start-up time to its guest's first frame, from the
//! VMMs' test-frame timestamps).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use testbed::unique_temp_dir;

use crate::cpu_cost::CpuWindow;
use crate::guest_vm::GuestVm;
use crate::latency_breakdown::Trace;
use crate::procs::rss_bytes;
use crate::report::{Case, Report};
use crate::suite_vm::{our_host, trace_samples, Bed, Config, Host, VmArgs, CONFIGS};

/// Most VMs the case starts (64 MiB of guest RAM each, pre-faulted).
const MAX_VMS: usize = 16;

/// The MAC of member `role` (1: receiver or pong, 2: sender or ping) of
/// pair `pair`.
fn mac(pair: usize, role: u8) -> String {
    format!("52:54:00:0d:{pair:02x}:{role:02x}")
}

/// Median of `values` (sorted here); NaN when empty.
fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// What the throughput half measured.
struct Rate {
    pps: f64,
    frames: u64,
    sent: u64,
    cpu_ns_per_packet: Option<f64>,
    daemon_rss: Option<u64>,
    vmm_rss: Vec<u64>,
}

fn rate(bed: &Bed, config: &Config, daemon_pid: u32, pairs: usize, seconds: f64) -> Result<Rate> {
    let mut receivers = Vec::new();
    for pair in 0..pairs {
        let rx = bed.start_traced(
            config,
            &format!("rx{pair}"),
            0,
            &mac(pair, 1),
            &format!(
                "rx size=64 duration={} {}",
                seconds as u64 + 60,
                config.receiver
            ),
            None,
        )?;
        receivers.push(rx);
    }
    for rx in &receivers {
        bed.ready(rx, "rx")?;
    }
    let mut senders = Vec::new();
    for pair in 0..pairs {
        let tx = bed.start_traced(
            config,
            &format!("tx{pair}"),
            1,
            &mac(pair, 2),
            &format!(
                "tx size=64 duration={} {} dst={}",
                seconds.max(1.0) as u64,
                config.guest,
                mac(pair, 1)
            ),
            None,
        )?;
        senders.push(tx);
    }
    for tx in &senders {
        tx.wait_line("guest: tx txmode=", Duration::from_secs(120))?;
    }
    let cpu = CpuWindow::start();
    std::thread::sleep(Duration::from_secs_f64(seconds / 2.0));
    let daemon_rss = rss_bytes(daemon_pid);
    let vmm_rss: Vec<u64> = receivers
        .iter()
        .chain(&senders)
        .filter_map(|vm| rss_bytes(vm.pid()))
        .collect();
    let mut sent = 0;
    for tx in &mut senders {
        let out = tx.finish(Duration::from_secs_f64(seconds + 120.0))?;
        sent += out.result["frames"].as_u64().unwrap_or(0);
    }
    let busy = cpu.busy_seconds();
    let (mut frames, mut pps) = (0u64, 0.0);
    for rx in &mut receivers {
        let out = rx.finish(Duration::from_secs(90))?;
        let got = out.result["unique"].as_u64().unwrap_or(0);
        let secs = out.result["seconds"].as_f64().unwrap_or(0.0);
        frames += got;
        if secs > 0.0 {
            pps += got as f64 / secs;
        }
    }
    if frames == 0 {
        bail!("the receiving guests got nothing");
    }
    Ok(Rate {
        pps,
        frames,
        sent,
        cpu_ns_per_packet: busy.map(|b| b * 1e9 / frames as f64),
        daemon_rss,
        vmm_rss,
    })
}

/// What the ping-pong half measured.
struct Rtt {
    p50: Vec<f64>,
    p99: Vec<f64>,
    startup_ms: Vec<f64>,
}

fn rtt(bed: &Bed, config: &Config, pairs: usize, pings: u64) -> Result<Rtt> {
    let trace = Some(trace_samples(pings));
    let guest = config.guest.replace("burst=64", "burst=1");
    let mut pongs = Vec::new();
    for pair in 0..pairs {
        let pong = bed.start_traced(
            config,
            &format!("pong{pair}"),
            0,
            &mac(pair, 1),
            &format!("pong count={pings} {guest}"),
            None,
        )?;
        pongs.push(pong);
    }
    for pong in &pongs {
        bed.ready(pong, "pong")?;
    }
    let mut pings_vms: Vec<GuestVm> = Vec::new();
    for pair in 0..pairs {
        let ping = bed.start_traced(
            config,
            &format!("ping{pair}"),
            1,
            &mac(pair, 2),
            &format!("ping count={pings} dst={} {guest}", mac(pair, 1)),
            trace,
        )?;
        pings_vms.push(ping);
    }
    let mut out = Rtt {
        p50: Vec::new(),
        p99: Vec::new(),
        startup_ms: Vec::new(),
    };
    for ping in &mut pings_vms {
        let started = ping.started_ns();
        let result = ping.finish(Duration::from_secs(600))?;
        let rtt = &result.result["rtt_us"];
        out.p50.extend(rtt["p50"].as_f64());
        out.p99.extend(rtt["p99"].as_f64());
        if let Some(first) = Trace::from_stats(&result.vmm_stats).and_then(|t| t.first_tx_ping_ns())
        {
            out.startup_ms
                .push(first.saturating_sub(started) as f64 / 1e6);
        }
    }
    for pong in &mut pongs {
        let _ = pong.finish(Duration::from_secs(30));
    }
    Ok(out)
}

/// Runs the scaling case for every N of `args.scale` and adds one case per N.
pub fn run(
    args: &VmArgs,
    image: &std::path::Path,
    tsc_khz: u64,
    report: &mut Report,
    notes: &mut Vec<String>,
) -> Result<()> {
    let config = CONFIGS
        .iter()
        .find(|c| !c.qemu && c.name == args.scale_config)
        .with_context(|| {
            format!(
                "--scale-config {}: no such configuration of our VMM",
                args.scale_config
            )
        })?;
    for &n in &args.scale {
        if n == 0 {
            continue;
        }
        if n % 2 != 0 || n > MAX_VMS {
            notes.push(format!("scale: N={n} skipped (even, at most {MAX_VMS})"));
            continue;
        }
        let pairs = n / 2;
        let dir = unique_temp_dir("vsw-bench-vm-scale")?;
        let host = our_host(&args.bin_dir, dir.path())?;
        let Host::Ours { daemon, .. } = &host else {
            bail!("our host expected");
        };
        let daemon_pid = daemon.pid();
        let bed = Bed {
            host,
            image: image.to_owned(),
            dir: dir.path().to_owned(),
            tsc_khz,
        };
        let rate = match rate(&bed, config, daemon_pid, pairs, args.seconds) {
            Ok(r) => r,
            Err(e) => {
                notes.push(format!("scale N={n}: throughput failed: {e:#}"));
                continue;
            }
        };
        let mut rtt = match rtt(&bed, config, pairs, args.pings) {
            Ok(r) => r,
            Err(e) => {
                notes.push(format!("scale N={n}: ping-pong failed: {e:#}"));
                Rtt {
                    p50: Vec::new(),
                    p99: Vec::new(),
                    startup_ms: Vec::new(),
                }
            }
        };
        let vmm_rss_max = rate.vmm_rss.iter().copied().max();
        let vmm_rss_mean = (!rate.vmm_rss.is_empty())
            .then(|| rate.vmm_rss.iter().sum::<u64>() / rate.vmm_rss.len() as u64);
        let startup_max = rtt
            .startup_ms
            .iter()
            .copied()
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
        let p99_max = rtt
            .p99
            .iter()
            .copied()
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
        notes.push(format!(
            "scale N={n}: {:.3} Mpps aggregate over {pairs} pairs, RTT p50 {:.1} us (median of pairs), \
             daemon RSS {:.1} MiB, VMM RSS mean {:.1} MiB, start to first frame {:.0} ms (median)",
            rate.pps / 1e6,
            median(&mut rtt.p50),
            rate.daemon_rss.map_or(f64::NAN, mib),
            vmm_rss_mean.map_or(f64::NAN, mib),
            median(&mut rtt.startup_ms),
        ));
        report.push(
            Case::new(format!("scale N={n} vm->vm pairs"), "ours", 64, rate.pps)
                .with_cpu(rate.cpu_ns_per_packet)
                .with("config", config.name)
                .with("vms", n)
                .with("pairs", pairs)
                .with("frames", rate.frames)
                .with("lost", rate.sent.saturating_sub(rate.frames))
                .with("rtt_p50_us", median(&mut rtt.p50))
                .with("rtt_p99_us_max", p99_max)
                .with("rtt_p50_us_pairs", rtt.p50.clone())
                .with("daemon_rss_mib", rate.daemon_rss.map(mib))
                .with("vmm_rss_mib_mean", vmm_rss_mean.map(mib))
                .with("vmm_rss_mib_max", vmm_rss_max.map(mib))
                .with("startup_ms_median", median(&mut rtt.startup_ms))
                .with("startup_ms_max", startup_max),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_are_unicast_and_distinct() {
        assert_eq!(mac(3, 1), "52:54:00:0d:03:01");
        assert_ne!(mac(0, 1), mac(0, 2));
        assert!(median(&mut []).is_nan());
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
    }
}
