//! Which control connections the daemon serves: at most `max_total` at
//! once, at most `max_per_user` from any uid but root, and the last
//! `reserved_for_root` of the total only for root, so no user (nor many
//! users together) can take every connection and lock root out.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use thiserror::Error;

/// Default `--max-connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default `--max-connections-per-user`.
pub const DEFAULT_MAX_CONNECTIONS_PER_USER: usize = 64;
/// Connections only root may use.
pub const RESERVED_FOR_ROOT: usize = 16;

/// The connection caps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once.
    pub max_total: usize,
    /// Connections served at once for one uid (root excepted).
    pub max_per_user: usize,
    /// How many of `max_total` only root may use.
    pub reserved_for_root: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_total: DEFAULT_MAX_CONNECTIONS,
            max_per_user: DEFAULT_MAX_CONNECTIONS_PER_USER,
            reserved_for_root: RESERVED_FOR_ROOT,
        }
    }
}

/// A connection was refused.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ConnectionRefused {
    /// The uid has its share.
    #[error("limit exceeded: uid {uid} has {limit} control connections open, the most a user may (--max-connections-per-user); close some")]
    PerUser {
        /// The uid.
        uid: u32,
        /// The cap.
        limit: usize,
    },
    /// The daemon is full.
    #[error("limit exceeded: the daemon serves {limit} control connections, its most{reserved}")]
    Total {
        /// The cap that applied.
        limit: usize,
        /// A note on root's reserve, if it applied.
        reserved: &'static str,
    },
}

#[derive(Default)]
struct Open {
    total: usize,
    per_uid: HashMap<u32, usize>,
}

/// Counts open connections and admits new ones within the caps.
pub struct Admission {
    limits: ConnectionLimits,
    open: Mutex<Open>,
}

/// An admitted connection; dropping it frees its place.
pub struct Ticket {
    admission: Arc<Admission>,
    uid: u32,
}

impl Admission {
    /// An admission with `limits` and no connection.
    pub fn new(limits: ConnectionLimits) -> Arc<Admission> {
        Arc::new(Admission {
            limits,
            open: Mutex::new(Open::default()),
        })
    }

    /// Admits a connection from `uid`, or says why not.
    pub fn admit(self: &Arc<Self>, uid: u32) -> Result<Ticket, ConnectionRefused> {
        let l = &self.limits;
        let mut open = self.open.lock();
        if uid == 0 {
            if open.total >= l.max_total {
                return Err(ConnectionRefused::Total {
                    limit: l.max_total,
                    reserved: "",
                });
            }
        } else {
            let shared = l.max_total.saturating_sub(l.reserved_for_root);
            if open.total >= shared {
                return Err(ConnectionRefused::Total {
                    limit: shared,
                    reserved: " for users other than root",
                });
            }
            if open.per_uid.get(&uid).copied().unwrap_or(0) >= l.max_per_user {
                return Err(ConnectionRefused::PerUser {
                    uid,
                    limit: l.max_per_user,
                });
            }
        }
        open.total += 1;
        *open.per_uid.entry(uid).or_default() += 1;
        Ok(Ticket {
            admission: self.clone(),
            uid,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().total
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut open = self.admission.open.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_uid.get_mut(&self.uid) {
            *n -= 1;
            if *n == 0 {
                open.per_uid.remove(&self.uid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_user_cannot_lock_root_out() {
        let a = Admission::new(ConnectionLimits {
            max_total: 10,
            max_per_user: 4,
            reserved_for_root: 2,
        });
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(a.admit(1000).unwrap());
        }
        assert_eq!(
            a.admit(1000).err(),
            Some(ConnectionRefused::PerUser {
                uid: 1000,
                limit: 4
            })
        );
        for _ in 0..4 {
            held.push(a.admit(1001).unwrap());
        }
        // 8 of 10 used: the last 2 are root's.
        let e = a.admit(1002).err().unwrap();
        assert!(
            matches!(e, ConnectionRefused::Total { limit: 8, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("other than root"), "{e}");
        held.push(a.admit(0).unwrap());
        held.push(a.admit(0).unwrap());
        assert!(matches!(
            a.admit(0),
            Err(ConnectionRefused::Total { limit: 10, .. })
        ));
        assert_eq!(a.open(), 10);
        held.truncate(3);
        assert_eq!(a.open(), 3);
        assert!(a.admit(1000).is_ok(), "a released place is free again");
        drop(held);
        assert_eq!(a.open(), 0);
        assert!(a.open.lock().per_uid.is_empty());
    }
}
