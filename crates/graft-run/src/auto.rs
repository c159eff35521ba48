//! `auto`: the probe (its last point is a head trained on the frozen backbone) and, where it
//! can change the choice, a fine-tuning candidate trained in full (in `RUN_DIR/trial/`, with
//! the final run's settings, so its figure is the one a full run gets) are the evidence;
//! `graft_transfer::auto::decide` picks the strategy. A chosen candidate is kept, not trained
//! again; a chosen head is trained. The explanation goes to `auto.md` and `auto.json` in the
//! run directory.

use std::path::PathBuf;

use graft_spec::io::{write_atomic, write_json};
use graft_spec::{FitConfig, ProbeGroup, RunResult, Strategy};
use graft_transfer::auto::{Decision, Evidence, candidate, decide, wants_trial};
use serde::{Deserialize, Serialize};

use crate::compare::strategy_spec;
use crate::ensure;
use crate::error::{Result, RunError};
use crate::observer::{Observer, ObserverExt};
use crate::probe::probe_into;
use crate::run_dir;
use crate::study::{self, Study, StudySpec};
use crate::train::train_with;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AutoSpec {
    pub study: StudySpec,
    /// Epochs of the chosen strategy's training.
    pub epochs: usize,
}

/// What `auto.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AutoReport {
    pub strategy: Strategy,
    pub rule: String,
    pub explanation: String,
    pub evidence: AutoEvidence,
    pub probe: Vec<ProbeGroup>,
    pub result: RunResult,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AutoEvidence {
    pub train_images: usize,
    pub classes: usize,
    pub groups: usize,
    pub probe_retrain: usize,
    pub head_accuracy: f64,
    /// Images of the selection split the accuracies are measured on.
    pub select_images: usize,
    pub trial: Option<TrialResult>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrialResult {
    pub strategy: Strategy,
    /// On the selection split (the name predates the protocol).
    pub val_accuracy: f64,
}

/// An `auto` run: the report and how many images could not be read.
pub struct Auto {
    pub report: AutoReport,
    pub failed: usize,
    pub dir: PathBuf,
}

/// The fine-tuning candidate, trained in full into `RUN_DIR/trial/` with the final run's
/// settings: the run, whose selection-split accuracy is the evidence.
fn run_trial(
    study: &Study,
    strategy: Strategy,
    fit: FitConfig,
    obs: &mut dyn Observer,
) -> Result<RunResult> {
    obs.log(format!(
        "auto: fine-tuning candidate {strategy}, trained in full (kept if chosen)"
    ));
    let label = format!("auto candidate {strategy}: ");
    let run = strategy_spec(study, strategy, study.dir.join("trial"), fit, label);
    Ok(train_with(&run, study.model.clone(), obs)?.result)
}

/// Evidence for a decision: the selection split's figure, never the reported one's.
fn selection_accuracy(r: &RunResult) -> f64 {
    r.selection.as_ref().map_or(r.val_accuracy, |s| s.accuracy)
}

/// `auto.md`: the choice, its explanation and the evidence.
fn markdown(
    decision: &Decision,
    evidence: &Evidence,
    explanation: &str,
    curve: &[ProbeGroup],
) -> String {
    let rows: String = curve
        .iter()
        .map(|g| format!("| {} | {:.1}% |\n", g.group, 100.0 * g.val_accuracy))
        .collect();
    let candidate = evidence.trial.map_or(String::new(), |(s, acc)| {
        format!(
            "- fine-tuning candidate `{s}`: {:.1}% (the head: {:.1}%)\n",
            100.0 * acc,
            100.0 * evidence.head_accuracy
        )
    });
    format!(
        "# graft auto: {}\n\n{explanation}\n\n## Evidence\n\n- training images: {}\n- classes: {}\n- selection images: {}\n{candidate}- rule: `{}`\n\n| group | probe accuracy |\n|---|---:|\n{rows}",
        decision.strategy,
        evidence.train_images,
        evidence.classes,
        evidence.select_images,
        decision.rule
    )
}

pub fn auto(spec: &AutoSpec, obs: &mut dyn Observer) -> Result<Auto> {
    ensure!(spec.epochs > 0, "--epochs must be at least 1");
    let study = study::open(&spec.study, "auto", &|_, _| Ok(()), obs)?;
    let dir = study.dir.clone();
    let probe_dir = dir.join("probe");
    std::fs::create_dir_all(&probe_dir).map_err(RunError::io(&probe_dir))?;
    obs.log("auto: probing every block group (a linear classifier on each)");
    let (probe, failed) = probe_into(&probe_dir, &study, graft_spec::defaults::PROBE_EPOCHS, obs)?;
    let retrain = match probe.recommendation.as_ref().map(|r| r.strategy) {
        Some(Strategy::Partial(n)) => n,
        _ => 0,
    };
    let head_accuracy = probe.groups.last().map_or(0.0, |g| g.val_accuracy);
    let (train_images, classes) = (study.ds.all_train().len(), study.ds.classes.len());
    let groups = study.model.net.group_names().len();
    let fit = FitConfig {
        epochs: spec.epochs,
        patience: graft_spec::defaults::PATIENCE,
        ..FitConfig::default()
    };
    let trial = if wants_trial(train_images, classes, head_accuracy) {
        Some(run_trial(
            &study,
            candidate(retrain, groups),
            fit.clone(),
            obs,
        )?)
    } else {
        None
    };
    let evidence = Evidence {
        train_images,
        classes,
        groups,
        probe_retrain: retrain,
        head_accuracy,
        select_images: probe.split_images,
        trial: trial.as_ref().map(|r| (r.strategy, selection_accuracy(r))),
    };
    let decision = decide(&evidence);
    obs.log(format!("auto: {} ({})", decision.strategy, decision.rule));
    let (result, trained_failed) = match trial {
        Some(r) if r.strategy == decision.strategy => {
            obs.log(format!(
                "auto: keeping the candidate trained in {}",
                r.run_dir.display()
            ));
            let unreadable = r.unreadable.len();
            (run_dir::adopt(&r.run_dir, &dir)?, unreadable)
        }
        _ => {
            let label = format!("auto {}: ", decision.strategy);
            let run = strategy_spec(&study, decision.strategy, dir.clone(), fit, label);
            let done = train_with(&run, study.model.clone(), obs)?;
            (done.result, done.failed)
        }
    };
    let explanation = format!(
        "{} The evidence is measured on the {} split; the result on {}, which no decision read: {} reaches {:.1}% on the {} images ({}).",
        decision.explanation,
        study.ds.select_name(),
        study.ds.val_name,
        decision.strategy,
        100.0 * result.val_accuracy,
        study.ds.val_name,
        dir.display()
    );
    write_atomic(
        &dir.join("auto.md"),
        markdown(&decision, &evidence, &explanation, &probe.groups).as_bytes(),
    )?;
    let report = AutoReport {
        strategy: decision.strategy,
        rule: decision.rule.to_string(),
        explanation,
        evidence: AutoEvidence {
            train_images: evidence.train_images,
            classes: evidence.classes,
            groups: evidence.groups,
            probe_retrain: evidence.probe_retrain,
            head_accuracy: evidence.head_accuracy,
            select_images: evidence.select_images,
            trial: evidence.trial.map(|(strategy, val_accuracy)| TrialResult {
                strategy,
                val_accuracy,
            }),
        },
        probe: probe.groups,
        result,
    };
    write_json(&dir.join("auto.json"), &report)?;
    Ok(Auto {
        report,
        failed: failed + trained_failed,
        dir,
    })
}
