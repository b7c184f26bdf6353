//! Field-by-field comparison of two conformance documents against the
//! allow-list in docs/e1000-differences.md.
//!
//! The allow-list is the Markdown table rows of that file whose first cell
//! is a path in backquotes: `| \`PATH\` | OURS | QEMU | reason |`. PATH is a
//! flattened JSON path (`after_reset.STATUS`, `rx.bam.frames.F7.len`) whose
//! dot-separated segments may be `*` (any one segment) or, last, `**` (any
//! rest). OURS and QEMU are the expected values as compact JSON in
//! backquotes, `absent`, or `*` for any.

use std::collections::BTreeMap;

use serde_json::Value;

/// A document flattened to `path -> compact JSON of the leaf`.
pub fn flatten(v: &Value) -> BTreeMap<String, String> {
    fn walk(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
        let join = |k: &str| {
            if prefix.is_empty() {
                k.to_owned()
            } else {
                format!("{prefix}.{k}")
            }
        };
        match v {
            Value::Object(map) => map.iter().for_each(|(k, v)| walk(&join(k), v, out)),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .for_each(|(i, v)| walk(&join(&i.to_string()), v, out)),
            leaf => {
                out.insert(prefix.to_owned(), leaf.to_string());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", v, &mut out);
    out
}

/// One allowed difference.
#[derive(Debug)]
pub struct Allowed {
    /// Path pattern.
    pub path: String,
    /// Our value (`None`: any).
    pub ours: Option<String>,
    /// QEMU's value (`None`: any).
    pub qemu: Option<String>,
}

impl Allowed {
    fn matches_path(&self, path: &str) -> bool {
        let mut want = self.path.split('.');
        let mut have = path.split('.');
        loop {
            match (want.next(), have.next()) {
                (Some("**"), Some(_)) => return true,
                (Some(w), Some(h)) if w == "*" || w == h => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }

    fn matches(&self, path: &str, ours: &str, qemu: &str) -> bool {
        self.matches_path(path)
            && self.ours.as_deref().is_none_or(|v| v == ours)
            && self.qemu.as_deref().is_none_or(|v| v == qemu)
    }
}

fn cell_value(cell: &str) -> Option<String> {
    let cell = cell.trim();
    if cell == "*" {
        return None;
    }
    Some(cell.trim_matches('`').to_owned())
}

/// Parses the allow-list rows of the Markdown text.
pub fn parse_allow_list(markdown: &str) -> Vec<Allowed> {
    markdown
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.trim().strip_prefix('|')?.split('|').collect();
            let first = cells.first()?.trim();
            if cells.len() < 4 || !first.starts_with('`') {
                return None;
            }
            Some(Allowed {
                path: first.trim_matches('`').to_owned(),
                ours: cell_value(cells[1]),
                qemu: cell_value(cells[2]),
            })
        })
        .collect()
}

/// A field that differs.
#[derive(Debug)]
pub struct Difference {
    /// Its path.
    pub path: String,
    /// Our value (`absent` if missing).
    pub ours: String,
    /// QEMU's value (`absent` if missing).
    pub qemu: String,
    /// Whether the allow-list explains it.
    pub allowed: bool,
}

/// Every differing field of the two documents, and the allow-list rows
/// that matched no difference.
pub fn compare(ours: &Value, qemu: &Value, allow: &[Allowed]) -> (Vec<Difference>, Vec<String>) {
    let (a, b) = (flatten(ours), flatten(qemu));
    let mut used = vec![false; allow.len()];
    let mut diffs = Vec::new();
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for key in keys {
        let x = a.get(key).map_or("absent", String::as_str);
        let y = b.get(key).map_or("absent", String::as_str);
        if x == y {
            continue;
        }
        let hit = allow.iter().position(|r| r.matches(key, x, y));
        if let Some(i) = hit {
            used[i] = true;
        }
        diffs.push(Difference {
            path: key.clone(),
            ours: x.to_owned(),
            qemu: y.to_owned(),
            allowed: hit.is_some(),
        });
    }
    let unused = allow
        .iter()
        .zip(used)
        .filter(|(_, u)| !u)
        .map(|(r, _)| r.path.clone())
        .collect();
    (diffs, unused)
}

#[test]
fn allow_list_rows_and_matching() {
    let md = "| path | ours | QEMU | why |\n|---|---|---|---|\n\
              | `a.b` | `1` | `2` | x |\n| `c.**` | * | `absent` | y |\n\
              | `f.*.g` | * | * | z |\n";
    let allow = parse_allow_list(md);
    assert_eq!(allow.len(), 3);
    let ours =
        serde_json::json!({"a": {"b": 1}, "c": {"d": [5]}, "e": 1, "f": {"x": {"g": 1, "h": 1}}});
    let qemu = serde_json::json!({"a": {"b": 2}, "e": 2, "f": {"x": {"g": 2, "h": 2}}});
    let (diffs, unused) = compare(&ours, &qemu, &allow);
    let shown: Vec<_> = diffs.iter().map(|d| (d.path.as_str(), d.allowed)).collect();
    assert_eq!(
        shown,
        [
            ("a.b", true),
            ("c.d.0", true),
            ("e", false),
            ("f.x.g", true),
            ("f.x.h", false)
        ]
    );
    assert!(unused.is_empty());
}
