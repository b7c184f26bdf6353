//! Resource usage of a process read from /proc, for leak tests.

use crate::{Error, Result};

/// A process's open file descriptors and resident memory at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Number of entries in `/proc/<pid>/fd`.
    pub open_fds: usize,
    /// Resident set size in bytes (VmRSS).
    pub rss_bytes: u64,
}

/// Counts the open file descriptors of process `pid`.
pub fn open_fd_count(pid: u32) -> Result<usize> {
    let dir = format!("/proc/{pid}/fd");
    let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(format!("read {dir}"), e))?;
    let mut count = 0;
    for entry in entries {
        entry.map_err(|e| Error::io(format!("read {dir}"), e))?;
        count += 1;
    }
    Ok(count)
}

/// The resident set size of process `pid` in bytes (VmRSS in
/// `/proc/<pid>/status`).
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status =
        std::fs::read_to_string(&path).map_err(|e| Error::io(format!("read {path}"), e))?;
    parse_vm_rss(&status)
}

/// Reads both [`open_fd_count`] and [`rss_bytes`].
pub fn usage(pid: u32) -> Result<Usage> {
    Ok(Usage {
        open_fds: open_fd_count(pid)?,
        rss_bytes: rss_bytes(pid)?,
    })
}

fn parse_vm_rss(status: &str) -> Result<u64> {
    let parse_error = || Error::Parse {
        what: "VmRSS",
        text: status.chars().take(200).collect(),
    };
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .ok_or_else(parse_error)?;
    let mut fields = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = fields
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(parse_error)?;
    match fields.next() {
        Some("kB") => Ok(value * 1024),
        _ => Err(parse_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_count_follows_opened_files() {
        let pid = std::process::id();
        let before = open_fd_count(pid).unwrap();
        let files: Vec<_> = (0..100)
            .map(|_| std::fs::File::open("/proc/self/status").unwrap())
            .collect();
        // Other test threads open and close files concurrently: allow for that.
        let during = open_fd_count(pid).unwrap();
        assert!(during >= before + 80, "before {before} during {during}");
        drop(files);
    }

    #[test]
    fn rss_is_plausible() {
        let rss = rss_bytes(std::process::id()).unwrap();
        assert!(rss > 100 * 1024, "rss {rss}");
        assert!(rss < 64 << 30, "rss {rss}");
        let usage = usage(std::process::id()).unwrap();
        assert!(usage.open_fds >= 3);
    }

    #[test]
    fn parses_status_and_rejects_garbage() {
        assert_eq!(
            parse_vm_rss("Name:\tx\nVmRSS:\t  1234 kB\n").unwrap(),
            1234 * 1024
        );
        assert!(parse_vm_rss("Name:\tx\n").is_err());
        assert!(parse_vm_rss("VmRSS: lots\n").is_err());
    }

    #[test]
    fn missing_process_is_an_error() {
        assert!(open_fd_count(u32::MAX).is_err());
        assert!(rss_bytes(u32::MAX).is_err());
    }
}
