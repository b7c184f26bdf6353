//! A small SVG bar chart of a benchmark's rates (log scale), so a table of
//! numbers spanning three orders of magnitude can be seen at a glance.

use std::fmt::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// One bar.
pub struct Bar {
    /// Label under the bar.
    pub label: String,
    /// Value in frames per second.
    pub pps: f64,
    /// Fill colour.
    pub colour: &'static str,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Writes a log-scale bar chart of `bars` with `title` to `path`.
pub fn bar_chart(path: &Path, title: &str, bars: &[Bar]) -> Result<()> {
    let (width, height, left, bottom, top) = (120 + 90 * bars.len(), 420.0, 80.0, 110.0, 40.0);
    let plot_h = height - bottom - top;
    let lo = 1e3f64.log10();
    let hi = bars
        .iter()
        .map(|b| b.pps)
        .fold(1e4, f64::max)
        .log10()
        .ceil();
    let y = |pps: f64| top + plot_h * (1.0 - ((pps.max(1e3).log10() - lo) / (hi - lo)));
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{left}" y="22" font-size="15">{}</text>"#,
        escape(title)
    );
    let mut exp = lo as i32;
    while exp as f64 <= hi {
        let v = 10f64.powi(exp);
        let yy = y(v);
        let label = match exp {
            3 => "1 Kpps".to_owned(),
            4 => "10 Kpps".to_owned(),
            5 => "100 Kpps".to_owned(),
            6 => "1 Mpps".to_owned(),
            7 => "10 Mpps".to_owned(),
            e => format!("1e{e}"),
        };
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{yy:.1}" x2="{}" y2="{yy:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{label}</text>"##,
            width - 20,
            left - 6.0,
            yy + 4.0
        );
        exp += 1;
    }
    for (i, bar) in bars.iter().enumerate() {
        let x = left + 20.0 + 90.0 * i as f64;
        let yy = y(bar.pps);
        let base = top + plot_h;
        let _ = writeln!(
            svg,
            r#"<rect x="{x:.1}" y="{yy:.1}" width="60" height="{:.1}" fill="{}"/>"#,
            (base - yy).max(0.0),
            bar.colour
        );
        let value = if bar.pps >= 1e6 {
            format!("{:.2} Mpps", bar.pps / 1e6)
        } else {
            format!("{:.1} Kpps", bar.pps / 1e3)
        };
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{value}</text>"#,
            x + 30.0,
            yy - 5.0
        );
        let _ = writeln!(
            svg,
            r#"<text transform="translate({:.1},{:.1}) rotate(30)">{}</text>"#,
            x + 10.0,
            base + 16.0,
            escape(&bar.label)
        );
    }
    svg.push_str("</svg>\n");
    std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))
}
