//! Minimal SVG plots of Monte Carlo histories and autocorrelation functions.

use std::fmt::Write;

const WIDTH: f64 = 720.0;
const PANEL_HEIGHT: f64 = 240.0;
const MARGIN: f64 = 60.0;

/// One panel: a polyline of (x, y) points with a title and axis labels.
pub struct Panel<'a> {
    /// Title printed above the panel.
    pub title: String,
    /// Label of the horizontal axis.
    pub x_label: &'a str,
    /// The points.
    pub points: Vec<(f64, f64)>,
    /// Draw a horizontal reference line at this y (e.g. zero, or a mean).
    pub reference: Option<f64>,
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e9 {
        format!("{x:.0}")
    } else if x.abs() < 1e-3 || x.abs() >= 1e5 {
        format!("{x:.3e}")
    } else {
        format!("{x:.4}")
    }
}

/// An SVG document with the panels stacked vertically.
pub fn svg(panels: &[Panel]) -> String {
    let height = PANEL_HEIGHT * panels.len() as f64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (k, panel) in panels.iter().enumerate() {
        let top = k as f64 * PANEL_HEIGHT + 30.0;
        let (x0, x1) = (MARGIN, WIDTH - 20.0);
        let (y0, y1) = (top, top + PANEL_HEIGHT - 70.0);
        let finite: Vec<(f64, f64)> =
            panel.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
        let (mut xmin, mut xmax, mut ymin, mut ymax) = finite.iter().fold(
            (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY),
            |(a, b, c, d), &(x, y)| (a.min(x), b.max(x), c.min(y), d.max(y)),
        );
        if let Some(r) = panel.reference {
            ymin = ymin.min(r);
            ymax = ymax.max(r);
        }
        if finite.is_empty() {
            (xmin, xmax, ymin, ymax) = (0.0, 1.0, 0.0, 1.0);
        }
        if xmax <= xmin {
            xmax = xmin + 1.0;
        }
        if ymax <= ymin {
            (ymin, ymax) = (ymin - 0.5, ymax + 0.5);
        }
        let sx = |x: f64| x0 + (x - xmin) / (xmax - xmin) * (x1 - x0);
        let sy = |y: f64| y1 - (y - ymin) / (ymax - ymin) * (y1 - y0);
        let _ =
            writeln!(out, r#"<text x="{x0}" y="{}" font-weight="bold">{}</text>"#, y0 - 10.0, panel.title);
        let _ = writeln!(
            out,
            r#"<rect x="{x0}" y="{y0}" width="{}" height="{}" fill="none" stroke="black"/>"#,
            x1 - x0,
            y1 - y0
        );
        for (y, label) in [(y0 + 4.0, fmt_num(ymax)), (y1, fmt_num(ymin))] {
            let _ = writeln!(out, r#"<text x="{}" y="{y}" text-anchor="end">{label}</text>"#, x0 - 4.0);
        }
        for (x, anchor, label) in [(x0, "start", fmt_num(xmin)), (x1, "end", fmt_num(xmax))] {
            let _ = writeln!(out, r#"<text x="{x}" y="{}" text-anchor="{anchor}">{label}</text>"#, y1 + 16.0);
        }
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            (x0 + x1) / 2.0,
            y1 + 30.0,
            panel.x_label
        );
        if let Some(r) = panel.reference {
            let _ = writeln!(
                out,
                r#"<line x1="{x0}" x2="{x1}" y1="{0}" y2="{0}" stroke="gray" stroke-dasharray="4 3"/>"#,
                sy(r)
            );
        }
        let mut poly = String::new();
        for &(x, y) in &finite {
            let _ = write!(poly, "{:.2},{:.2} ", sx(x), sy(y));
        }
        let _ =
            writeln!(out, r##"<polyline points="{poly}" fill="none" stroke="#1f5fa8" stroke-width="1"/>"##);
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_contains_every_panel_and_skips_non_finite_points() {
        let panels = [
            Panel {
                title: "history".into(),
                x_label: "trajectory",
                points: vec![(0.0, 1.0), (1.0, f64::NAN), (2.0, 3.0)],
                reference: Some(2.0),
            },
            Panel { title: "rho".into(), x_label: "t", points: vec![], reference: None },
        ];
        let s = svg(&panels);
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert_eq!(s.matches("<polyline").count(), 2);
        assert!(s.contains("history") && s.contains("rho") && !s.contains("NaN"));
    }
}
