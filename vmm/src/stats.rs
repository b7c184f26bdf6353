//! Accounting: VM exits by reason (MMIO by e1000 register name, PIO by port),
//! interrupts injected, kicks to and from the switch, packets and bytes each
//! way, and what the guest did wrong. Written as JSON (every second with
//! `--stats-json`, and at exit) and as a one-line summary. The JSON is
//! derived from the structs (serde): a counter added to a struct appears in
//! it under its field name.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::net::latency_trace::LatencyTrace;

/// A monotonically increasing event counter, safe to bump from any thread;
/// serialized as its value.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Serialize for Counter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.get())
    }
}

impl Counter {
    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// VM exits, counted by the vCPU thread.
#[derive(Debug, Default, Clone)]
pub struct ExitCounts {
    /// Every exit from KVM_RUN.
    pub total: u64,
    /// Port I/O exits by port number.
    pub pio: BTreeMap<u16, u64>,
    /// MMIO exits by target (`e1000.TDT`, `unassigned`, ...).
    pub mmio: BTreeMap<&'static str, u64>,
    /// Other exits by reason (`idle`, `hlt`, `intr`, ...).
    pub other: BTreeMap<&'static str, u64>,
}

impl ExitCounts {
    /// Total port I/O exits.
    pub fn pio_total(&self) -> u64 {
        self.pio.values().sum()
    }

    /// Total MMIO exits.
    pub fn mmio_total(&self) -> u64 {
        self.mmio.values().sum()
    }
}

/// Port numbers in hexadecimal (`"0x3f8"`) as JSON keys.
struct HexPorts<'a>(&'a BTreeMap<u16, u64>);

impl Serialize for HexPorts<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (port, n) in self.0 {
            map.serialize_entry(&format!("{port:#x}"), n)?;
        }
        map.end()
    }
}

/// The counts with the per-kind totals.
impl Serialize for ExitCounts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("ExitCounts", 6)?;
        s.serialize_field("total", &self.total)?;
        s.serialize_field("pio_total", &self.pio_total())?;
        s.serialize_field("mmio_total", &self.mmio_total())?;
        s.serialize_field("pio", &HexPorts(&self.pio))?;
        s.serialize_field("mmio", &self.mmio)?;
        s.serialize_field("other", &self.other)?;
        s.end()
    }
}

/// Interrupt delivery counters.
#[derive(Debug, Default, Serialize)]
pub struct IrqCounters {
    /// e1000 interrupts asserted towards the guest (edges pulsed, or irqfd
    /// writes in level mode).
    pub injected: Counter,
    /// Serial port (COM1) interrupts asserted towards the guest.
    pub serial: Counter,
    /// Resample notifications (level mode).
    pub resamples: Counter,
    /// e1000 assertions KVM refused (KVM_IRQ_LINE or irqfd write failed).
    pub failed: Counter,
}

/// Kicks exchanged with the switch.
#[derive(Debug, Default, Serialize)]
pub struct KickCounters {
    /// Kicks the VMM sent to the switch.
    pub to_switch: Counter,
    /// Kick wake-ups received from the switch.
    pub from_switch: Counter,
}

/// Packets and bytes in one direction.
#[derive(Debug, Default, Serialize)]
pub struct TrafficCounters {
    /// Frames moved.
    pub packets: Counter,
    /// Bytes moved (frame lengths, no FCS).
    pub bytes: Counter,
    /// Frames dropped by the backend (ring full, too long).
    pub dropped: Counter,
}

/// Bad guest behaviour that was ignored.
#[derive(Debug, Default, Serialize)]
pub struct GuestErrorCounters {
    /// Port I/O to no device, or of a size the device does not take.
    pub ignored_pio: Counter,
    /// MMIO to no device.
    pub ignored_mmio: Counter,
    /// A BAR placed over another device or outside the address space.
    pub bar_conflicts: Counter,
}

/// Work done by the I/O thread.
#[derive(Debug, Default, Serialize)]
pub struct IoThreadCounters {
    /// epoll wake-ups.
    pub wakeups: Counter,
    /// Moderation timer expirations.
    pub timer_fires: Counter,
}

/// The NIC's link to the switch daemon (see [`crate::net::link`]).
#[derive(Debug, Default, Serialize)]
pub struct LinkCounters {
    /// Times the daemon went away and the link was set down.
    pub down: Counter,
    /// Times the port was re-opened and the link set up again.
    pub up: Counter,
    /// Reconnection attempts that failed.
    pub reconnect_failures: Counter,
    /// Frames the guest sent while the link was down (dropped).
    pub tx_dropped: Counter,
}

