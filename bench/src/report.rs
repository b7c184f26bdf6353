//! Benchmark results: one row per case, printed as a table a person can read
//! and written as `{"machine": {...}, "cases": [...], "notes": [...]}` JSON.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::{Map, Value};

/// One measured case: a single run, or several combined by
/// [`crate::repeat::combine`].
#[derive(Clone, Debug, Serialize)]
pub struct Case {
    /// What was measured.
    pub name: String,
    /// Which family of measurement (`core`, `e2e`, `linux_bridge`, ...).
    pub kind: String,
    /// Frame size in bytes, without FCS.
    pub frame_size: usize,
    /// Millions of frames per second (the median over the runs).
    pub mpps: f64,
    /// The median over the runs, millions of frames per second.
    pub mpps_median: f64,
    /// The slowest run.
    pub mpps_min: f64,
    /// The fastest run.
    pub mpps_max: f64,
    /// Every run's rate, in the order they ran.
    pub runs: Vec<f64>,
    /// Gigabits per second of frame bytes, at the median rate.
    pub gbps: f64,
    /// Nanoseconds of wall time per frame, at the median rate.
    pub ns_per_pkt: f64,
    /// Busy CPU nanoseconds of the whole machine per frame (all CPUs,
    /// user + system + irq + softirq; the median over the runs).
    pub cpu_ns_per_packet: Option<f64>,
    /// Further fields of this kind of case (those of the median run).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Case {
    /// A case from a rate in frames per second.
    pub fn new(name: impl Into<String>, kind: &str, frame_size: usize, pps: f64) -> Case {
        let mut case = Case {
            name: name.into(),
            kind: kind.to_owned(),
            frame_size,
            mpps: 0.0,
            mpps_median: 0.0,
            mpps_min: pps / 1e6,
            mpps_max: pps / 1e6,
            runs: vec![pps / 1e6],
            gbps: 0.0,
            ns_per_pkt: 0.0,
            cpu_ns_per_packet: None,
            extra: Map::new(),
        };
        case.set_rate(pps);
        case
    }

    /// Sets the (median) rate and what follows from it.
    pub fn set_rate(&mut self, pps: f64) {
        self.mpps = pps / 1e6;
        self.mpps_median = self.mpps;
        self.gbps = pps * self.frame_size as f64 * 8.0 / 1e9;
        self.ns_per_pkt = if pps > 0.0 { 1e9 / pps } else { f64::INFINITY };
    }

    /// Sets the CPU time per packet.
    pub fn with_cpu(mut self, ns_per_packet: Option<f64>) -> Case {
        self.cpu_ns_per_packet = ns_per_packet;
        self
    }

    /// Adds a field.
    pub fn with(mut self, key: &str, value: impl Serialize) -> Case {
        self.extra.insert(
            key.to_owned(),
            serde_json::to_value(value).unwrap_or(Value::Null),
        );
        self
    }
}

/// Collects cases, prints them as they come and at the end.
#[derive(Default)]
pub struct Report {
    /// The cases so far.
    pub cases: Vec<Case>,
}

impl Report {
    /// Adds a case and prints its row.
    pub fn push(&mut self, case: Case) {
        if self.cases.is_empty() {
            eprintln!("{}", header());
        }
        eprintln!("{}", row(&case));
        self.cases.push(case);
    }

    /// Prints the table to stdout and writes the JSON file, with the
    /// machine and date of the run and `repeats`.
    pub fn finish(&self, json_path: &Path, notes: &[String], repeats: usize) -> Result<()> {
        let machine = machine(repeats);
        println!("{}", header());
        for case in &self.cases {
            println!("{}", row(case));
        }
        for note in notes {
            println!("{note}");
        }
        if let Some(dir) = json_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        println!("machine: {machine}");
        let body = serde_json::json!({ "machine": machine, "cases": self.cases, "notes": notes });
        std::fs::write(json_path, serde_json::to_string_pretty(&body)?)
            .with_context(|| format!("writing {}", json_path.display()))?;
        println!("wrote {}", json_path.display());
        Ok(())
    }

    /// The first case with this name and size.
    pub fn case(&self, name: &str, size: usize) -> Option<&Case> {
        self.cases
            .iter()
            .find(|c| c.name == name && c.frame_size == size)
    }

    /// The rate of the first case with this name and size.
    pub fn mpps(&self, name: &str, size: usize) -> Option<f64> {
        self.case(name, size).map(|c| c.mpps)
    }

    /// The CPU ns per packet of the first case with this name and size.
    pub fn cpu_ns_per_packet(&self, name: &str, size: usize) -> Option<f64> {
        self.case(name, size).and_then(|c| c.cpu_ns_per_packet)
    }
}

fn header() -> String {
    format!(
        "{:<44} {:<13} {:>6} {:>9} {:>9} {:>9} {:>8} {:>9}  {}",
        "case", "kind", "bytes", "Mpps", "min", "max", "Gbit/s", "CPU ns/p", "notes"
    )
}

fn row(c: &Case) -> String {
    let notes: Vec<String> = c
        .extra
        .iter()
        .map(|(k, v)| match v {
            Value::Number(n) if n.is_f64() => format!("{k}={:.3}", n.as_f64().unwrap_or(0.0)),
            other => format!("{k}={other}"),
        })
        .collect();
    let cpu = c
        .cpu_ns_per_packet
        .map_or_else(|| "-".to_owned(), |ns| format!("{ns:.0}"));
    format!(
        "{:<44} {:<13} {:>6} {:>9.3} {:>9.3} {:>9.3} {:>8.3} {:>9}  {}",
        c.name,
        c.kind,
        c.frame_size,
        c.mpps,
        c.mpps_min,
        c.mpps_max,
        c.gbps,
        cpu,
        notes.join(" ")
    )
}

/// Where and when the run was made, for the JSON file: host name, CPU
/// model, CPUs, kernel, UTC time, repeats per case.
pub fn machine(repeats: usize) -> Value {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    let thp = |setting: &str| {
        switch_port::region::transparent_huge_page_mode(setting).unwrap_or_default()
    };
    let cpu_model = read("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|m| m.trim().to_owned())
        .unwrap_or_default();
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    serde_json::json!({
        "hostname": read("/proc/sys/kernel/hostname"),
        "cpu_model": cpu_model,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "kernel": read("/proc/sys/kernel/osrelease"),
        // Huge pages change the rates of many ports and large tables.
        "thp_enabled": thp("enabled"),
        "thp_shmem": thp("shmem_enabled"),
        "date_utc": date,
        "repeats": repeats,
    })
}
