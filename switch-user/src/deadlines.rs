//! Deadlines on control connections: a connection must send a whole
//! request, and read its whole response, within the control timeout of
//! starting to (the first request within the timeout of connecting).
//! Between requests a connection may idle (a VMM holds its port's
//! connection for hours). The daemon's housekeeping calls [`Deadlines::reap`],
//! which shuts the overdue connections down; their threads then see the end
//! of the stream and finish.

use std::collections::HashMap;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Default `--control-timeout`, in seconds.
pub const DEFAULT_CONTROL_TIMEOUT_SECS: u64 = 5;

struct Entry {
    stream: Arc<UnixStream>,
    deadline: Option<Instant>,
}

/// Every watched connection and its deadline.
pub struct Deadlines {
    timeout: Duration,
    entries: Mutex<HashMap<u64, Entry>>,
    next_id: AtomicU64,
}

/// One watched connection; dropping it stops the watch.
pub struct Watch {
    deadlines: Arc<Deadlines>,
    id: u64,
}

impl Deadlines {
    /// Deadlines `timeout` after each start.
    pub fn new(timeout: Duration) -> Arc<Deadlines> {
        Arc::new(Deadlines {
            timeout,
            entries: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        })
    }

    /// Watches `stream`, with a deadline from now.
    pub fn watch(self: &Arc<Self>, stream: Arc<UnixStream>) -> Watch {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.entries.lock().insert(
            id,
            Entry {
                stream,
                deadline: Some(Instant::now() + self.timeout),
            },
        );
        Watch {
            deadlines: self.clone(),
            id,
        }
    }

    /// Shuts down every connection past its deadline at `now`; returns how
    /// many. Each is shut down once (its deadline is cleared).
    pub fn reap(&self, now: Instant) -> usize {
        let mut entries = self.entries.lock();
        let mut reaped = 0;
        for entry in entries.values_mut() {
            if entry.deadline.is_some_and(|d| d <= now) {
                entry.deadline = None;
                let _ = entry.stream.shutdown(std::net::Shutdown::Both);
                reaped += 1;
            }
        }
        reaped
    }

    /// Connections watched now.
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// Whether no connection is watched.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Watch {
    /// Sets the deadline one timeout from now.
    pub fn arm(&self) {
        let deadline = Instant::now() + self.deadlines.timeout;
        if let Some(e) = self.deadlines.entries.lock().get_mut(&self.id) {
            e.deadline = Some(deadline);
        }
    }

    /// Clears the deadline.
    pub fn disarm(&self) {
        if let Some(e) = self.deadlines.entries.lock().get_mut(&self.id) {
            e.deadline = None;
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.deadlines.entries.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn only_armed_overdue_connections_are_shut_down() {
        let deadlines = Deadlines::new(Duration::from_secs(5));
        let (a, mut a_peer) = UnixStream::pair().unwrap();
        let (b, mut b_peer) = UnixStream::pair().unwrap();
        let wa = deadlines.watch(Arc::new(a));
        let wb = deadlines.watch(Arc::new(b));
        wb.disarm();
        assert_eq!(deadlines.reap(Instant::now()), 0, "not due yet");
        let later = Instant::now() + Duration::from_secs(6);
        assert_eq!(deadlines.reap(later), 1);
        assert_eq!(deadlines.reap(later), 0, "reaped once");
        let mut buf = [0u8; 1];
        assert_eq!(a_peer.read(&mut buf).unwrap(), 0, "a was shut down");
        b_peer.set_nonblocking(true).unwrap();
        assert!(b_peer.read(&mut buf).is_err(), "b is still open (no data)");
        wb.arm();
        assert_eq!(deadlines.reap(later), 1);
        drop(wa);
        drop(wb);
        assert!(deadlines.is_empty());
    }
}
