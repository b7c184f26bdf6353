//! The I/O thread: one epoll loop that waits for the switch port's kicks (RX
//! frames arrived, TX space freed), the e1000 moderation timer, the
//! interrupt resample fd (level mode), the once-a-second stats timer, and in
//! CSB mode the guest's TDT kicks (ioeventfd), and hands each to the device.
//!
//! In CSB mode it is also the net worker: after a kick it polls TX and RX
//! with [`poll_until_idle`] until the device has been idle for the spin time,
//! servicing its other events in between, and then sleeps in epoll again.
//! One thread serves both directions, so a VM runs two threads (vCPU and
//! this one): on a 2-core machine shared with other VMs and the switch, a
//! third thread per VM would only add cross-CPU wake-ups (~20 us each).
//!
//! With the data path offloaded to the switch daemon it stops watching the
//! TDT kick (the daemon sleeps on it) and watches the daemon's call eventfds
//! instead, which raise the guest's interrupts ([`NetDevice::on_offload_call`]),
//! and the end of the port's control connection (the daemon going away:
//! [`NetDevice::on_daemon_gone`]).

use std::cell::Cell;
use std::io;
use std::ops::ControlFlow;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

use seccompiler::BpfProgram;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::net::worker::poll_until_idle;
use crate::net::NetDevice;
use crate::sandbox::thread::SandboxedThread;
use crate::sandbox::ThreadKind;
use crate::stats::Stats;
use crate::stats_file::StatsFile;
use crate::timer::DeadlineTimer;

const TOKEN_STOP: u64 = 0;
const TOKEN_KICK: u64 = 1;
const TOKEN_MODERATION: u64 = 2;
const TOKEN_RESAMPLE: u64 = 3;
const TOKEN_STATS: u64 = 4;
const TOKEN_DEFERRED: u64 = 5;
const TOKEN_TDT_KICK: u64 = 6;
const TOKEN_PORT_CHANGED: u64 = 7;
const TOKEN_OFFLOAD_CALL: u64 = 8;
const TOKEN_DAEMON_GONE: u64 = 9;

/// A running I/O thread.
pub struct IoThread {
    thread: SandboxedThread,
}

/// What the I/O thread serves.
pub struct IoSources {
    /// The e1000 and its backend, if the VM has a NIC.
    pub net: Option<Arc<NetDevice>>,
    /// Counters, and where to write them every second.
    pub stats: Arc<Stats>,
    /// The `--stats-json` file.
    pub stats_json: Option<Arc<StatsFile>>,
}

impl IoThread {
    /// Starts the thread.
    pub fn spawn(sources: IoSources) -> io::Result<IoThread> {
        Self::spawn_sandboxed(sources, None)
    }

    /// Starts the thread, which installs `filter` (its seccomp filter, see
    /// [`crate::sandbox`]) before it serves anything; returns once it did.
    pub fn spawn_sandboxed(sources: IoSources, filter: Option<BpfProgram>) -> io::Result<IoThread> {
        let stop = EventFd::new(EFD_NONBLOCK)?;
        let epoll = Epoll::new()?;
        let add = |fd, token| {
            epoll.ctl(
                ControlOperation::Add,
                fd,
                EpollEvent::new(EventSet::IN, token),
            )
        };
        use std::os::fd::AsRawFd;
        add(stop.as_raw_fd(), TOKEN_STOP)?;
        if let Some(net) = &sources.net {
            add(net.kick_fd(), TOKEN_KICK)?;
            add(net.deferred_fd(), TOKEN_DEFERRED)?;
            add(net.tdt_kick_fd(), TOKEN_TDT_KICK)?;
            add(net.port_changed_fd(), TOKEN_PORT_CHANGED)?;
            add(net.moderation_timer_fd(), TOKEN_MODERATION)?;
            if let Some(fd) = net.resample_fd() {
                add(fd, TOKEN_RESAMPLE)?;
            }
            for fd in net.offload_call_fds().into_iter().flatten() {
                add(fd, TOKEN_OFFLOAD_CALL)?;
            }
        }
        let stats_timer = DeadlineTimer::new()?;
        if sources.stats_json.is_some() {
            stats_timer.arm_periodic(Duration::from_secs(1))?;
            add(stats_timer.fd(), TOKEN_STATS)?;
        }
        let stop_fd = stop.try_clone()?;
        let thread = Thread {
            epoll,
            stop: stop_fd,
            stats_timer,
            sources,
            watching_tdt: Cell::new(true),
            watching_control: Cell::new(None),
        };
        let thread =
            SandboxedThread::spawn("vmm-io", ThreadKind::Io, filter, stop, move || thread.run())?;
        Ok(IoThread { thread })
    }

    /// Stops the thread and waits for it.
    pub fn stop(self) {
        self.thread.stop();
    }
}

/// The thread's state.
struct Thread {
    epoll: Epoll,
    stop: EventFd,
    stats_timer: DeadlineTimer,
    sources: IoSources,
    /// The TDT kick eventfd is in the epoll (not while offloaded).
    watching_tdt: Cell<bool>,
    /// The control connection whose end is watched (while offloaded).
    watching_control: Cell<Option<RawFd>>,
}

impl Thread {
    fn run(&self) {
        let mut events = vec![EpollEvent::default(); 8];
        let mut service_events = vec![EpollEvent::default(); 8];
        loop {
            let poll = match self.wait(-1, &mut events) {
                ControlFlow::Break(()) => return,
                ControlFlow::Continue(poll) => poll,
            };
            if !poll {
                continue;
            }
            let Some(net) = &self.sources.net else {
                continue;
            };
            let service = || match self.wait(0, &mut service_events) {
                ControlFlow::Break(()) => ControlFlow::Break(()),
                ControlFlow::Continue(_) => ControlFlow::Continue(()),
            };
            if poll_until_idle(net.as_ref(), net.spin(), service).is_break() {
                return;
            }
            self.follow_offload(net);
        }
    }

