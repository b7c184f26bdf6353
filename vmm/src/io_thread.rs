//! The I/O thread: one epoll loop that waits for the switch port's kicks (RX
//! frames arrived, TX space freed), the e1000 moderation timer, the
//! interrupt resample fd (level mode) and the once-a-second stats timer, and
//! hands each to the device.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::net::NetDevice;
use crate::stats::Stats;
use crate::timer::DeadlineTimer;

const TOKEN_STOP: u64 = 0;
const TOKEN_KICK: u64 = 1;
const TOKEN_MODERATION: u64 = 2;
const TOKEN_RESAMPLE: u64 = 3;
const TOKEN_STATS: u64 = 4;
const TOKEN_DEFERRED: u64 = 5;

/// A running I/O thread.
pub struct IoThread {
    stop: EventFd,
    handle: Option<JoinHandle<()>>,
}

/// What the I/O thread serves.
pub struct IoSources {
    /// The e1000 and its backend, if the VM has a NIC.
    pub net: Option<Arc<NetDevice>>,
    /// Counters, and where to write them every second.
    pub stats: Arc<Stats>,
    /// `--stats-json` path.
    pub stats_json: Option<PathBuf>,
}

impl IoThread {
    /// Starts the thread.
    pub fn spawn(sources: IoSources) -> io::Result<IoThread> {
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
            add(net.moderation_timer_fd(), TOKEN_MODERATION)?;
            if let Some(fd) = net.resample_fd() {
                add(fd, TOKEN_RESAMPLE)?;
            }
        }
        let stats_timer = DeadlineTimer::new()?;
        if sources.stats_json.is_some() {
            stats_timer.arm_periodic(Duration::from_secs(1))?;
            add(stats_timer.fd(), TOKEN_STATS)?;
        }
        let stop_fd = stop.try_clone()?;
        let handle = std::thread::Builder::new()
            .name("vmm-io".into())
            .spawn(move || run(epoll, stop_fd, stats_timer, sources))?;
        Ok(IoThread {
            stop,
            handle: Some(handle),
        })
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(handle) = self.handle.take() {
            let _ = self.stop.write(1);
            let _ = handle.join();
        }
    }
}

impl Drop for IoThread {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn run(epoll: Epoll, stop: EventFd, stats_timer: DeadlineTimer, sources: IoSources) {
    let mut events = vec![EpollEvent::default(); 8];
    loop {
        let n = match epoll.wait(-1, &mut events) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::error!("I/O thread: epoll_wait failed: {e}; stopping");
                return;
            }
        };
        sources.stats.io_thread.wakeups.inc();
        for event in &events[..n] {
            match event.data() {
                TOKEN_STOP => {
                    let _ = stop.read();
                    return;
                }
                TOKEN_KICK => {
                    if let Some(net) = &sources.net {
                        net.on_kick();
                    }
                }
                TOKEN_DEFERRED => {
                    if let Some(net) = &sources.net {
                        net.on_deferred();
                    }
                }
                TOKEN_MODERATION => {
                    if let Some(net) = &sources.net {
                        net.on_moderation_timer();
                    }
                }
                TOKEN_RESAMPLE => {
                    if let Some(net) = &sources.net {
                        net.on_resample();
                    }
                }
                TOKEN_STATS => {
                    stats_timer.take_expirations();
                    if let Some(path) = &sources.stats_json {
                        if let Err(e) = sources.stats.write_json(path, None, extra_stats(&sources))
                        {
                            log::warn!("cannot write {}: {e}", path.display());
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// The sections other modules add to the stats JSON.
pub fn extra_stats(sources: &IoSources) -> serde_json::Value {
    match &sources.net {
        Some(net) => serde_json::json!({"e1000": {"errors": net.model_errors_json()}}),
        None => serde_json::Value::Null,
    }
}
