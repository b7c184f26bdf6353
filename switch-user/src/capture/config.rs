//! The captures and mirrors the daemon has, by port name, and the tap table
//! of a switch built from them whenever its ports or its taps change (port
//! numbers are resolved then, so a mirror may name a port that comes later).

use std::sync::Arc;

use switch_port::names::{PortName, SwitchName};
use switch_port::protocol::MirrorInfo;
use thiserror::Error;

use super::sink::CaptureSink;
use super::taps::{Tap, TapTable};
use crate::bridge::switch::PortTable;

/// Captures a user other than an admin may run at once (each may buffer
/// up to twice [`super::sink::BUFFER_BYTES`]).
pub const MAX_CAPTURES_PER_USER: usize = 4;

/// Longest mirror name.
pub const MAX_MIRROR_NAME: usize = 64;

/// A mirror cannot be added or removed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum MirrorError {
    /// The name is empty, too long, or has characters other than letters,
    /// digits, `_`, `-` and `.`.
    #[error("bad mirror name {0:?} (1 to 64 letters, digits, '_', '-' or '.')")]
    BadName(String),
    /// A port of another switch.
    #[error("port {port} is not on switch {switch}")]
    OtherSwitch {
        /// The port.
        port: PortName,
        /// The mirror's switch.
        switch: SwitchName,
    },
    /// No source port.
    #[error("a mirror needs at least one source port")]
    NoSource,
    /// The destination is also a source: the copies would loop.
    #[error("port {0} cannot be both a source and the destination of a mirror")]
    Loop(PortName),
    /// The name is taken.
    #[error("switch {switch} already has a mirror named {name}")]
    Exists {
        /// The switch.
        switch: SwitchName,
        /// The name.
        name: String,
    },
    /// No such mirror.
    #[error("switch {switch} has no mirror named {name}")]
    NotFound {
        /// The switch.
        switch: SwitchName,
        /// The name.
        name: String,
    },
}

/// Every capture and mirror of the daemon.
#[derive(Default)]
pub struct TapConfig {
    /// Each capture with the uid that started it.
    captures: Vec<(u32, Arc<CaptureSink>)>,
    mirrors: Vec<MirrorInfo>,
}

impl TapConfig {
    /// Adds a capture started by `uid`.
    pub fn add_capture(&mut self, uid: u32, sink: Arc<CaptureSink>) {
        self.captures.push((uid, sink));
    }

    /// How many captures `uid` runs.
    pub fn captures_of(&self, uid: u32) -> usize {
        self.captures.iter().filter(|(u, _)| *u == uid).count()
    }

    /// Removes a capture; whether it was there.
    pub fn remove_capture(&mut self, sink: &Arc<CaptureSink>) -> bool {
        let before = self.captures.len();
        self.captures.retain(|(_, c)| !Arc::ptr_eq(c, sink));
        self.captures.len() != before
    }

    /// Ends and removes the captures of `port` (it went away).
    pub fn port_removed(&mut self, port: &PortName) {
        self.captures.retain(|(_, c)| {
            let keep = c.port() != port;
            if !keep {
                c.end();
            }
            keep
        });
    }

    /// Adds a mirror after checking it.
    pub fn add_mirror(&mut self, mirror: MirrorInfo) -> Result<(), MirrorError> {
        let name_ok = !mirror.name.is_empty()
            && mirror.name.len() <= MAX_MIRROR_NAME
            && mirror
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
        if !name_ok {
            return Err(MirrorError::BadName(mirror.name));
        }
        if mirror.src.is_empty() {
            return Err(MirrorError::NoSource);
        }
        for port in mirror.src.iter().chain([&mirror.dst]) {
            if port.switch() != mirror.switch {
                return Err(MirrorError::OtherSwitch {
                    port: port.clone(),
                    switch: mirror.switch.clone(),
                });
            }
        }
        if mirror.src.contains(&mirror.dst) {
            return Err(MirrorError::Loop(mirror.dst));
        }
        if self
            .mirrors
            .iter()
            .any(|m| m.switch == mirror.switch && m.name == mirror.name)
        {
            return Err(MirrorError::Exists {
                switch: mirror.switch,
                name: mirror.name,
            });
        }
        self.mirrors.push(mirror);
        self.mirrors
            .sort_by(|a, b| (&a.switch, &a.name).cmp(&(&b.switch, &b.name)));
        Ok(())
    }

