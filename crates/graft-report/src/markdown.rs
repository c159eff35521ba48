//! `report.md`: the same numbers as the HTML page, for terminals, issues and pull requests.

use std::fmt::Write;

use crate::conclusion::{Status, seconds};
use crate::read::Results;

/// One strategy's table row (a failed or pending one says why).
fn strategy_row(row: &crate::Row) -> String {
    if row.status != Status::Ok {
        return format!(
            "| {} | | | | | | | | | {}: {} |",
            row.strategy,
            if row.status == Status::Failed {
                "failed"
            } else {
                "not run"
            },
            row.error.as_deref().unwrap_or("").replace('|', "/")
        );
    }
    format!(
        "| {} | {} | {} | {} | {} | {:.1}% | {} | {:.3} | {} ({}) | {} |",
        row.strategy,
        row.trainable_params,
        seconds(row.seconds),
        row.training_rate(),
        row.select_accuracy
            .map(|a| format!("{:.1}%", 100.0 * a))
            .unwrap_or_default(),
        100.0 * row.val_accuracy,
        row.val_top5
            .map(|t| format!("{:.1}%", 100.0 * t))
            .unwrap_or_default(),
        row.macro_f1,
        row.epochs_run,
        row.best_epoch + usize::from(row.epochs_run > 0),
        row.stopped.replace('_', " ")
    )
}

pub fn compare(r: &Results, plots: &[(String, String)]) -> String {
    let m = &r.manifest;
    let mut s = format!(
        "# Which strategy for {}?\n\n{}\n\n**{}**\n\n## Dataset\n\n| class |",
        m.data.display(),
        m.question,
        r.conclusion
    );
    for sp in &m.splits {
        let _ = write!(s, " {} |", sp.name);
    }
    s += "\n|---|";
    s += &"---:|".repeat(m.splits.len());
    s += "\n";
    for (i, c) in m.classes.iter().enumerate() {
        let _ = write!(s, "| {c} |");
        for sp in &m.splits {
            let _ = write!(s, " {} |", sp.per_class.get(i).copied().unwrap_or(0));
        }
        s += "\n";
    }
    let _ = write!(
        s,
        "\n## Strategies\n\nSeed {}, at most {} epochs{} per strategy. Times are wall-clock in this run, frozen features included; strategies share the feature cache.\n\n| strategy | trainable parameters | time | training images/s | accuracy on the selection split (ranks) | accuracy on the reported split | top-5 | macro-F1 | epochs run (best, from 1) | notes |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
        m.budget.seed,
        m.budget.max_epochs,
        m.budget
            .seconds_per_strategy
            .map(|x| format!(" and {} of training", seconds(x)))
            .unwrap_or_default()
    );
    for row in &r.rows {
        let _ = writeln!(s, "{}", strategy_row(row));
    }
    s += "\n## Plots\n\n";
    for (name, _) in plots {
        let _ = writeln!(s, "![{name}](plots/{name}.svg)");
    }
    if !r.mistakes.is_empty() {
        let _ = write!(
            s,
            "\n## Most confident mistakes of {}\n\n",
            r.best.as_deref().unwrap_or("")
        );
        for p in &r.mistakes {
            let _ = writeln!(
                s,
                "- {} ({}, taken for {} at {:.0}%)",
                p.path,
                p.label,
                p.predicted,
                100.0 * p.confidence
            );
        }
    }
    s
}
