//! Small SVG charts (line, scatter, bars, heatmap) with axes and labels, written by hand so the
//! report needs no plotting dependency and no network to view. Each returns a complete `<svg>`.

use std::fmt::Write;

const W: f64 = 640.0;
const H: f64 = 360.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 48.0;
pub const PALETTE: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Maps data coordinates onto the plot area.
struct Frame {
    x: (f64, f64),
    y: (f64, f64),
    log_x: bool,
}

impl Frame {
    fn px(&self, x: f64) -> f64 {
        let (t, lo, hi) = if self.log_x {
            (
                x.max(1e-9).log10(),
                self.x.0.max(1e-9).log10(),
                self.x.1.max(1e-9).log10(),
            )
        } else {
            (x, self.x.0, self.x.1)
        };
        LEFT + (t - lo) / (hi - lo).max(1e-12) * (W - LEFT - RIGHT)
    }
    fn py(&self, y: f64) -> f64 {
        H - BOTTOM - (y - self.y.0) / (self.y.1 - self.y.0).max(1e-12) * (H - TOP - BOTTOM)
    }
}

fn open(title: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" \
         font-family=\"sans-serif\" font-size=\"12\" role=\"img\" aria-label=\"{t}\">\
         <rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>\
         <text x=\"{cx}\" y=\"20\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">{t}</text>",
        t = escape(title),
        cx = W / 2.0
    )
}

fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let span = (hi - lo).max(1e-12);
    let raw = span / n as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(mag * 10.0);
    let first = (lo / step).ceil() * step;
    (0..=n * 2 + 1)
        .map(|i| first + i as f64 * step)
        .filter(|v| *v <= hi + step * 1e-9)
        .collect()
}

fn label(v: f64) -> String {
    if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if (v * 10.0).fract().abs() < 1e-9 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn axes(svg: &mut String, f: &Frame, x_label: &str, y_label: &str) {
    let (x0, x1, y0, y1) = (LEFT, W - RIGHT, TOP, H - BOTTOM);
    let _ = write!(
        svg,
        "<g stroke=\"#444\"><line x1=\"{x0}\" y1=\"{y1}\" x2=\"{x1}\" y2=\"{y1}\"/><line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x0}\" y2=\"{y1}\"/></g>"
    );
    for t in nice_ticks(f.y.0, f.y.1, 5) {
        let y = f.py(t);
        let _ = write!(
            svg,
            "<line x1=\"{x0}\" y1=\"{y:.1}\" x2=\"{x1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            x0 - 6.0,
            y + 4.0,
            label(t)
        );
    }
    let xt: Vec<f64> = if f.log_x {
        let (a, b) = (
            f.x.0.max(1e-9).log10().floor() as i32,
            f.x.1.max(1e-9).log10().ceil() as i32,
        );
        (a..=b)
            .map(|e| 10f64.powi(e))
            .filter(|v| *v >= f.x.0 && *v <= f.x.1)
            .collect()
    } else {
        nice_ticks(f.x.0, f.x.1, 6)
    };
    for t in xt {
        let x = f.px(t);
        // Decades below 0.01 (a learning-rate axis) would all print as 0.00.
        let text = if f.log_x && t < 0.01 {
            format!("1e{}", t.log10().round())
        } else {
            label(t)
        };
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{y1}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#444\"/><text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            y1 + 5.0,
            y1 + 18.0,
            text
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text><text transform=\"translate(16 {}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
        (x0 + x1) / 2.0,
        H - 10.0,
        escape(x_label),
        (y0 + y1) / 2.0,
        escape(y_label)
    );
}

/// A named series drawn in `PALETTE[color]` (the same strategy keeps its colour across plots).
pub struct Series<'a> {
    pub name: &'a str,
    pub color: usize,
    pub points: Vec<(f64, f64)>,
}

fn legend(svg: &mut String, names: &[(&str, usize)]) {
    for (i, (name, color)) in names.iter().enumerate() {
        let y = TOP + 8.0 + 18.0 * i as f64;
        let _ = write!(
            svg,
            "<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{}</text>",
            W - RIGHT + 12.0,
            y - 10.0,
            PALETTE[color % PALETTE.len()],
            W - RIGHT + 30.0,
            y,
            escape(name)
        );
    }
}

fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) }
}

