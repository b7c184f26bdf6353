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

/// One line of a line chart.
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Points (x, y), in x order.
    pub points: Vec<(f64, f64)>,
}

/// Colours of successive lines.
const LINE_COLOURS: [&str; 6] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
];

/// Writes a line chart to `path`: x on a log2 scale (ticks at the points'
/// x values), y linear from 0, one line per series with a legend.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<()> {
    let (width, height, left, right, top, bottom) = (720.0, 420.0, 70.0, 190.0, 40.0, 50.0);
    let (plot_w, plot_h) = (width - left - right, height - top - bottom);
    let mut xs: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .filter(|x| *x > 0.0)
        .collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let (x_lo, x_hi) = match (xs.first(), xs.last()) {
        (Some(lo), Some(hi)) if hi > lo => (lo.log2(), hi.log2()),
        (Some(lo), _) => (lo.log2() - 1.0, lo.log2() + 1.0),
        _ => (0.0, 1.0),
    };
    let y_max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(1.0, f64::max);
    // A round top: 1, 2 or 5 times a power of ten.
    let magnitude = 10f64.powf(y_max.log10().floor());
    let step = [0.1, 0.2, 0.5, 1.0, 2.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| y_max / s <= 8.0)
        .unwrap_or(magnitude);
    let y_top = (y_max / step).ceil() * step;
    let x = |v: f64| left + plot_w * (v.max(f64::MIN_POSITIVE).log2() - x_lo) / (x_hi - x_lo);
    let y = |v: f64| top + plot_h * (1.0 - v / y_top);
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
    let mut v = 0.0;
    while v <= y_top + step / 2.0 {
        let yy = y(v);
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            left + plot_w,
            left - 6.0,
            yy + 4.0,
            format_tick(v)
        );
        v += step;
    }
    for &xv in &xs {
        let xx = x(xv);
        let _ = writeln!(
            svg,
            r##"<line x1="{xx:.1}" y1="{top}" x2="{xx:.1}" y2="{:.1}" stroke="#eee"/><text x="{xx:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            top + plot_h,
            top + plot_h + 16.0,
            format_tick(xv)
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        left + plot_w / 2.0,
        height - 10.0,
        escape(x_label)
    );
    let _ = writeln!(
        svg,
        r#"<text transform="translate(18,{:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        top + plot_h / 2.0,
        escape(y_label)
    );
    for (i, s) in series.iter().enumerate() {
        let colour = LINE_COLOURS[i % LINE_COLOURS.len()];
        let points: Vec<String> = s
            .points
            .iter()
            .map(|&(px, py)| format!("{:.1},{:.1}", x(px), y(py)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
            points.join(" ")
        );
        for &(px, py) in &s.points {
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#,
                x(px),
                y(py)
            );
        }
        let ly = top + 10.0 + 20.0 * i as f64;
        let lx = left + plot_w + 16.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{colour}" stroke-width="2"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            lx + 20.0,
            lx + 26.0,
            ly + 4.0,
            escape(&s.label)
        );
    }
    svg.push_str("</svg>\n");
    std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))
}

/// A tick label: integers without decimals, others with one.
fn format_tick(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_chart_has_a_line_per_series_and_escapes_labels() {
        let path = std::env::temp_dir().join(format!("bench-plot-{}.svg", std::process::id()));
        let series = vec![
            Series {
                label: "1 address".to_owned(),
                points: vec![(1.0, 60.0), (8.0, 50.0), (254.0, 20.0)],
            },
            Series {
                label: "a < b".to_owned(),
                points: vec![(1.0, 30.0), (254.0, 10.0)],
            },
        ];
        line_chart(&path, "t", "destinations", "Mpps", &series).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("a &lt; b"));
        assert!(svg.contains(">254</text>"));
        std::fs::remove_file(&path).unwrap();
    }
}
