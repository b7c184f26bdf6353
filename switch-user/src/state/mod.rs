//! Saved state: the configuration that outlives clients (persistent ports,
//! NIC attachments) kept in a versioned JSON file (`--state`), written
//! atomically before a changing request is answered and restored when the
//! daemon starts.
//!
//! - [`mod@file`]: reading (with the version checked) and the atomic write;
//! - [`snapshot`]: what is saved, how requests change it, and the
//!   requests and commands that recreate it;
//! - [`restore`]: replaying it at start.

pub mod file;
pub mod restore;
pub mod snapshot;

use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use switch_port::names::{PortName, SwitchName};
use switch_port::protocol::Request;

use crate::access::Owner;
use file::StateFileError;
use snapshot::SavedState;

/// The default `--state`.
pub const DEFAULT_STATE_PATH: &str = "/var/lib/vswitch/state.json";

/// The saved configuration, in memory and (unless there is no file) on disk.
pub struct StateStore {
    path: Option<PathBuf>,
    state: Mutex<SavedState>,
}

impl StateStore {
    /// Loads the state file at `path` (none yet: an empty state) and
    /// writes it back, so a file that cannot be written is found now and
    /// not at the first change; `None` keeps the state in memory only. A
    /// corrupt file or one of a newer format is an error.
    pub fn open(path: Option<PathBuf>) -> Result<StateStore, StateFileError> {
        let state = match &path {
            Some(p) => {
                let state = file::read(p)?.unwrap_or_default();
                file::write(p, &state)?;
                state
            }
            None => SavedState::default(),
        };
        Ok(StateStore {
            path,
            state: Mutex::new(state),
        })
    }

    /// The state file, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// A copy of the saved configuration.
    pub fn snapshot(&self) -> SavedState {
        self.state.lock().clone()
    }

    /// Records what the successful `request` of `owner` changed and, if
    /// anything did, writes the file before returning.
    pub fn record(&self, request: &Request, owner: &Owner) -> Result<(), StateFileError> {
        let mut state = self.state.lock();
        let mut next = state.clone();
        if !next.apply(request, owner) {
            return Ok(());
        }
        if let Some(path) = &self.path {
            file::write(path, &next)?;
        }
        *state = next;
        Ok(())
    }

    /// Whether tunnel `port` is saved.
    pub fn has_tunnel(&self, port: &PortName) -> bool {
        self.state.lock().tunnels.iter().any(|t| t.port == *port)
    }

    /// Whether `iface` is saved as attached to `switch`.
    pub fn has_attachment(&self, switch: &SwitchName, iface: &str) -> bool {
        self.state.lock().has_attachment(switch, iface)
    }
}

#[cfg(test)]
mod tests {
    use switch_port::protocol::Request;

    use super::*;

    #[test]
    fn changes_are_on_disk_when_record_returns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let store = StateStore::open(Some(path.clone())).unwrap();
        assert_eq!(file::read(&path).unwrap(), Some(SavedState::default()));
        let create = Request::CreatePort {
            port: "vale0:p".parse().unwrap(),
            ring_size: None,
            buf_size: None,
            mac: None,
            max_macs: None,
            storm_pps: None,
            vlan: None,
        };
        store.record(&create, &Owner::root()).unwrap();
        let on_disk = file::read(&path).unwrap().unwrap();
        assert_eq!(on_disk, store.snapshot());
        assert_eq!(on_disk.ports.len(), 1);
        let reopened = StateStore::open(Some(path)).unwrap();
        assert_eq!(reopened.snapshot(), on_disk);
    }

    #[test]
    fn an_unwritable_state_file_is_found_at_open() {
        let e = StateStore::open(Some("/dev/null/state.json".into()))
            .err()
            .unwrap();
        assert!(e.to_string().contains("/dev/null/state.json"), "{e}");
        // A directory where the file should be.
        let dir = tempfile::tempdir().unwrap();
        let blocked = dir.path().join("state.json");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("x"), b"").unwrap();
        let e = StateStore::open(Some(blocked)).err().unwrap();
        assert!(matches!(e, StateFileError::Read { .. }), "{e}");
    }

    #[test]
    fn without_a_file_the_state_is_kept_in_memory() {
        let store = StateStore::open(None).unwrap();
        assert!(store.path().is_none());
        let attach = Request::Attach {
            switch: "vale0".parse().unwrap(),
            iface: "eth0".into(),
            queues: None,
            zero_copy: None,
            host: false,
            host_name: None,
            pass: vec![],
            checksum: None,
            vlan: None,
            host_vlan: None,
            busy_poll: None,
        };
        store.record(&attach, &Owner::root()).unwrap();
        assert!(store.has_attachment(&"vale0".parse().unwrap(), "eth0"));
    }
}