/// The net worker in CSB mode.
#[derive(Debug, Default, Serialize)]
pub struct WorkerCounters {
    /// Guest TDT writes that reached the worker through the KVM ioeventfd
    /// (kicks without a userspace exit; TDT writes that did exit are in
    /// `exits.mmio["e1000.TDT"]`).
    pub tx_kicks: Counter,
    /// Poll rounds (one TX and one RX batch each).
    pub polls: Counter,
    /// Poll rounds that moved descriptors or frames (the worker's and the
    /// vCPU thread's).
    pub busy_polls: Counter,
    /// Poll-port exits (the guest waiting for its NIC) whose round in the
    /// vCPU thread moved descriptors or frames.
    pub vcpu_polls: Counter,
    /// Times the worker set its need-kick flags and slept.
    pub sleeps: Counter,
    /// Times the re-check after setting the flags found new work (each one a
    /// wake-up that would have been lost without it).
    pub sleep_aborts: Counter,
}

/// The offloaded data path (`--e1000 offload=on`, see [`crate::net::offload`]).
#[derive(Debug, Default, Serialize)]
pub struct OffloadCounters {
    /// Times the data path was handed to the switch daemon.
    pub handovers: Counter,
    /// Times it was taken back with the daemon's hand-back.
    pub reclaims: Counter,
    /// Times it was taken back from the CSB alone (the daemon went away or
    /// the exchange failed).
    pub abandoned: Counter,
    /// Hand-overs the daemon refused (or whose exchange failed).
    pub refusals: Counter,
    /// Frames left in the switch port's RX ring at a hand-over, dropped
    /// (the guest's RX ring was full), and frames that reached that ring
    /// while the daemon swapped the port's I/O, dropped at the reclaim
    /// (older than what the guest got meanwhile).
    pub handover_drops: Counter,
    /// Receive interrupts the daemon asked for (rx-call writes).
    pub rx_calls: Counter,
    /// Transmit interrupts the daemon asked for (tx-call writes).
    pub tx_calls: Counter,
    /// TDT and RDT writes that exited to the VMM while offloaded, passed on
    /// to the daemon as kicks.
    pub kicks_passed: Counter,
}

/// All counters of one VM.
#[derive(Debug, Serialize)]
pub struct Stats {
    #[serde(skip)]
    started: Instant,
    /// VM exits (locked by the vCPU thread once per exit, uncontended).
    #[serde(serialize_with = "locked")]
    pub exits: Mutex<ExitCounts>,
    /// Interrupts.
    #[serde(rename = "interrupts")]
    pub irq: IrqCounters,
    /// Switch kicks.
    pub kicks: KickCounters,
    /// Guest to backend.
    pub tx: TrafficCounters,
    /// Backend to guest.
    pub rx: TrafficCounters,
    /// Ignored guest errors.
    pub guest_errors: GuestErrorCounters,
    /// I/O thread activity.
    pub io_thread: IoThreadCounters,
    /// The net worker (CSB mode).
    #[serde(rename = "csb_worker")]
    pub worker: WorkerCounters,
    /// The link to the switch daemon.
    pub link: LinkCounters,
    /// The offloaded data path.
    pub offload: OffloadCounters,
    /// Test-frame timestamps (`--e1000 trace=N`; absent when off).
    #[serde(skip_serializing_if = "LatencyTrace::is_off")]
    pub latency: LatencyTrace,
}

/// Serializes what a mutex guards (a poisoned lock still holds the counts).
fn locked<T: Serialize, S: Serializer>(value: &Mutex<T>, serializer: S) -> Result<S::Ok, S::Error> {
    value
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .serialize(serializer)
}

/// The JSON document: when, how the VM ended, and every counter.
#[derive(Serialize)]
struct Document<'a> {
    seconds: f64,
    exit_code: Option<i32>,
    #[serde(flatten)]
    stats: &'a Stats,
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new()
    }
}

impl Stats {
    /// Fresh counters; the clock for `seconds` starts now.
    pub fn new() -> Stats {
        Stats {
            started: Instant::now(),
            exits: Mutex::new(ExitCounts::default()),
            irq: IrqCounters::default(),
            kicks: KickCounters::default(),
            tx: TrafficCounters::default(),
            rx: TrafficCounters::default(),
            guest_errors: GuestErrorCounters::default(),
            io_thread: IoThreadCounters::default(),
            worker: WorkerCounters::default(),
            link: LinkCounters::default(),
            offload: OffloadCounters::default(),
            latency: LatencyTrace::default(),
        }
    }