    /// Waits up to `timeout_ms` (-1: forever) and handles what arrived.
    /// Breaks on a stop request; otherwise tells whether the net worker must
    /// poll (a CSB-mode kick arrived).
    fn wait(&self, timeout_ms: i32, events: &mut [EpollEvent]) -> ControlFlow<(), bool> {
        let n = match self.epoll.wait(timeout_ms, events) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                return ControlFlow::Continue(false)
            }
            Err(e) => {
                log::error!("I/O thread: epoll_wait failed: {e}; stopping");
                return ControlFlow::Break(());
            }
        };
        if n == 0 {
            return ControlFlow::Continue(false);
        }
        let sources = &self.sources;
        sources.stats.io_thread.wakeups.inc();
        let mut poll = false;
        for event in &events[..n] {
            match (event.data(), &sources.net) {
                (TOKEN_STOP, _) => {
                    let _ = self.stop.read();
                    return ControlFlow::Break(());
                }
                (TOKEN_KICK, Some(net)) => poll |= net.on_kick(),
                (TOKEN_DEFERRED, Some(net)) => poll |= net.on_deferred(),
                (TOKEN_TDT_KICK, Some(net)) => poll |= net.on_tdt_kick(),
                (TOKEN_MODERATION, Some(net)) => net.on_moderation_timer(),
                (TOKEN_RESAMPLE, Some(net)) => net.on_resample(),
                (TOKEN_PORT_CHANGED, Some(net)) => poll |= self.follow_port(net),
                (TOKEN_OFFLOAD_CALL, Some(net)) => poll |= net.on_offload_call(),
                (TOKEN_DAEMON_GONE, Some(net)) => poll |= net.on_daemon_gone(),
                (TOKEN_STATS, _) => {
                    self.stats_timer.take_expirations();
                    if let Some(file) = &sources.stats_json {
                        if let Err(e) = sources.stats.write_json(file, None, extra_stats(sources)) {
                            log::warn!("cannot write the stats JSON: {e}");
                        }
                    }
                }
                _ => {}
            }
        }
        if let Some(net) = &sources.net {
            self.follow_offload(net);
        }
        ControlFlow::Continue(poll)
    }
}

impl Thread {
    /// Watches the TDT kick eventfd unless the data path is offloaded (the
    /// daemon reads it then); called after every batch of events, and by
    /// the worker's loop when it handed the data path over.
    fn follow_offload(&self, net: &NetDevice) {
        let wanted = !net.offloaded();
        if wanted == self.watching_tdt.get() {
            return;
        }
        self.follow_daemon(net, !wanted);
        let (operation, event) = if wanted {
            (
                ControlOperation::Add,
                EpollEvent::new(EventSet::IN, TOKEN_TDT_KICK),
            )
        } else {
            (ControlOperation::Delete, EpollEvent::default())
        };
        match self.epoll.ctl(operation, net.tdt_kick_fd(), event) {
            Ok(()) => self.watching_tdt.set(wanted),
            Err(e) => log::error!("I/O thread: cannot follow the offload's TDT kick: {e}"),
        }
    }

    /// Watches the port's control connection for its end while the data
    /// path is offloaded (`offloaded`), so that a daemon that goes away is
    /// noticed without the link watcher (`--no-reconnect`); stops watching
    /// it when the path is back. Only hang-ups wake the thread: answers are
    /// the exchanging thread's to read.
    fn follow_daemon(&self, net: &NetDevice, offloaded: bool) {
        if let Some(fd) = self.watching_control.take() {
            // The connection may be closed already (a replaced port).
            let _ = self
                .epoll
                .ctl(ControlOperation::Delete, fd, EpollEvent::default());
        }
        if !offloaded {
            return;
        }
        let Some(fd) = net.control_fd() else {
            return;
        };
        let hang_up = EventSet::READ_HANG_UP | EventSet::HANG_UP | EventSet::ERROR;
        match self.epoll.ctl(
            ControlOperation::Add,
            fd,
            EpollEvent::new(hang_up, TOKEN_DAEMON_GONE),
        ) {
            Ok(()) => self.watching_control.set(Some(fd)),
            Err(e) => log::error!("I/O thread: cannot watch the switch daemon's connection: {e}"),
        }
    }

    /// The NIC's port was replaced (the switch daemon went away, or came
    /// back): stop watching the old ports' kick eventfds (before they are
    /// closed, so that an old port's eventfd still open elsewhere cannot wake
    /// this epoll) and watch the new one. Returns true if the net worker
    /// must poll (CSB mode).
    fn follow_port(&self, net: &NetDevice) -> bool {
        let (retired, kick_fd) = net.take_retired_ports();
        for old in retired {
            let _ = self.epoll.ctl(
                ControlOperation::Delete,
                old.kick_fd(),
                EpollEvent::default(),
            );
        }
        let added = self.epoll.ctl(
            ControlOperation::Add,
            kick_fd,
            EpollEvent::new(EventSet::IN, TOKEN_KICK),
        );
        match added {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => log::error!("I/O thread: cannot watch the new port's kicks: {e}"),
        }
        // Frames may have arrived before the kick eventfd was watched.
        net.on_kick()
    }
}

/// The sections other modules add to the stats JSON.
pub fn extra_stats(sources: &IoSources) -> serde_json::Value {
    match &sources.net {
        Some(net) => serde_json::json!({"e1000": {"errors": net.model_errors_json()}}),
        None => serde_json::Value::Null,
    }
}
