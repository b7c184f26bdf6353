//! Benchmark results: one row per case, printed as a table a person can read
//! and written as `{"cases": [...]}` JSON.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::{Map, Value};

/// One measured case.
#[derive(Clone, Debug, Serialize)]
pub struct Case {
    /// What was measured.
    pub name: String,
    /// Which family of measurement (`core`, `e2e`, `linux_bridge`, ...).
    pub kind: String,
    /// Frame size in bytes, without FCS.
    pub frame_size: usize,
    /// Millions of frames per second.
    pub mpps: f64,
    /// Gigabits per second of frame bytes.
    pub gbps: f64,
    /// Nanoseconds per frame.
    pub ns_per_pkt: f64,
    /// Further fields of this kind of case.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Case {
    /// A case from a rate in frames per second.
    pub fn new(name: impl Into<String>, kind: &str, frame_size: usize, pps: f64) -> Case {
        Case {
            name: name.into(),
            kind: kind.to_owned(),
            frame_size,
            mpps: pps / 1e6,
            gbps: pps * frame_size as f64 * 8.0 / 1e9,
            ns_per_pkt: if pps > 0.0 { 1e9 / pps } else { f64::INFINITY },
            extra: Map::new(),
        }
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

    /// Prints the table to stdout and writes the JSON file.
    pub fn finish(&self, json_path: &Path, notes: &[String]) -> Result<()> {
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
        let body = serde_json::json!({ "cases": self.cases, "notes": notes });
        std::fs::write(json_path, serde_json::to_string_pretty(&body)?)
            .with_context(|| format!("writing {}", json_path.display()))?;
        println!("wrote {}", json_path.display());
        Ok(())
    }

    /// The rate of the first case with this name and size.
    pub fn mpps(&self, name: &str, size: usize) -> Option<f64> {
        self.cases
            .iter()
            .find(|c| c.name == name && c.frame_size == size)
            .map(|c| c.mpps)
    }
}

fn header() -> String {
    format!(
        "{:<34} {:<13} {:>6} {:>9} {:>9} {:>9}  {}",
        "case", "kind", "bytes", "Mpps", "Gbit/s", "ns/pkt", "notes"
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
    format!(
        "{:<34} {:<13} {:>6} {:>9.3} {:>9.3} {:>9.1}  {}",
        c.name,
        c.kind,
        c.frame_size,
        c.mpps,
        c.gbps,
        c.ns_per_pkt,
        notes.join(" ")
    )
}