/// One line per series; `y_range` fixes the vertical axis (e.g. accuracy in 0..100).
pub fn lines(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series<'_>],
    y_range: Option<(f64, f64)>,
) -> String {
    let (x0, x1) = range(series.iter().flat_map(|s| s.points.iter().map(|p| p.0)));
    let y =
        y_range.unwrap_or_else(|| range(series.iter().flat_map(|s| s.points.iter().map(|p| p.1))));
    let f = Frame {
        x: (x0, x1.max(x0 + 1.0)),
        y,
        log_x: false,
    };
    let mut svg = open(title);
    axes(&mut svg, &f, x_label, y_label);
    for Series {
        color, points: pts, ..
    } in series
    {
        let color = PALETTE[color % PALETTE.len()];
        let d: Vec<String> = pts
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", f.px(*x), f.py(*y)))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            d.join(" ")
        );
        for (x, y) in pts {
            let _ = write!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{color}\"/>",
                f.px(*x),
                f.py(*y)
            );
        }
    }
    legend(
        &mut svg,
        &series.iter().map(|s| (s.name, s.color)).collect::<Vec<_>>(),
    );
    svg + "</svg>"
}

/// Labelled points `(name, colour, x, y)`; `log_x` for quantities spanning decades (time).
pub fn scatter(
    title: &str,
    x_label: &str,
    y_label: &str,
    points: &[(&str, usize, f64, f64)],
    log_x: bool,
) -> String {
    let (mut x0, mut x1) = range(points.iter().map(|p| p.2));
    let (y0, y1) = range(points.iter().map(|p| p.3));
    if log_x {
        x0 = 10f64.powf(x0.max(1e-3).log10().floor());
        x1 = 10f64.powf(x1.max(1e-3).log10().ceil());
    }
    let pad = ((y1 - y0) * 0.15).max(1.0);
    let f = Frame {
        x: (x0, x1.max(x0 * 10.0)),
        y: ((y0 - pad).max(0.0), (y1 + pad).min(100.0)),
        log_x,
    };
    let mut svg = open(title);
    axes(&mut svg, &f, x_label, y_label);
    for (name, color, x, y) in points {
        let color = PALETTE[color % PALETTE.len()];
        let _ = write!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"6\" fill=\"{color}\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            f.px(*x),
            f.py(*y),
            f.px(*x) + 9.0,
            f.py(*y) - 8.0,
            escape(name)
        );
    }
    svg + "</svg>"
}

/// Vertical bars, one per label, values on a fixed 0..`max` axis.
pub fn bars(title: &str, y_label: &str, items: &[(&str, f64)], max: f64) -> String {
    let f = Frame {
        x: (0.0, items.len().max(1) as f64),
        y: (0.0, max),
        log_x: false,
    };
    let mut svg = open(title);
    axes(&mut svg, &Frame { x: (0.0, 0.0), ..f }, "", y_label);
    let slot = (W - LEFT - RIGHT) / items.len().max(1) as f64;
    for (i, (name, v)) in items.iter().enumerate() {
        let x = LEFT + slot * i as f64 + slot * 0.15;
        let y = f.py(*v);
        let _ = write!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\">{v:.1}</text>\
             <text transform=\"translate({:.1} {}) rotate(35)\" font-size=\"10\">{}</text>",
            slot * 0.7,
            H - BOTTOM - y,
            PALETTE[0],
            x + slot * 0.35,
            y - 3.0,
            x + slot * 0.3,
            H - BOTTOM + 12.0,
            escape(name)
        );
    }
    svg + "</svg>"
}

