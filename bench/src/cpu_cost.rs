//! CPU time per packet, machine-wide: the busy time of every CPU over a
//! measured window, from the `cpu` line of /proc/stat (user, nice, system,
//! irq and softirq; a vCPU's guest time is part of user). Polling threads,
//! vCPUs and the kernel's softirq work (veth, bridge, XDP) all count, and so
//! does any other load on the machine: measure on a quiet one.

/// Busy CPU ticks of all CPUs so far, in clock ticks (`None` if /proc/stat
/// cannot be read).
fn busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal guest guest_nice
    let get = |i: usize| fields.get(i).copied().unwrap_or(0);
    Some(get(0) + get(1) + get(2) + get(5) + get(6))
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf is a pure query.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64
}

/// A window over which the machine's busy CPU time is measured.
pub struct CpuWindow {
    start: Option<u64>,
}

impl CpuWindow {
    /// Starts the window now.
    pub fn start() -> CpuWindow {
        CpuWindow {
            start: busy_ticks(),
        }
    }

    /// Busy CPU seconds of all CPUs since the start.
    pub fn busy_seconds(&self) -> Option<f64> {
        let (start, now) = (self.start?, busy_ticks()?);
        Some(now.saturating_sub(start) as f64 / ticks_per_second())
    }

    /// Busy CPU nanoseconds since the start per packet of `packets`
    /// (`None` without packets or without /proc/stat).
    pub fn ns_per_packet(&self, packets: u64) -> Option<f64> {
        if packets == 0 {
            return None;
        }
        Some(self.busy_seconds()? * 1e9 / packets as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_loop_shows_up() {
        let window = CpuWindow::start();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(200) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let busy = window.busy_seconds().expect("/proc/stat");
        // At least part of our own 200 ms (ticks are 10 ms).
        assert!(busy >= 0.1, "{busy}");
        assert!(window.ns_per_packet(0).is_none());
    }
}
