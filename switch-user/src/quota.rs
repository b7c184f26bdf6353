//! Per-user limits on what ports cost the host: how many ports a uid owns,
//! on how many switches, and how much port memory (the memfds, pre-faulted)
//! they take. Admins (root, `--admin-group`) are exempt.

use std::collections::BTreeSet;

use switch_port::names::SwitchName;
use thiserror::Error;

/// Default `--max-ports-per-user`.
pub const DEFAULT_MAX_PORTS: usize = 64;
/// Default `--max-switches-per-user`.
pub const DEFAULT_MAX_SWITCHES: usize = 16;
/// Default `--max-port-memory-per-user`, in MiB (a default port takes about
/// 4 MiB, the largest about 512 MiB).
pub const DEFAULT_MAX_PORT_MEMORY_MIB: u64 = 1024;

/// The limits of one non-admin uid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserLimits {
    /// Ports a uid may own.
    pub max_ports: usize,
    /// Switches a uid's ports may span.
    pub max_switches: usize,
    /// Bytes of port memory a uid's ports may take.
    pub max_port_memory: u64,
}

impl Default for UserLimits {
    fn default() -> Self {
        UserLimits {
            max_ports: DEFAULT_MAX_PORTS,
            max_switches: DEFAULT_MAX_SWITCHES,
            max_port_memory: DEFAULT_MAX_PORT_MEMORY_MIB << 20,
        }
    }
}

/// What a uid's ports take now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Ports it owns.
    pub ports: usize,
    /// Switches those ports are on.
    pub switches: BTreeSet<SwitchName>,
    /// Bytes of their memory.
    pub memory: u64,
}

impl Usage {
    /// Counts one more port of `bytes` on `switch`.
    pub fn add(&mut self, switch: &SwitchName, bytes: u64) {
        self.ports += 1;
        self.switches.insert(switch.clone());
        self.memory += bytes;
    }
}

/// A new port would take a uid over one of its limits.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum LimitExceeded {
    /// Too many ports.
    #[error(
        "limit exceeded: uid {uid} owns {limit} ports, the most a user may (--max-ports-per-user)"
    )]
    Ports {
        /// The uid.
        uid: u32,
        /// The limit.
        limit: usize,
    },
    /// Too many switches.
    #[error("limit exceeded: uid {uid} has ports on {limit} switches, the most a user may (--max-switches-per-user); {switch} would be one more")]
    Switches {
        /// The uid.
        uid: u32,
        /// The limit.
        limit: usize,
        /// The switch asked for.
        switch: SwitchName,
    },
    /// Too much port memory.
    #[error("limit exceeded: uid {uid} has {used} bytes of port memory and this port needs {asked} more, over the {limit} bytes a user may have (--max-port-memory-per-user; smaller --ring-size or --buf-size need less)")]
    Memory {
        /// The uid.
        uid: u32,
        /// Bytes its ports take now.
        used: u64,
        /// Bytes the new port needs.
        asked: u64,
        /// The limit in bytes.
        limit: u64,
    },
}

impl UserLimits {
    /// Whether `uid`, whose ports take `usage`, may add a port of `bytes`
    /// on `switch`.
    pub fn check(
        &self,
        uid: u32,
        usage: &Usage,
        switch: &SwitchName,
        bytes: u64,
    ) -> Result<(), LimitExceeded> {
        if usage.ports >= self.max_ports {
            return Err(LimitExceeded::Ports {
                uid,
                limit: self.max_ports,
            });
        }
        if !usage.switches.contains(switch) && usage.switches.len() >= self.max_switches {
            return Err(LimitExceeded::Switches {
                uid,
                limit: self.max_switches,
                switch: switch.clone(),
            });
        }
        if usage.memory.saturating_add(bytes) > self.max_port_memory {
            return Err(LimitExceeded::Memory {
                uid,
                used: usage.memory,
                asked: bytes,
                limit: self.max_port_memory,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sw(name: &str) -> SwitchName {
        name.parse().unwrap()
    }

    #[test]
    fn each_limit_refuses_one_past_it() {
        let limits = UserLimits {
            max_ports: 3,
            max_switches: 2,
            max_port_memory: 100,
        };
        let mut usage = Usage::default();
        assert!(limits.check(7, &usage, &sw("vale0"), 100).is_ok());
        assert!(matches!(
            limits.check(7, &usage, &sw("vale0"), 101),
            Err(LimitExceeded::Memory {
                used: 0,
                asked: 101,
                ..
            })
        ));
        usage.add(&sw("vale0"), 10);
        usage.add(&sw("vale1"), 10);
        assert!(limits.check(7, &usage, &sw("vale1"), 10).is_ok());
        let e = limits.check(7, &usage, &sw("vale2"), 10).unwrap_err();
        assert!(matches!(e, LimitExceeded::Switches { limit: 2, .. }));
        assert!(e.to_string().contains("vale2"), "{e}");
        usage.add(&sw("vale1"), 10);
        let e = limits.check(7, &usage, &sw("vale0"), 1).unwrap_err();
        assert_eq!(e, LimitExceeded::Ports { uid: 7, limit: 3 });
        assert!(e.to_string().contains("uid 7 owns 3 ports"), "{e}");
    }

    #[test]
    fn memory_does_not_overflow() {
        let limits = UserLimits::default();
        let usage = Usage {
            memory: u64::MAX - 1,
            ..Usage::default()
        };
        assert!(limits.check(1, &usage, &sw("vale0"), 10).is_err());
    }
}
