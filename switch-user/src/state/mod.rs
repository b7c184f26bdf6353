//! Saved state: the configuration that outlives clients (persistent ports,
//! NIC attachments) kept in a versioned JSON file (`--state`), written
//! atomically before a changing request is answered and restored when the
//! daemon starts.
//!
//! - [`file`]: reading (with the version checked) and the atomic write;
//! - [`snapshot`]: what is saved, how requests change it, and the
//!   requests and commands that recreate it;
//! - [`restore`]: replaying it at start.

pub mod file;
pub mod restore;
pub mod snapshot;

use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use switch_port::names::SwitchName;
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
    /// Loads the state file at `path` (none yet: an empty state); `None`
    /// keeps the state in memory only. A corrupt file or one of a newer
    /// format is an error.
    pub fn open(path: Option<PathBuf>) -> Result<StateStore, StateFileError> {
        let state = match &path {
            Some(p) => file::read(p)?.unwrap_or_default(),
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

    /// Whether `iface` is saved as attached to `switch`.
    pub fn has_attachment(&self, switch: &SwitchName, iface: &str) -> bool {
        self.state.lock().has_attachment(switch, iface)
    }
}