    /// A copy of the exit counters.
    pub fn exits_snapshot(&self) -> ExitCounts {
        self.exits.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Runs `f` on the exit counters.
    #[inline]
    pub fn with_exits(&self, f: impl FnOnce(&mut ExitCounts)) {
        f(&mut self.exits.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Seconds since the counters were created.
    pub fn seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// All counters as a JSON object; `exit_code` is set once the VM ended.
    /// `extra` (an object) is merged in: sections other modules own, such as
    /// the e1000 model's error counters.
    pub fn to_json(&self, exit_code: Option<i32>, extra: Value) -> Value {
        let document = Document {
            seconds: self.seconds(),
            exit_code,
            stats: self,
        };
        let mut value = serde_json::to_value(document).unwrap_or_default();
        if let (Some(all), Value::Object(extra)) = (value.as_object_mut(), extra) {
            all.extend(extra);
        }
        value
    }

    /// Writes the JSON to `file` atomically (a temporary file renamed over it).
    pub fn write_json(
        &self,
        file: &crate::stats_file::StatsFile,
        exit_code: Option<i32>,
        extra: Value,
    ) -> std::io::Result<()> {
        file.write(&self.to_json(exit_code, extra))
    }

    /// The one-line summary printed on stderr at exit.
    pub fn summary(&self, exit_code: i32) -> String {
        let exits = self.exits_snapshot();
        let idle = exits
            .pio
            .get(&crate::devices::idle_port::IDLE_PORT)
            .copied()
            .unwrap_or(0);
        let offloaded = match self.offload.handovers.get() {
            0 => String::new(),
            n => format!(
                "; data path offloaded to the switch {n} times, taken back {} \
                 (the frames it moved are in the switch's port counters)",
                self.offload.reclaims.get() + self.offload.abandoned.get()
            ),
        };
        format!(
            "vmm: exit code {exit_code} after {:.3} s: {} exits (pio {}, mmio {}, idle {}), \
             {} irqs (+{} serial), tx {} pkts {} B, rx {} pkts {} B, kicks to/from switch {}/{}, \
             TDT ioeventfd kicks {}{offloaded}",
            self.seconds(),
            exits.total,
            exits.pio_total(),
            exits.mmio_total(),
            idle,
            self.irq.injected.get(),
            self.irq.serial.get(),
            self.tx.packets.get(),
            self.tx.bytes.get(),
            self.rx.packets.get(),
            self.rx.bytes.get(),
            self.kicks.to_switch.get(),
            self.kicks.from_switch.get(),
            self.worker.tx_kicks.get(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_has_every_section() {
        let stats = Stats::new();
        stats.with_exits(|e| {
            e.total += 3;
            *e.pio.entry(0x3f8).or_default() += 2;
            *e.mmio.entry("e1000.TDT").or_default() += 1;
        });
        stats.tx.packets.add(5);
        stats.tx.bytes.add(300);
        stats.irq.injected.inc();
        stats.irq.serial.add(2);
        stats.worker.tx_kicks.add(4);
        let v = stats.to_json(Some(0), json!({"e1000": {"errors": {"x": 1}}}));
        assert_eq!(v["e1000"]["errors"]["x"], 1);
        assert_eq!(v["exits"]["total"], 3);
        assert_eq!(v["exits"]["pio"]["0x3f8"], 2);
        assert_eq!(v["exits"]["mmio"]["e1000.TDT"], 1);
        assert_eq!(v["tx"]["bytes"], 300);
        assert_eq!(v["interrupts"]["injected"], 1);
        assert_eq!(v["interrupts"]["serial"], 2);
        assert_eq!(v["csb_worker"]["tx_kicks"], 4);
        assert_eq!(v["exit_code"], 0);
        let sections: Vec<(&str, Vec<&str>)> = vec![
            (
                "exits",
                vec!["mmio", "mmio_total", "other", "pio", "pio_total", "total"],
            ),
            (
                "interrupts",
                vec!["failed", "injected", "resamples", "serial"],
            ),
            ("kicks", vec!["from_switch", "to_switch"]),
            ("tx", vec!["bytes", "dropped", "packets"]),
            ("rx", vec!["bytes", "dropped", "packets"]),
            (
                "guest_errors",
                vec!["bar_conflicts", "ignored_mmio", "ignored_pio"],
            ),
            ("io_thread", vec!["timer_fires", "wakeups"]),
            (
                "offload",
                vec![
                    "abandoned",
                    "handover_drops",
                    "handovers",
                    "kicks_passed",
                    "reclaims",
                    "refusals",
                    "rx_calls",
                    "tx_calls",
                ],
            ),
            (
                "csb_worker",
                vec![
                    "busy_polls",
                    "polls",
                    "sleep_aborts",
                    "sleeps",
                    "tx_kicks",
                    "vcpu_polls",
                ],
            ),
        ];
        for (section, keys) in sections {
            let mut got: Vec<&str> = v[section]
                .as_object()
                .unwrap_or_else(|| panic!("section {section}"))
                .keys()
                .map(String::as_str)
                .collect();
            got.sort_unstable();
            assert_eq!(got, keys, "keys of {section}");
        }
        assert!(v["seconds"].is_f64());
        let line = stats.summary(0);
        assert!(line.contains("3 exits (pio 2, mmio 1"), "{line}");
        assert!(!line.contains("offloaded"), "{line}");
        stats.offload.handovers.add(2);
        stats.offload.reclaims.inc();
        let line = stats.summary(0);
        assert!(
            line.ends_with(
                "data path offloaded to the switch 2 times, taken back 1 \
                 (the frames it moved are in the switch's port counters)"
            ),
            "{line}"
        );

        let dir = std::env::temp_dir().join(format!("vmm-stats-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.json");
        let file = crate::stats_file::StatsFile::open(&path).unwrap();
        stats.write_json(&file, None, Value::Null).unwrap();
        let back: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back["tx"]["packets"], 5);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
