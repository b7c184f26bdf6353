//! `vswitch daemon --metrics-listen ADDR:PORT`: the metrics endpoint on its
//! own thread (`metrics`), one connection at a time (see
//! [`metrics_text::http`]). A scrape takes the same locks as
//! `vswitch stats` for as long as it takes to copy the counters; the
//! forwarding threads never wait for it.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use metrics_text::http::{Limits, Outcome, Server};
use switch_port::eventfd::EventFd;

use super::render::{render, Scrape};
use crate::access::Caller;
use crate::control;

/// A bound, not yet serving, metrics listener (bound early, so that an
/// address in use stops the daemon before it creates anything).
pub struct MetricsListener {
    http: Server,
}

impl MetricsListener {
    /// Listens on `addr` (port 0: a free port).
    pub fn bind(addr: SocketAddr) -> io::Result<MetricsListener> {
        Ok(MetricsListener {
            http: Server::bind(addr, Limits::default())?,
        })
    }
}

/// The running endpoint; stopped on [`MetricsEndpoint::stop`] or drop.
pub struct MetricsEndpoint {
    addr: SocketAddr,
    stop: Arc<EventFd>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsEndpoint {
    /// Serves the counters of `server` on `listener`.
    pub fn start(
        listener: MetricsListener,
        server: Arc<control::Server>,
    ) -> io::Result<MetricsEndpoint> {
        let http = listener.http;
        let addr = http.local_addr()?;
        let stop = Arc::new(EventFd::new()?);
        let stop_fd = stop.clone();
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                http.run(
                    stop_fd.raw(),
                    || scrape(&server),
                    |peer, outcome| match outcome {
                        Outcome::Served => {}
                        other => log::debug!("metrics: {peer}: {other:?}"),
                    },
                )
            })?;
        Ok(MetricsEndpoint {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The address listened on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stop.signal();
            let _ = thread.join();
        }
    }
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The text of one scrape: every port, as root sees them.
fn scrape(server: &control::Server) -> String {
    match Scrape::from_response(server.stats(None, &Caller::root())) {
        Some(scrape) => render(&scrape),
        None => String::new(),
    }
}
