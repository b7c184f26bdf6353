//! The `--metrics-listen` endpoint: a thread of its own (`vmm-metrics`)
//! under its own seccomp filter ([`crate::sandbox::filters::metrics_rules`])
//! that answers `GET /metrics` one connection at a time
//! ([`metrics_text::http`]). The listener is bound during set-up, before
//! the sandbox; a scrape reads the counters (the e1000 model's error
//! counters under the device lock, for a moment) and never waits for the
//! guest.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use metrics_text::http::{Limits, Outcome, Server};
use seccompiler::BpfProgram;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::render::render;
use crate::io_thread::{extra_stats, IoSources};
use crate::net::NetDevice;
use crate::sandbox::thread::SandboxedThread;
use crate::sandbox::ThreadKind;
use crate::stats::Stats;

/// A bound, not yet serving, metrics listener.
#[derive(Debug)]
pub struct MetricsListener {
    server: Server,
}

impl MetricsListener {
    /// Listens on `addr` (port 0: a free port).
    pub fn bind(addr: SocketAddr) -> io::Result<MetricsListener> {
        Ok(MetricsListener {
            server: Server::bind(addr, Limits::default())?,
        })
    }

    /// The address listened on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.server.local_addr()
    }
}

/// The serving thread; stopped on [`MetricsEndpoint::stop`] or drop.
pub struct MetricsEndpoint {
    thread: SandboxedThread,
}

impl MetricsEndpoint {
    /// Starts serving the counters of `stats` (and of the NIC's model) on
    /// `listener`; the thread installs `filter` before it accepts anything.
    pub fn spawn_sandboxed(
        listener: MetricsListener,
        stats: Arc<Stats>,
        net: Option<Arc<NetDevice>>,
        filter: Option<BpfProgram>,
    ) -> io::Result<MetricsEndpoint> {
        let stop = EventFd::new(EFD_NONBLOCK)?;
        let stop_fd = stop.try_clone()?;
        let sources = IoSources {
            net,
            stats,
            stats_json: None,
        };
        let thread = SandboxedThread::spawn(
            "vmm-metrics",
            ThreadKind::Metrics,
            filter,
            stop,
            move || {
                listener.server.run(
                    stop_fd.as_raw_fd(),
                    || render(&sources.stats.to_json(None, extra_stats(&sources))),
                    |peer, outcome| match outcome {
                        Outcome::Served => {}
                        other => log::debug!("metrics: {peer}: {other:?}"),
                    },
                )
            },
        )?;
        Ok(MetricsEndpoint { thread })
    }

    /// Stops the thread and waits for it.
    pub fn stop(self) {
        self.thread.stop();
    }
}
