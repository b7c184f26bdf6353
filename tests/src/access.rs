//! Users and groups for access-control tests: a system group made for one
//! test (removed on drop, and stale ones of dead test processes swept), and
//! commands run as another user with chosen groups.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use testbed::run_bounded;

/// The unprivileged user the tests run clients as (Debian's `nobody`).
pub const NOBODY: u32 = 65534;
/// `nobody`'s primary group (Debian's `nogroup`).
pub const NOGROUP: u32 = 65534;

const PREFIX: &str = "vswt-";
/// How long groupadd, groupdel and getent may run.
const TOOL_TIMEOUT: Duration = Duration::from_secs(30);
static NEXT_GROUP: AtomicU32 = AtomicU32::new(0);

/// A system group created for a test; deleted on drop.
pub struct TestGroup {
    name: String,
    gid: u32,
}

impl TestGroup {
    /// Creates a group with a name unique to this process (`vswt-PID-N`),
    /// first removing groups of that form whose process is gone.
    pub fn create() -> Result<TestGroup> {
        sweep_stale();
        let name = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            NEXT_GROUP.fetch_add(1, Ordering::Relaxed)
        );
        let mut groupadd = Command::new("groupadd");
        groupadd.args(["--system", &name]);
        let out = run_bounded(groupadd, TOOL_TIMEOUT).context("running groupadd")?;
        if !out.status.success() {
            bail!(
                "groupadd {name}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let gid = gid_of(&name)?;
        Ok(TestGroup { name, gid })
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The group's id.
    pub fn gid(&self) -> u32 {
        self.gid
    }
}

impl Drop for TestGroup {
    fn drop(&mut self) {
        groupdel(&self.name);
    }
}

fn gid_of(name: &str) -> Result<u32> {
    let mut getent = Command::new("getent");
    getent.args(["group", name]);
    let out = run_bounded(getent, TOOL_TIMEOUT).context("running getent")?;
    let line = String::from_utf8_lossy(&out.stdout);
    line.split(':')
        .nth(2)
        .and_then(|g| g.trim().parse().ok())
        .with_context(|| format!("no gid for group {name} in {line:?}"))
}

/// Deletes group `name`, ignoring failure (cleanup).
fn groupdel(name: &str) {
    let mut groupdel = Command::new("groupdel");
    groupdel.arg(name);
    let _ = run_bounded(groupdel, TOOL_TIMEOUT);
}

/// Deletes `vswt-PID-N` groups whose test process no longer runs.
fn sweep_stale() {
    let Ok(groups) = std::fs::read_to_string("/etc/group") else {
        return;
    };
    for line in groups.lines() {
        let Some(name) = line.split(':').next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            groupdel(name);
        }
    }
}

/// Makes `cmd` run as `uid` with primary group `gid` and supplementary
/// `groups` (exactly those).
pub fn run_as(cmd: &mut Command, uid: u32, gid: u32, groups: &[u32]) {
    let groups: Vec<libc::gid_t> = groups.to_vec();
    // SAFETY: the closure runs in the child between fork and exec and only
    // makes the setgroups/setgid/setuid system calls on memory allocated
    // before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                || libc::setgid(gid) != 0
                || libc::setuid(uid) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
