//! The forwarding threads. Every port is a source for exactly one thread
//! (assigned when the port is added, to the thread with the fewest sources),
//! except a port with several receive lanes (a NIC's queues,
//! [`crate::bridge::port::PortIo::lanes`]): each lane is a source of its own, placed the same
//! way, so with enough threads a NIC's queues are served by different
//! threads (a queue always by one);
//! a thread forwards from its sources into any port of the same switch, so
//! destinations are shared and locked per destination, as in VALE.
//!
//! A thread loops over its sources one batch each. When a whole round finds
//! nothing it keeps polling for a bounded spin time (yielding the CPU between
//! polls, so that on a machine with fewer cores than busy processes the
//! others run, and the CPU does not halt: waking a halted CPU costs about as
//! much as a VM exit on these machines), then arms every source
//! (sets the need-kick flags), re-checks, and sleeps in epoll on the sources'
//! kick eventfds. Clients only kick while a flag is set, so a busy switch is
//! never kicked.
//!
//! Fairness: a round gives every source of the thread one batch of at most
//! [`crate::bridge::forward::MAX_BATCH`] frames, in turn, so a port that
//! sends as fast as it can gets no more of the thread than any other busy
//! port; what it sends beyond that waits in its own ring (its client sees a
//! full TX ring, not the others). A flooded frame costs a copy per
//! destination, which the per-port storm cap (`--storm-pps`) bounds.
//!
//! Each thread counts its frames, busy rounds, sleeps and busy time (the
//! nanoseconds of rounds that moved frames: the clock read each round
//! already makes for ageing, and one more at the end of a busy round; none
//! per frame), reported by [`Engine::thread_stats`].

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use switch_port::eventfd::EventFd;
use switch_port::protocol::ThreadStats;

use crate::bridge::forward::{forward_lane, Scratch};
use crate::bridge::port::{Lane, Port};
use crate::bridge::switch::Switch;
use crate::clock::{monotonic_ns, Clock};
use crate::epoll::Epoll;

/// Default time a forwarding thread keeps polling after the last frame.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(50);
const WAKE_TOKEN: u64 = u64::MAX;

/// A port (or one lane of it) and the switch it forwards into.
#[derive(Clone)]
pub struct Source {
    /// The switch.
    pub switch: Arc<Switch>,
    /// The port.
    pub port: Arc<Port>,
    /// The part of the port this source reads.
    pub lane: Lane,
}

/// Counters of one forwarding thread.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Batches that moved at least one frame.
    pub batches: AtomicU64,
    /// Frames read from sources.
    pub frames: AtomicU64,
    /// Times the thread went to sleep.
    pub sleeps: AtomicU64,
    /// Nanoseconds spent in rounds that moved frames (one extra clock read
    /// per busy round, none per frame).
    pub busy_ns: AtomicU64,
}

struct Worker {
    sources: ArcSwap<Vec<Source>>,
    version: AtomicU64,
    wake: EventFd,
    stop: AtomicBool,
    load: AtomicUsize,
    stats: WorkerStats,
}

