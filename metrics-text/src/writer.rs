//! Writes metric families in the text format: each family's `# HELP` and
//! `# TYPE` lines followed by all of its samples (the format wants a
//! family's samples together), label values and help texts escaped.
//!
//! Names are the caller's constants, or built from data through
//! [`sanitize_name`]; a name that is not valid is a bug, caught in debug
//! builds.

use std::fmt::Write as _;

/// The type of a metric family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (restarts at zero); the name ends in `_total`.
    Counter,
    /// Goes up and down.
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// A sample's value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    /// An exact count.
    Int(u64),
    /// A measurement (seconds, ratios).
    Float(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::Int(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Value::Int(v) => write!(f, "{v}"),
            Value::Float(v) if v.is_nan() => f.write_str("NaN"),
            Value::Float(v) if v == f64::INFINITY => f.write_str("+Inf"),
            Value::Float(v) if v == f64::NEG_INFINITY => f.write_str("-Inf"),
            Value::Float(v) => write!(f, "{v}"),
        }
    }
}

/// Whether `name` is a valid metric or label name (`[a-zA-Z_][a-zA-Z0-9_]*`;
/// colons are reserved for recording rules).
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `text` as a valid name part: every other character becomes `_`, and a
/// leading digit gets a `_` before it.
pub fn sanitize_name(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        out.insert(0, '_');
    }
    out
}

/// Escapes a label value: backslash, double quote and line feed.
pub fn escape_label_value(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Escapes a help text: backslash and line feed.
fn escape_help(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// The text of a scrape, built one family at a time.
#[derive(Debug, Default)]
pub struct Writer {
    out: String,
}

/// One family being written: its samples follow its `# TYPE` line.
pub struct Family<'a> {
    out: &'a mut String,
    name: &'a str,
}

impl Writer {
    /// An empty scrape.
    pub fn new() -> Writer {
        Writer::default()
    }

    /// Starts family `name` of `kind` described by `help`; add its samples
    /// to what this returns. Each name must be used once per scrape.
    pub fn family<'a>(&'a mut self, name: &'a str, kind: Kind, help: &str) -> Family<'a> {
        debug_assert!(is_valid_name(name), "invalid metric name {name:?}");
        debug_assert!(
            (kind == Kind::Counter) == name.ends_with("_total"),
            "{name}: counters and only counters end in _total"
        );
        self.out.push_str("# HELP ");
        self.out.push_str(name);
        self.out.push(' ');
        escape_help(help, &mut self.out);
        self.out.push('\n');
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
        Family {
            out: &mut self.out,
            name,
        }
    }

    /// Writes a family with one sample and no labels.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: impl Into<Value>) {
        self.family(name, kind, help).sample(&[], value);
    }

    /// The text so far.
    pub fn as_str(&self) -> &str {
        &self.out
    }

    /// The finished text.
    pub fn finish(self) -> String {
        self.out
    }
}

impl Family<'_> {
    /// Adds a sample with `labels` (name, value): names are constants,
    /// values are escaped.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: impl Into<Value>) -> &mut Self {
        self.out.push_str(self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (name, value)) in labels.iter().enumerate() {
                debug_assert!(is_valid_name(name), "invalid label name {name:?}");
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(name);
                self.out.push_str("=\"");
                escape_label_value(value, self.out);
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", value.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_escapes() {
        let mut w = Writer::new();
        w.family("x_packets_total", Kind::Counter, "Frames.\nAnd a \\.")
            .sample(&[("port", "a\"b\\c\nd")], 3u64)
            .sample(&[("port", "p"), ("kind", "shm")], 4u64);
        w.single("x_uptime_seconds", Kind::Gauge, "Up.", 1.5);
        w.single("x_nan", Kind::Gauge, "NaN.", f64::NAN);
        w.single("x_inf", Kind::Gauge, "Inf.", f64::INFINITY);
        assert_eq!(
            w.finish(),
            "# HELP x_packets_total Frames.\\nAnd a \\\\.\n\
             # TYPE x_packets_total counter\n\
             x_packets_total{port=\"a\\\"b\\\\c\\nd\"} 3\n\
             x_packets_total{port=\"p\",kind=\"shm\"} 4\n\
             # HELP x_uptime_seconds Up.\n\
             # TYPE x_uptime_seconds gauge\n\
             x_uptime_seconds 1.5\n\
             # HELP x_nan NaN.\n# TYPE x_nan gauge\nx_nan NaN\n\
             # HELP x_inf Inf.\n# TYPE x_inf gauge\nx_inf +Inf\n"
        );
    }

    #[test]
    fn names() {
        assert!(is_valid_name("vswitch_port_rx_packets_total"));
        assert!(!is_valid_name("9a") && !is_valid_name("a-b") && !is_valid_name(""));
        assert_eq!(sanitize_name("xsk-rx.dropped"), "xsk_rx_dropped");
        assert_eq!(sanitize_name("0x3f8"), "_0x3f8");
        assert!(is_valid_name(&sanitize_name("é 1")));
    }
}
