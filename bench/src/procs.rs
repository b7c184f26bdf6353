//! CPU time of processes we started, from /proc, to report the cores a
//! multi-process case used.

use std::time::Instant;

/// User plus system CPU seconds of process `pid` so far (0 if unreadable).
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf is a pure query.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / hz
}

/// Resident memory of process `pid` in bytes (VmRSS), if readable.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Measures the cores a set of processes use over an interval.
pub struct CpuMeter {
    pids: Vec<u32>,
    start_cpu: f64,
    start: Instant,
}

impl CpuMeter {
    /// Starts measuring `pids`.
    pub fn start(pids: &[u32]) -> CpuMeter {
        CpuMeter {
            pids: pids.to_vec(),
            start_cpu: pids.iter().map(|&p| cpu_seconds(p)).sum(),
            start: Instant::now(),
        }
    }

    /// Average cores used since the start.
    pub fn cores(&self) -> f64 {
        let cpu: f64 = self.pids.iter().map(|&p| cpu_seconds(p)).sum();
        (cpu - self.start_cpu) / self.start.elapsed().as_secs_f64().max(1e-9)
    }
}