/// A confusion matrix: rows are the true classes, columns the predicted, shaded by row share.
pub fn heatmap(title: &str, labels: &[String], matrix: &[Vec<usize>]) -> String {
    let n = labels.len().max(1);
    let size = (H - TOP - BOTTOM - 20.0).min(W - 2.0 * LEFT - RIGHT) / n as f64;
    let (ox, oy) = (LEFT + 90.0, TOP + 10.0);
    let mut svg = open(title);
    for (i, row) in matrix.iter().enumerate() {
        let total: usize = row.iter().sum();
        for (j, &c) in row.iter().enumerate() {
            let share = c as f64 / total.max(1) as f64;
            let shade = (255.0 * (1.0 - share)).round() as u8;
            let fill = if i == j {
                format!(
                    "rgb({shade},{},{shade})",
                    255u8.saturating_sub(((255 - shade as u16) / 3) as u8)
                )
            } else {
                format!("rgb(255,{shade},{shade})")
            };
            let _ = write!(
                svg,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{size:.1}\" height=\"{size:.1}\" fill=\"{fill}\" stroke=\"#ccc\"/>",
                ox + size * j as f64,
                oy + size * i as f64
            );
            if n <= 25 {
                let _ = write!(
                    svg,
                    "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"{:.0}\">{c}</text>",
                    ox + size * (j as f64 + 0.5),
                    oy + size * (i as f64 + 0.5) + 4.0,
                    (size * 0.35).clamp(6.0, 14.0)
                );
            }
        }
    }
    for (i, l) in labels.iter().enumerate() {
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"10\">{}</text>",
            ox - 4.0,
            oy + size * (i as f64 + 0.5) + 3.0,
            escape(l)
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">predicted (columns, same order); rows: true class</text>",
        ox + size * n as f64 / 2.0,
        oy + size * n as f64 + 18.0
    );
    svg + "</svg>"
}

/// `lr_find.svg`: the range test's losses against the rate (log scale), raw and smoothed, with
/// the suggested rate and the steepest fall marked.
pub fn lr_curve(test: &graft_spec::lr_find::LrFind) -> String {
    let smoothed: Vec<(f64, f64)> = test.points.iter().map(|p| (p.lr, p.smoothed)).collect();
    let raw: Vec<(f64, f64)> = test.points.iter().map(|p| (p.lr, p.loss)).collect();
    let (x0, x1) = range(smoothed.iter().map(|p| p.0));
    // The axis follows the smoothed curve: a raw batch loss may jump far above it.
    let (y0, y1) = range(smoothed.iter().map(|p| p.1));
    let f = Frame {
        x: (x0, x1.max(x0 * 10.0)),
        y: (y0.min(y1 - 1e-6), y1),
        log_x: true,
    };
    let title = format!("Learning-rate range test: {} {}", test.model, test.strategy);
    let mut svg = open(&title);
    axes(&mut svg, &f, "learning rate (log scale)", "training loss");
    let path = |pts: &[(f64, f64)]| {
        pts.iter()
            .map(|(x, y)| format!("{:.1},{:.1}", f.px(*x), f.py(y.clamp(f.y.0, f.y.1))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let _ = write!(
        svg,
        "<polyline fill=\"none\" stroke=\"{}\" stroke-opacity=\"0.35\" points=\"{}\"/>\
         <polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>",
        PALETTE[0],
        path(&raw),
        PALETTE[0],
        path(&smoothed)
    );
    let mut names = vec![("loss (smoothed)", 0)];
    if let Some(s) = &test.suggestion {
        let marks = [(Some(s.suggested), 3usize), (s.steepest, 2usize)];
        for (lr, color) in marks.iter().filter_map(|(lr, c)| lr.map(|lr| (lr, *c))) {
            let x = f.px(lr);
            let _ = write!(
                svg,
                "<line x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"{}\" stroke-dasharray=\"5 3\"/>",
                H - BOTTOM,
                PALETTE[color]
            );
        }
        names.push(("suggested lr", 3));
        if s.steepest.is_some() {
            names.push(("steepest fall", 2));
        }
    }
    legend(&mut svg, &names);
    svg + "</svg>"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_numbers_inside_the_range() {
        assert_eq!(
            nice_ticks(0.0, 100.0, 5),
            vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
        );
        assert!(
            nice_ticks(3.2, 4.1, 5)
                .iter()
                .all(|t| (3.2..=4.1).contains(t))
        );
    }

    #[test]
    fn labels_are_escaped_and_points_land_inside_the_plot() {
        let svg = lines(
            "a<b",
            "epoch",
            "%",
            &[Series {
                name: "x&y",
                color: 0,
                points: vec![(0.0, 0.0), (9.0, 100.0)],
            }],
            Some((0.0, 100.0)),
        );
        assert!(svg.contains("a&lt;b") && svg.contains("x&amp;y"));
        assert!(
            svg.contains(&format!(
                "points=\"{LEFT:.1},{:.1} {:.1},{TOP:.1}\"",
                H - BOTTOM,
                W - RIGHT
            )),
            "{svg}"
        );
    }
}