    /// Removes a mirror.
    pub fn remove_mirror(&mut self, switch: &SwitchName, name: &str) -> Result<(), MirrorError> {
        let before = self.mirrors.len();
        self.mirrors
            .retain(|m| !(m.switch == *switch && m.name == name));
        if self.mirrors.len() == before {
            return Err(MirrorError::NotFound {
                switch: switch.clone(),
                name: name.to_owned(),
            });
        }
        Ok(())
    }

    /// The mirrors, by switch and name.
    pub fn mirrors(&self) -> &[MirrorInfo] {
        &self.mirrors
    }

    /// The tap table of switch `switch` with ports `ports`.
    pub fn table(&self, switch: &SwitchName, ports: &PortTable) -> TapTable {
        let id_of = |name: &PortName| ports.active.iter().find(|p| p.name == *name).map(|p| p.id);
        let mut table = TapTable::default();
        for (_, c) in &self.captures {
            let Some(id) = id_of(c.port()) else {
                continue;
            };
            if c.dir().rx() {
                table.add(id, true, Tap::Capture(c.clone()));
            }
            if c.dir().tx() {
                table.add(id, false, Tap::Capture(c.clone()));
            }
        }
        for m in self.mirrors.iter().filter(|m| m.switch == *switch) {
            let Some(dst) = id_of(&m.dst) else {
                continue;
            };
            for id in m.src.iter().filter_map(id_of) {
                if m.dir.rx() {
                    table.add(id, true, Tap::Mirror(dst));
                }
                if m.dir.tx() {
                    table.add(id, false, Tap::Mirror(dst));
                }
            }
        }
        table
    }
}

#[cfg(test)]
mod tests {
    use switch_port::protocol::TapDirection;

    use super::*;

    fn mirror(name: &str, src: &[&str], dst: &str) -> MirrorInfo {
        MirrorInfo {
            switch: SwitchName::parse("vale0").unwrap(),
            name: name.into(),
            src: src.iter().map(|s| PortName::parse(s).unwrap()).collect(),
            dir: TapDirection::Both,
            dst: PortName::parse(dst).unwrap(),
        }
    }

    #[test]
    fn mirrors_are_checked() {
        let mut c = TapConfig::default();
        c.add_mirror(mirror("m1", &["vale0:a", "vale0:b"], "vale0:c"))
            .unwrap();
        let e = |m| TapConfig::default().add_mirror(m).unwrap_err();
        assert_eq!(
            e(mirror("m", &["vale0:a"], "vale0:a")),
            MirrorError::Loop(PortName::parse("vale0:a").unwrap())
        );
        assert!(matches!(
            e(mirror("m", &["vale1:a"], "vale0:b")),
            MirrorError::OtherSwitch { .. }
        ));
        assert!(matches!(
            e(mirror("", &["vale0:a"], "vale0:b")),
            MirrorError::BadName(_)
        ));
        assert!(matches!(
            e(mirror("m", &[], "vale0:b")),
            MirrorError::NoSource
        ));
        assert!(matches!(
            c.add_mirror(mirror("m1", &["vale0:x"], "vale0:y")),
            Err(MirrorError::Exists { .. })
        ));
        let vale0 = SwitchName::parse("vale0").unwrap();
        assert!(c.remove_mirror(&vale0, "nope").is_err());
        c.remove_mirror(&vale0, "m1").unwrap();
        assert!(c.mirrors().is_empty());
    }
}