/// The set of forwarding threads.
pub struct Engine {
    workers: Vec<Arc<Worker>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Engine {
    /// Starts `threads` forwarding threads (at least one) that spin for
    /// `spin` before sleeping.
    pub fn start(threads: usize, spin: Duration, clock: Clock) -> io::Result<Engine> {
        let mut workers = Vec::new();
        let mut handles = Vec::new();
        for index in 0..threads.max(1) {
            let worker = Arc::new(Worker {
                sources: ArcSwap::from_pointee(Vec::new()),
                version: AtomicU64::new(0),
                wake: EventFd::new()?,
                stop: AtomicBool::new(false),
                load: AtomicUsize::new(0),
                stats: WorkerStats::default(),
            });
            let w = worker.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("forward-{index}"))
                    .spawn(move || run_worker(&w, spin, clock))?,
            );
            workers.push(worker);
        }
        Ok(Engine {
            workers,
            threads: Mutex::new(handles),
        })
    }

    /// Number of forwarding threads.
    pub fn threads(&self) -> usize {
        self.workers.len()
    }

    /// Starts forwarding from `port` (on the least loaded thread; each
    /// lane of a port with several on the least loaded thread in turn).
    pub fn add(&self, switch: Arc<Switch>, port: Arc<Port>) {
        let lanes = port.io.lanes();
        if lanes <= 1 {
            self.add_source(Source {
                switch,
                port,
                lane: Lane::All,
            });
            return;
        }
        for lane in 0..lanes {
            self.add_source(Source {
                switch: switch.clone(),
                port: port.clone(),
                lane: Lane::One(lane),
            });
        }
    }

    fn add_source(&self, source: Source) {
        let Some(worker) = self
            .workers
            .iter()
            .min_by_key(|w| w.load.load(Ordering::Relaxed))
        else {
            return;
        };
        let mut list = (**worker.sources.load()).clone();
        list.push(source);
        worker.load.store(list.len(), Ordering::Relaxed);
        worker.sources.store(Arc::new(list));
        worker.version.fetch_add(1, Ordering::Release);
        worker.wake.signal();
    }

    /// Stops forwarding from `port`.
    pub fn remove(&self, port: &Arc<Port>) {
        for worker in &self.workers {
            let current = worker.sources.load();
            if !current.iter().any(|s| Arc::ptr_eq(&s.port, port)) {
                continue;
            }
            let list: Vec<Source> = current
                .iter()
                .filter(|s| !Arc::ptr_eq(&s.port, port))
                .cloned()
                .collect();
            worker.load.store(list.len(), Ordering::Relaxed);
            worker.sources.store(Arc::new(list));
            worker.version.fetch_add(1, Ordering::Release);
            worker.wake.signal();
        }
    }

    /// Frames forwarded and sleeps, summed over threads.
    pub fn stats(&self) -> (u64, u64, u64) {
        let mut out = (0, 0, 0);
        for w in &self.workers {
            out.0 += w.stats.frames.load(Ordering::Relaxed);
            out.1 += w.stats.batches.load(Ordering::Relaxed);
            out.2 += w.stats.sleeps.load(Ordering::Relaxed);
        }
        out
    }

    /// Each thread's counters, in thread order.
    pub fn thread_stats(&self) -> Vec<ThreadStats> {
        self.workers
            .iter()
            .enumerate()
            .map(|(i, w)| ThreadStats {
                thread: i as u32,
                busy_ns: w.stats.busy_ns.load(Ordering::Relaxed),
                frames: w.stats.frames.load(Ordering::Relaxed),
                batches: w.stats.batches.load(Ordering::Relaxed),
                sleeps: w.stats.sleeps.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Stops every thread and waits for them.
    pub fn stop(&self) {
        for w in &self.workers {
            w.stop.store(true, Ordering::Release);
            w.wake.signal();
        }
        for handle in self.threads.lock().drain(..) {
            let _ = handle.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The epoll registrations matching one version of the source list.
struct Registrations {
    version: u64,
    sources: Arc<Vec<Source>>,
    fds: HashMap<u64, i32>,
}

impl Registrations {
    fn sync(&mut self, worker: &Worker, epoll: &Epoll) {
        let version = worker.version.load(Ordering::Acquire);
        if version == self.version {
            return;
        }
        for fd in self.fds.values() {
            epoll.remove(*fd);
        }
        self.fds.clear();
        self.sources = worker.sources.load_full();
        self.version = version;
        for (i, source) in self.sources.iter().enumerate() {
            if let Some(fd) = source.port.wake_fd_of(source.lane) {
                if let Err(e) = epoll.add(fd, i as u64) {
                    log::warn!("forwarder cannot watch {}: {e}", source.port.name);
                } else {
                    self.fds.insert(i as u64, fd);
                }
            }
        }
    }
}

fn run_worker(worker: &Worker, spin: Duration, clock: Clock) {
    let epoll = match Epoll::new().and_then(|e| e.add(worker.wake.raw(), WAKE_TOKEN).map(|_| e)) {
        Ok(e) => e,
        Err(e) => {
            log::error!("forwarding thread cannot start its epoll: {e}");
            return;
        }
    };
    let mut regs = Registrations {
        version: u64::MAX,
        sources: Arc::new(Vec::new()),
        fds: HashMap::new(),
    };
    let mut scratch = Scratch::new();
    let mut ready = Vec::new();
    let mut idle_since: Option<Instant> = None;
    while !worker.stop.load(Ordering::Acquire) {
        regs.sync(worker, &epoll);
        let round_start = monotonic_ns();
        let now = clock.secs_at(round_start);
        let mut moved = 0usize;
        for source in regs.sources.iter() {
            moved += forward_lane(&source.switch, &source.port, source.lane, &mut scratch, now);
        }
        if moved > 0 {
            worker.stats.busy_ns.fetch_add(
                monotonic_ns().saturating_sub(round_start),
                Ordering::Relaxed,
            );
            worker
                .stats
                .frames
                .fetch_add(moved as u64, Ordering::Relaxed);
            worker.stats.batches.fetch_add(1, Ordering::Relaxed);
            idle_since = None;
            continue;
        }
        let since = *idle_since.get_or_insert_with(Instant::now);
        if since.elapsed() < spin {
            std::thread::yield_now();
            continue;
        }
        // Nothing for a while: ask to be kicked, re-check, then sleep.
        let mut pending = false;
        for source in regs.sources.iter() {
            pending |= source.port.arm_lane_of(source.lane);
        }
        if !pending && !worker.stop.load(Ordering::Acquire) {
            worker.stats.sleeps.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = epoll.wait(&mut ready, 1000) {
                log::error!("forwarder epoll failed: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
            for &token in &ready {
                if token == WAKE_TOKEN {
                    worker.wake.drain();
                } else if let Some(source) = regs.sources.get(token as usize) {
                    source.port.io.on_wake();
                }
            }
        }
        for source in regs.sources.iter() {
            source.port.io.disarm();
        }
        idle_since = None;
    }
    for fd in regs.fds.values() {
        epoll.remove(*fd);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::os::fd::RawFd;
    use std::sync::atomic::AtomicUsize;

    use switch_port::names::{PortName, SwitchName};
    use switch_port::protocol::PortKind;

    use super::*;
    use crate::bridge::learning::LearningTable;
    use crate::bridge::port::{FrameRef, PortIo};
    use crate::counters::PortCounters;

    /// A broadcast frame every lane lends out.
    static FRAME: [u8; 60] = {
        let mut f = [0u8; 60];
        let mut i = 0;
        while i < 6 {
            f[i] = 0xff;
            i += 1;
        }
        f[6] = 0x02;
        f[12] = 0x88;
        f[13] = 0xb5;
        f
    };

    /// A port with `pending.len()` lanes, each lending `pending[lane]`
    /// frames and remembering which threads read it.
    struct LanePort {
        pending: Vec<AtomicUsize>,
        readers: Vec<Mutex<BTreeSet<String>>>,
    }

    impl LanePort {
        fn new(lanes: usize, frames: usize) -> LanePort {
            LanePort {
                pending: (0..lanes).map(|_| AtomicUsize::new(frames)).collect(),
                readers: (0..lanes).map(|_| Mutex::new(BTreeSet::new())).collect(),
            }
        }
    }

    impl PortIo for LanePort {
        fn receive(&self, batch: &mut Vec<FrameRef>, max: usize, c: &PortCounters) -> usize {
            (0..self.pending.len())
                .map(|lane| self.receive_lane(lane, batch, max, c))
                .sum()
        }
        fn release(&self, _: &PortCounters) {}
        fn lanes(&self) -> usize {
            self.pending.len()
        }
        fn receive_lane(
            &self,
            lane: usize,
            batch: &mut Vec<FrameRef>,
            max: usize,
            _: &PortCounters,
        ) -> usize {
            let left = self.pending[lane].load(Ordering::Acquire);
            let n = left.min(max);
            if n == 0 {
                return 0;
            }
            let name = std::thread::current().name().unwrap_or("?").to_owned();
            self.readers[lane].lock().insert(name);
            for _ in 0..n {
                batch.push(FrameRef {
                    ptr: FRAME.as_ptr(),
                    len: FRAME.len() as u32,
                    readable: FRAME.len() as u32,
                });
            }
            self.pending[lane].fetch_sub(n, Ordering::AcqRel);
            n
        }
        fn deliver(&self, _: &[FrameRef], which: &[u16], _: &PortCounters) -> usize {
            which.len()
        }
        fn wake_fd(&self) -> Option<RawFd> {
            None
        }
        fn arm(&self) -> bool {
            self.pending.iter().any(|p| p.load(Ordering::Acquire) > 0)
        }
        fn arm_lane(&self, lane: usize) -> bool {
            self.pending[lane].load(Ordering::Acquire) > 0
        }
        fn disarm(&self) {}
    }

    #[test]
    fn each_lane_of_a_port_is_served_by_its_own_thread() {
        let engine = Engine::start(2, Duration::from_millis(1), Clock::new()).unwrap();
        let switch = Arc::new(Switch::new(
            SwitchName::parse("vale0").unwrap(),
            Box::new(LearningTable::new(64, 300)),
            8,
        ));
        let io = Arc::new(LanePort::new(2, 5000));
        let name = PortName::parse("vale0:nic").unwrap();
        let port = switch
            .add_port(|id| Port::new(name, id, PortKind::Nic, Box::new(io.clone())))
            .unwrap();
        engine.add(switch.clone(), port.clone());
        let loads: Vec<usize> = engine
            .workers
            .iter()
            .map(|w| w.sources.load().len())
            .collect();
        assert_eq!(loads, [1, 1], "one lane per thread");
        let deadline = Instant::now() + Duration::from_secs(10);
        while io.pending.iter().any(|p| p.load(Ordering::Acquire) > 0) {
            assert!(Instant::now() < deadline, "lanes not drained");
            std::thread::sleep(Duration::from_millis(1));
        }
        let readers: Vec<BTreeSet<String>> = io.readers.iter().map(|r| r.lock().clone()).collect();
        assert_eq!(readers[0].len(), 1, "{readers:?}");
        assert_eq!(readers[1].len(), 1, "{readers:?}");
        assert_ne!(readers[0], readers[1], "both lanes on one thread");
        let threads = engine.thread_stats();
        assert!(threads.iter().all(|t| t.frames > 0), "{threads:?}");
        engine.remove(&port);
        assert!(engine.workers.iter().all(|w| w.sources.load().is_empty()));
        engine.stop();
    }

    #[test]
    fn a_one_lane_port_is_one_source_reading_the_whole_port() {
        let engine = Engine::start(2, DEFAULT_SPIN, Clock::new()).unwrap();
        let switch = Arc::new(Switch::new(
            SwitchName::parse("vale0").unwrap(),
            Box::new(LearningTable::new(64, 300)),
            8,
        ));
        let name = PortName::parse("vale0:one").unwrap();
        let port = switch
            .add_port(|id| Port::new(name, id, PortKind::Shm, Box::new(LanePort::new(1, 0))))
            .unwrap();
        engine.add(switch, port);
        let lanes: Vec<Lane> = engine
            .workers
            .iter()
            .flat_map(|w| w.sources.load().iter().map(|s| s.lane).collect::<Vec<_>>())
            .collect();
        assert_eq!(lanes, [Lane::All]);
        engine.stop();
    }
}
