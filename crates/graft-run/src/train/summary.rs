//! The finish step: `result.json` (the numbers reports read), `predictions.csv` (the chosen
//! model's answer for every image of the reported split), the trained model, and a text
//! summary that says which split chose what and which split the figure comes from.

use std::path::{Path, PathBuf};
use std::time::Instant;

use graft_data::Dataset;
use graft_spec::files::PREDICTIONS;
use graft_spec::{
    CacheCounts, ClassResult, FreezePlan, Prediction, RunResult, Selected, Strategy, Tta,
    Unreadable,
};
use graft_transfer::metrics::top_k_accuracy;
use graft_transfer::train::{Evaluation, Fitted};

use super::{Earlier, FitDone};
use crate::artifact;
use crate::error::Result;
use crate::observer::Observer;

/// A finished run: its `result.json`, the text for people, and how many inputs could not be
/// read.
pub struct Trained {
    pub result: RunResult,
    pub text: String,
    pub failed: usize,
    pub dir: PathBuf,
}

/// What [`summarise`] needs to know of a run, whatever trained it.
pub(crate) struct RunFacts<'a> {
    pub strategy: Strategy,
    pub model: &'static str,
    pub data: &'a Path,
    pub plan: &'a FreezePlan,
    pub ds: &'a Dataset,
    pub dir: &'a Path,
    pub n_train: usize,
    /// The selection split's images that were read.
    pub n_select: usize,
    /// What was chosen where, when the fit says so itself (L-BFGS's cross-validated `C`).
    pub selected: Option<Selected>,
    /// The reported split's images that were read, in the order of the report's `probs`.
    pub val_paths: &'a [PathBuf],
    pub val_y: &'a [usize],
    /// The views each reported image's probabilities average.
    pub tta: Tta,
    pub failed: &'a [(PathBuf, String)],
    pub cache: CacheCounts,
    pub trainable_params: usize,
    pub time_budget_s: Option<f64>,
    /// Over the whole run, a resumed one's epochs before this process included.
    pub train_seconds: f64,
    pub start: Instant,
    /// What a resumed run had done before this process.
    pub earlier: Earlier,
}

fn predictions(f: &RunFacts<'_>, probs: &[Vec<f32>]) -> Vec<Prediction> {
    let classes = &f.ds.classes;
    f.val_paths
        .iter()
        .zip(f.val_y)
        .zip(probs)
        .map(|((path, &y), row)| {
            let (pred, conf) = row
                .iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |b, (i, &v)| if v > b.1 { (i, v) } else { b },
                );
            let p = row.get(y).copied().unwrap_or(0.0);
            Prediction {
                path: path.display().to_string(),
                label: classes[y].clone(),
                predicted: classes[pred].clone(),
                confidence: f64::from(conf),
                label_probability: f64::from(p),
                label_rank: row.iter().filter(|&&v| v > p).count() + 1,
            }
        })
        .collect()
}

/// What the run chose on its selection split, and how the chosen model did there.
fn selected(f: &RunFacts<'_>, fit: &Fitted) -> Selected {
    Selected {
        split: f.ds.select_name().to_string(),
        source: f.ds.selection.clone(),
        images: f.n_select,
        accuracy: fit.best_val_accuracy,
        chose: if fit.history.is_empty() {
            "nothing (no training)".into()
        } else {
            format!("epoch {}", fit.best_epoch)
        },
    }
}

/// Writes `result.json` and `predictions.csv` into the run directory: the figures are the
/// chosen model's on the reported split (`report`), the decisions `outcome`'s.
pub(crate) fn summarise(
    f: &RunFacts<'_>,
    outcome: &Fitted,
    report: &Evaluation,
) -> Result<Trained> {
    let seconds = f.earlier.seconds + f.start.elapsed().as_secs_f64();
    let classes = &f.ds.classes;
    let epochs_run = f.earlier.epochs + outcome.history.len();
    let c = &report.confusion;
    let selection = f.selected.clone().unwrap_or_else(|| selected(f, outcome));
    let result = RunResult {
        format: graft_spec::FORMAT,
        strategy: f.strategy,
        model: f.model.to_string(),
        trained_groups: f.plan.trainable.clone(),
        frozen_groups: f.plan.frozen.clone(),
        trainable_params: f.trainable_params,
        train_images: f.n_train,
        val_images: f.val_y.len(),
        val_split: f.ds.val_name.clone(),
        val_accuracy: c.accuracy(),
        val_top5: (classes.len() > 5).then(|| top_k_accuracy(&report.probs, f.val_y, 5)),
        macro_f1: c.macro_f1(),
        best_epoch: outcome.best_epoch,
        epochs_run,
        stopped: outcome.stopped,
        time_budget_s: f.time_budget_s,
        seconds,
        train_seconds: f.train_seconds,
        images_per_s: if f.train_seconds > 0.0 {
            (f.n_train * epochs_run) as f64 / f.train_seconds
        } else {
            0.0
        },
        run_dir: f.dir.to_path_buf(),
        unreadable: f
            .failed
            .iter()
            .map(|(p, e)| Unreadable {
                path: p.clone(),
                error: e.clone(),
            })
            .collect(),
        cache: f.cache,
        classes: classes.clone(),
        per_class: (0..classes.len())
            .map(|i| ClassResult {
                class: classes[i].clone(),
                precision: c.precision(i),
                recall: c.recall(i),
                images: c.matrix[i].iter().sum(),
            })
            .collect(),
        confusion: c.matrix.clone(),
        selection: Some(selection.clone()),
        tta: f.tta,
    };
    Prediction::write_all(&f.dir.join(PREDICTIONS), &predictions(f, &report.probs))?;
    result.write(f.dir)?;
    let tta = match f.tta {
        Tta::None => String::new(),
        t => format!(" (test-time augmentation: {t})"),
    };
    let text = format!(
        "{} {} on {}: {} accuracy {:.2}%{tta} ({} images); {}; {} training images, {:.1} s\n\n{}",
        f.model,
        f.strategy,
        f.data.display(),
        f.ds.val_name,
        100.0 * result.val_accuracy,
        f.val_y.len(),
        selection.describe(),
        f.n_train,
        seconds,
        c.render(classes)
    );
    Ok(Trained {
        result,
        text,
        failed: f.failed.len(),
        dir: f.dir.to_path_buf(),
    })
}

/// Writes the trained model (`model.safetensors` + `model.json`), then the run's results.
pub fn finish(done: FitDone, _obs: &mut dyn Observer) -> Result<Trained> {
    let x = &done.data;
    let run = &x.run;
    let net = done.net.as_ref().unwrap_or(&run.model.net);
    artifact::save(
        &run.dir,
        &run.model,
        net,
        &done.head,
        &done.config,
        Some(done.report.confusion.accuracy()),
    )?;
    summarise(
        &RunFacts {
            strategy: run.spec.strategy,
            model: run.model.spec.name,
            data: &run.spec.data,
            plan: &run.plan,
            ds: &run.ds,
            dir: &run.dir,
            n_train: done.trained_on,
            n_select: x.select.y.len(),
            selected: done.selected.clone(),
            val_paths: &x.val.paths,
            val_y: &x.val.y,
            tta: run.spec.tta,
            failed: &x.failed,
            cache: x.cache,
            trainable_params: done.trainable_params,
            time_budget_s: run.spec.fit.time_budget_s,
            train_seconds: done.train_seconds,
            start: run.start,
            earlier: done.earlier,
        },
        &done.outcome,
        &done.report,
    )
}
