//! `report.html`: one self-contained page (inline CSS and SVG, thumbnails as data URIs, no
//! scripts), readable offline and printable.

use std::fmt::Write;
use std::path::Path;

use base64::Engine;

use crate::conclusion::{Status, seconds};
use crate::plot::{self, escape};
use crate::read::Results;

pub const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}\
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}tr.failed td{color:#a00}tr.best td{font-weight:bold}\
.conclusion{font-size:1.15em;background:#eef6ee;border-left:4px solid #2ca02c;padding:.6em 1em}\
.thumbs{display:flex;flex-wrap:wrap;gap:8px}.thumbs figure{margin:0;width:132px;font-size:11px;text-align:center}\
.thumbs img{width:128px;height:128px;object-fit:cover;border:1px solid #ccc}svg{max-width:100%;height:auto}";

/// The report's plots, by file stem.
/// Learning curves and training loss by epoch, one line per strategy.
fn curve_plots(r: &Results, out: &mut Vec<(String, String)>) {
    // A strategy keeps its colour (its place in the table) in every plot.
    let color = |s: &str| r.rows.iter().position(|row| row.strategy == s).unwrap_or(0);
    let series = |f: &dyn Fn(&crate::read::Epoch) -> f64| -> Vec<plot::Series<'_>> {
        r.curves
            .iter()
            .filter(|(_, c)| !c.is_empty())
            .map(|(s, c)| plot::Series {
                name: s,
                color: color(s),
                points: c.iter().map(|e| ((e.epoch + 1) as f64, f(e))).collect(),
            })
            .collect()
    };
    let accuracy = series(&|e| 100.0 * e.val_accuracy);
    if accuracy.is_empty() {
        return;
    }
    out.push((
        "learning_curves".into(),
        plot::lines(
            "Validation accuracy by epoch",
            "epoch",
            "accuracy (%)",
            &accuracy,
            Some((0.0, 100.0)),
        ),
    ));
    out.push((
        "training_loss".into(),
        plot::lines(
            "Training loss by epoch",
            "epoch",
            "loss",
            &series(&|e| e.train_loss),
            None,
        ),
    ));
}

/// The best strategy's confusion matrix and per-class accuracy.
fn best_plots(r: &Results, out: &mut Vec<(String, String)>) {
    if r.best_confusion.is_empty() {
        return;
    }
    let classes = &r.manifest.classes;
    let best = r.best.as_deref().unwrap_or("");
    out.push((
        "confusion".into(),
        plot::heatmap(
            &format!("Confusion matrix of {best}"),
            classes,
            &r.best_confusion,
        ),
    ));
    let per_class: Vec<(&str, f64)> = classes
        .iter()
        .zip(&r.best_confusion)
        .enumerate()
        .map(|(i, (c, row))| {
            (
                c.as_str(),
                100.0 * row[i] as f64 / row.iter().sum::<usize>().max(1) as f64,
            )
        })
        .collect();
    out.push((
        "per_class_accuracy".into(),
        plot::bars(
            &format!("Per-class accuracy of {best}"),
            "accuracy (%)",
            &per_class,
            100.0,
        ),
    ));
}

pub fn plots(r: &Results) -> Vec<(String, String)> {
    let mut out = Vec::new();
    curve_plots(r, &mut out);
    let points: Vec<(&str, usize, f64, f64)> = r
        .rows
        .iter()
        .enumerate()
        .filter(|(_, row)| row.status == Status::Ok)
        .map(|(i, row)| {
            (
                row.strategy.as_str(),
                i,
                row.seconds.max(0.1),
                100.0 * row.val_accuracy,
            )
        })
        .collect();
    if !points.is_empty() {
        out.push((
            "accuracy_vs_time".into(),
            plot::scatter(
                "Accuracy against time",
                "seconds (log scale)",
                "accuracy on the reported split (%)",
                &points,
                true,
            ),
        ));
    }
    best_plots(r, &mut out);
    out
}

/// An `<img>` with the thumbnail inlined, or a visible note when it is missing.
fn thumb(dir: &Path, r: &Results, image: &str, caption: &str) -> String {
    let img = r
        .manifest
        .thumbnails
        .get(image)
        .and_then(|f| std::fs::read(dir.join(f)).ok())
        .map(|bytes| {
            format!(
                "<img alt=\"{}\" src=\"data:image/jpeg;base64,{}\">",
                escape(caption),
                base64::engine::general_purpose::STANDARD.encode(bytes)
            )
        })
        .unwrap_or_else(|| format!("<div>(no thumbnail for {})</div>", escape(image)));
    format!(
        "<figure>{img}<figcaption>{}</figcaption></figure>",
        escape(caption)
    )
}

fn pct(v: f64) -> String {
    format!("{:.1}%", 100.0 * v)
}

/// The classes with their image counts per split, and example thumbnails.
fn dataset_section(h: &mut String, dir: &Path, r: &Results) {
    let m = &r.manifest;
    let _ = write!(
        h,
        "<h2>The dataset</h2><table id=\"dataset\"><tr><th>class</th>"
    );
    for s in &m.splits {
        let _ = write!(h, "<th>{}</th>", escape(&s.name));
    }
    *h += "</tr>";
    for (i, c) in m.classes.iter().enumerate() {
        let _ = write!(h, "<tr><td>{}</td>", escape(c));
        for s in &m.splits {
            let _ = write!(h, "<td>{}</td>", s.per_class.get(i).copied().unwrap_or(0));
        }
        *h += "</tr>";
    }
    *h += "</table><div class=\"thumbs\" id=\"examples\">";
    for (class, path) in &m.examples {
        *h += &thumb(dir, r, &path.display().to_string(), class);
    }
}

/// One strategy's row of the table (a failed or pending one says why).
fn strategy_row(h: &mut String, r: &Results, row: &crate::Row, top5: bool) {
    let class = match (row.status, r.best.as_deref() == Some(row.strategy.as_str())) {
        (Status::Ok, true) => " class=\"best\"",
        (Status::Ok, false) => "",
        _ => " class=\"failed\"",
    };
    if row.status != Status::Ok {
        let _ = write!(
            h,
            "<tr{class}><td>{}</td><td colspan=\"{}\">{}: {}</td></tr>",
            escape(&row.strategy),
            if top5 { 9 } else { 8 },
            if row.status == Status::Failed {
                "failed"
            } else {
                "not run"
            },
            escape(row.error.as_deref().unwrap_or(""))
        );
        return;
    }
    let _ = write!(
        h,
        "<tr{class}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{}<td>{:.3}</td><td>{} ({})</td><td>{}</td></tr>",
        escape(&row.strategy),
        row.trainable_params,
        seconds(row.seconds),
        row.training_rate(),
        row.select_accuracy.map(pct).unwrap_or_default(),
        pct(row.val_accuracy),
        if top5 {
            format!("<td>{}</td>", row.val_top5.map(pct).unwrap_or_default())
        } else {
            String::new()
        },
        row.macro_f1,
        row.epochs_run,
        row.best_epoch + usize::from(row.epochs_run > 0),
        escape(&row.stopped.replace('_', " "))
    );
}

pub fn compare(dir: &Path, r: &Results, plots: &[(String, String)]) -> String {
    let m = &r.manifest;
    let mut h = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>graft compare: {model} on {data}</title><style>{STYLE}</style></head><body>\
         <h1>Which strategy for {data}?</h1><p>{q}</p><p class=\"conclusion\" id=\"conclusion\">{c}</p>",
        model = escape(&m.model),
        data = escape(&m.data.display().to_string()),
        q = escape(&m.question),
        c = escape(&r.conclusion)
    );
    dataset_section(&mut h, dir, r);
    let b = &m.budget;
    let _ = write!(
        h,
        "</div><h2>Strategies</h2><p>Same data, same split, seed {}; each strategy trains at most {} epochs{}, stopping early after no improvement on validation. \
         Times are wall-clock in this run, including the frozen features each strategy had to compute; strategies share the cache, \
         so one that starts from activations another already computed is faster here than it would be alone.</p>\
         <table id=\"strategies\"><tr><th>strategy</th><th>trainable parameters</th><th>time</th><th>training images/s</th><th>accuracy on the selection split (ranks)</th><th>accuracy on the reported split</th>{}<th>macro-F1</th><th>epochs run (best, from 1)</th><th>notes</th></tr>",
        b.seed,
        b.max_epochs,
        b.seconds_per_strategy
            .map(|s| format!(" and {} of training", seconds(s)))
            .unwrap_or_default(),
        if r.rows.iter().any(|row| row.val_top5.is_some()) {
            "<th>top-5</th>"
        } else {
            ""
        }
    );
    let top5 = r.rows.iter().any(|row| row.val_top5.is_some());
    for row in &r.rows {
        strategy_row(&mut h, r, row, top5);
    }
    h += "</table>";
    for (name, svg) in plots {
        let _ = write!(h, "<figure id=\"plot-{name}\">{svg}</figure>");
    }
    if !r.mistakes.is_empty() {
        let _ = write!(
            h,
            "<h2>Most confident mistakes of {}</h2><div class=\"thumbs\" id=\"mistakes\">",
            escape(r.best.as_deref().unwrap_or(""))
        );
        for p in &r.mistakes {
            let caption = format!(
                "{} taken for {} ({:.0}%)",
                p.label,
                p.predicted,
                100.0 * p.confidence
            );
            h += &thumb(dir, r, &p.path, &caption);
        }
        h += "</div>";
    }
    h += "<p><small>Written by graft from the run directories under runs/; the same numbers are in results.json and report.md.</small></p></body></html>\n";
    h
}
