//! Who may do what on the control socket.
//!
//! Reaching the socket at all takes its mode and group (`--socket-mode`,
//! `--socket-group`); what a connected peer may do depends on who it is:
//!
//! - **admins** (uid 0, or a member of `--admin-group` by primary or
//!   supplementary group) may do everything: attach and detach NICs, open,
//!   delete and inspect any port; per-user port limits do not apply to them;
//! - **everyone else** may create and open ports (becoming their owner,
//!   within the per-user limits), open, delete and read the counters of the
//!   ports they own, list every port with its owner, and see the forwarding
//!   table rows of their own ports.
//!
//! A refusal is a [`Denied`] naming the uid, what it tried and what that
//! needs.

use std::fmt;
use std::sync::Arc;

use thiserror::Error;

use crate::peer::PeerCred;
use crate::users::Group;

/// A request was refused for lack of permission.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("permission denied: uid {uid} may not {action} (needs {needs})")]
pub struct Denied {
    /// Who asked.
    pub uid: u32,
    /// What was refused, e.g. `attach eth0 to vale0`.
    pub action: String,
    /// Who may, e.g. `root or group vswitch-admin`.
    pub needs: String,
}

/// The owner of a port: the uid that created it and its user name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// The uid.
    pub uid: u32,
    /// Its user name, if it has one.
    pub name: Option<Arc<str>>,
}

impl Owner {
    /// The owner of ports the daemon makes for itself (root).
    pub fn root() -> Owner {
        Owner {
            uid: 0,
            name: Some("root".into()),
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "uid {} ({name})", self.uid),
            None => write!(f, "uid {}", self.uid),
        }
    }
}

/// The daemon's access policy: which group, besides root, administers it.
#[derive(Clone, Debug, Default)]
pub struct AccessPolicy {
    admin_group: Option<Group>,
}

impl AccessPolicy {
    /// A policy whose admins are root and the members of `admin_group`.
    pub fn new(admin_group: Option<Group>) -> AccessPolicy {
        AccessPolicy { admin_group }
    }

    /// The caller behind a connection with peer credentials `peer` (whose
    /// user name is `name`).
    pub fn caller(&self, peer: &PeerCred, name: Option<String>) -> Caller {
        let admin = peer.uid == 0
            || self
                .admin_group
                .as_ref()
                .is_some_and(|g| peer.in_group(g.gid));
        Caller {
            owner: Owner {
                uid: peer.uid,
                name: name.map(Into::into),
            },
            admin,
            admin_group: self.admin_group.as_ref().map(|g| g.name.as_str().into()),
        }
    }
}

/// Who sent a request, and what that allows.
#[derive(Clone, Debug)]
pub struct Caller {
    owner: Owner,
    admin: bool,
    admin_group: Option<Arc<str>>,
}

impl Caller {
    /// Root, for the daemon's own use and tests.
    pub fn root() -> Caller {
        Caller {
            owner: Owner::root(),
            admin: true,
            admin_group: None,
        }
    }

    /// `nobody` (uid 65534) under the default policy, for tests.
    #[cfg(test)]
    pub fn nobody() -> Caller {
        AccessPolicy::default().caller(
            &PeerCred {
                pid: 1,
                uid: 65534,
                gid: 65534,
                groups: vec![],
            },
            None,
        )
    }

    /// The daemon itself acting for `owner` (restoring saved state): an
    /// admin whose ports are `owner`'s.
    pub fn on_behalf_of(owner: Owner) -> Caller {
        Caller {
            owner,
            admin: true,
            admin_group: None,
        }
    }

    /// The caller as the owner of what it creates.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    /// The caller's uid.
    pub fn uid(&self) -> u32 {
        self.owner.uid
    }

    /// Whether the caller is root or in the admin group.
    pub fn is_admin(&self) -> bool {
        self.admin
    }

    fn admins(&self) -> String {
        match &self.admin_group {
            Some(g) => format!("root or group {g}"),
            None => "root".to_owned(),
        }
    }

    /// Allows `action` to admins only.
    pub fn require_admin(&self, action: impl fmt::Display) -> Result<(), Denied> {
        if self.admin {
            return Ok(());
        }
        Err(Denied {
            uid: self.uid(),
            action: action.to_string(),
            needs: self.admins(),
        })
    }

    /// Allows `action` on something `owner` owns to that owner and admins.
    pub fn require_owner(&self, owner: &Owner, action: impl fmt::Display) -> Result<(), Denied> {
        if self.may_use(owner) {
            return Ok(());
        }
        Err(Denied {
            uid: self.uid(),
            action: action.to_string(),
            needs: match &self.admin_group {
                Some(g) => format!("its owner {owner}, root or group {g}"),
                None => format!("its owner {owner} or root"),
            },
        })
    }

    /// Whether the caller may use (open, delete, inspect) what `owner` owns.
    pub fn may_use(&self, owner: &Owner) -> bool {
        self.admin || self.owner.uid == owner.uid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uid: u32, gid: u32, groups: &[u32]) -> PeerCred {
        PeerCred {
            pid: 1,
            uid,
            gid,
            groups: groups.to_vec(),
        }
    }

    fn policy() -> AccessPolicy {
        AccessPolicy::new(Some(Group {
            gid: 900,
            name: "vswitch-admin".into(),
        }))
    }

    #[test]
    fn root_and_the_admin_group_administer() {
        let p = policy();
        assert!(p.caller(&peer(0, 0, &[]), None).is_admin());
        assert!(p.caller(&peer(1000, 900, &[]), None).is_admin());
        assert!(p.caller(&peer(1000, 100, &[5, 900]), None).is_admin());
        assert!(!p.caller(&peer(1000, 100, &[5, 901]), None).is_admin());
        assert!(!AccessPolicy::default()
            .caller(&peer(1000, 900, &[900]), None)
            .is_admin());
    }

    #[test]
    fn refusals_name_the_uid_the_action_and_who_may() {
        let nobody = policy().caller(&peer(65534, 65534, &[]), Some("nobody".into()));
        let e = nobody.require_admin("attach eth0 to vale0").unwrap_err();
        assert_eq!(
            e.to_string(),
            "permission denied: uid 65534 may not attach eth0 to vale0 (needs root or group vswitch-admin)"
        );
        let e = nobody
            .require_owner(&Owner::root(), "delete vale0:p1")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "permission denied: uid 65534 may not delete vale0:p1 (needs its owner uid 0 (root), root or group vswitch-admin)"
        );
        assert!(nobody
            .require_owner(nobody.owner(), "delete vale0:mine")
            .is_ok());
        assert!(Caller::root().require_owner(nobody.owner(), "x").is_ok());
        let e = AccessPolicy::default()
            .caller(&peer(7, 7, &[]), None)
            .require_admin("detach eth0 from vale0")
            .unwrap_err();
        assert!(e.to_string().ends_with("(needs root)"), "{e}");
        let e = AccessPolicy::default()
            .caller(&peer(7, 7, &[]), None)
            .require_owner(&Owner::root(), "open vale0:p1")
            .unwrap_err();
        assert!(
            e.to_string()
                .ends_with("(needs its owner uid 0 (root) or root)"),
            "{e}"
        );
    }
}
