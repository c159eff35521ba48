//! What a finished run leaves behind: `result.json` (the numbers reports read),
//! `predictions.csv` (the best model's answer for every validation image) and a text summary.

use std::path::{Path, PathBuf};
use std::time::Instant;

use graft_data::Dataset;
use graft_report::csv::quote;
use graft_transfer::FreezePlan;
use graft_transfer::metrics::top_k_accuracy;
use graft_transfer::train::Fitted;
use serde_json::json;

use super::Settings;
use crate::run_dir;
use crate::settings::LoadedModel;

/// A finished run: the summary written to `result.json`, the text for people, and how many
/// inputs could not be read.
pub struct Trained {
    pub summary: serde_json::Value,
    pub text: String,
    pub failed: usize,
}

pub struct RunFacts<'a> {
    pub settings: &'a Settings,
    pub model: &'a LoadedModel,
    pub plan: &'a FreezePlan,
    pub ds: &'a Dataset,
    pub dir: &'a Path,
    pub n_train: usize,
    /// The validation images that were read, in the order of `Fitted::val_probs`.
    pub val_paths: &'a [PathBuf],
    pub val_y: &'a [usize],
    pub failed: &'a [&'a (PathBuf, String)],
    /// Feature cache (hits, computed, rebuilt).
    pub cache: (usize, usize, usize),
    pub trainable_params: usize,
    /// Seconds spent in the training loop (the rest went to frozen features and saving).
    pub train_seconds: f64,
    pub start: Instant,
}

/// `path,label,predicted,confidence,label_probability,label_rank` for every validation image.
fn predictions_csv(f: &RunFacts<'_>, probs: &[Vec<f32>]) -> String {
    let classes = &f.ds.classes;
    let mut s = String::from("path,label,predicted,confidence,label_probability,label_rank\n");
    for ((path, &y), row) in f.val_paths.iter().zip(f.val_y).zip(probs) {
        let (pred, conf) =
            row.iter().enumerate().fold(
                (0, f32::NEG_INFINITY),
                |b, (i, &v)| if v > b.1 { (i, v) } else { b },
            );
        let p = row.get(y).copied().unwrap_or(0.0);
        let rank = row.iter().filter(|&&v| v > p).count() + 1;
        s += &format!(
            "{},{},{},{conf:.6},{p:.6},{rank}\n",
            quote(&path.display().to_string()),
            quote(&classes[y]),
            quote(&classes[pred])
        );
    }
    s
}

/// Writes `result.json` and `predictions.csv` into the run directory.
pub fn finish(f: &RunFacts<'_>, outcome: &Fitted) -> anyhow::Result<Trained> {
    let seconds = f.start.elapsed().as_secs_f64();
    let classes = &f.ds.classes;
    let epochs_run = outcome.history.len();
    let top5 = (classes.len() > 5).then(|| top_k_accuracy(&outcome.val_probs, f.val_y, 5));
    let summary = json!({
        "strategy": f.settings.strategy.to_string(),
        "model": f.model.spec.name,
        "trained_groups": f.plan.trainable,
        "frozen_groups": f.plan.frozen,
        "trainable_params": f.trainable_params,
        "train_images": f.n_train,
        "val_images": f.val_y.len(),
        "val_split": f.ds.val_name,
        "val_accuracy": outcome.best_val_accuracy,
        "val_top5": top5,
        "macro_f1": outcome.confusion.macro_f1(),
        "best_epoch": outcome.best_epoch,
        "epochs_run": epochs_run,
        "stopped": outcome.stopped,
        "time_budget_s": f.settings.head.time_budget_s,
        "seconds": seconds,
        "train_seconds": f.train_seconds,
        "images_per_s": if f.train_seconds > 0.0 { (f.n_train * epochs_run) as f64 / f.train_seconds } else { 0.0 },
        "run_dir": f.dir,
        "unreadable": f.failed.iter().map(|(p, e)| json!({"path": p, "error": e})).collect::<Vec<_>>(),
        "cache": {"hits": f.cache.0, "computed": f.cache.1, "rebuilt": f.cache.2},
        "classes": classes,
        "per_class": classes.iter().enumerate().map(|(i, c)| json!({
            "class": c, "precision": outcome.confusion.precision(i), "recall": outcome.confusion.recall(i),
            "images": outcome.confusion.matrix[i].iter().sum::<usize>(),
        })).collect::<Vec<_>>(),
        "confusion": outcome.confusion.matrix,
    });
    run_dir::write_atomic(
        &f.dir.join("predictions.csv"),
        predictions_csv(f, &outcome.val_probs).as_bytes(),
    )?;
    run_dir::write_atomic(
        &f.dir.join("result.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    let text = format!(
        "{} {} on {}: {} accuracy {:.2}% ({} images) at epoch {}, {} training images, {:.1} s\n\n{}",
        f.model.spec.name,
        f.settings.strategy,
        f.settings.data.display(),
        f.ds.val_name,
        100.0 * outcome.best_val_accuracy,
        f.val_y.len(),
        outcome.best_epoch,
        f.n_train,
        seconds,
        outcome.confusion.render(classes)
    );
    Ok(Trained {
        summary,
        text,
        failed: f.failed.len(),
    })
}
