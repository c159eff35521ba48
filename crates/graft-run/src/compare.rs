//! `compare`: every strategy on the user's data under one declared budget, then one report.
//! Each strategy is an ordinary training run in `DIR/runs/<strategy>/`; frozen prefixes they
//! share come from the feature cache. A strategy that fails is a failed row, not a lost report.

use std::path::{Path, PathBuf};
use std::time::Instant;

use graft_data::Dataset;
use graft_report::{Budget, Manifest, Results, RunEntry, SplitCount, Status};
use graft_spec::io::write_json;
use graft_spec::{FitConfig, Strategy, defaults};
use serde::{Deserialize, Serialize};

use crate::error::{Context, Result};
use crate::observer::{Observer, ObserverExt};
use crate::pretrained::LoadedModel;
use crate::spec::RunSpec;
use crate::study::{self, Study, StudySpec};
use crate::train::{class_mapping, train_with};
use crate::{ensure, thumbs};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompareSpec {
    pub study: StudySpec,
    /// `None`: [`default_strategies`].
    pub strategies: Option<Vec<Strategy>>,
    pub epochs: usize,
    /// Seconds of training per strategy.
    pub budget_s: f64,
    pub patience: usize,
    pub class_map: Option<PathBuf>,
}

impl CompareSpec {
    pub fn new(study: StudySpec) -> Self {
        Self {
            study,
            strategies: None,
            epochs: defaults::EPOCHS,
            budget_s: defaults::COMPARE_BUDGET_S,
            patience: defaults::PATIENCE,
            class_map: None,
        }
    }
}

/// A finished compare: the report's contents and how many strategies failed.
pub struct Compared {
    pub results: Results,
    pub failed: usize,
    pub dir: PathBuf,
}

/// The default line-up: pretrained (when the classes map onto ImageNet's), head, partial:1,
/// partial:2, partial:<half the groups>, scratch.
pub fn default_strategies(groups: usize, pretrained: bool) -> Vec<Strategy> {
    let mut out = Vec::new();
    if pretrained {
        out.push(Strategy::Pretrained);
    }
    out.push(Strategy::Head);
    for n in [1, 2, groups / 2] {
        if n >= 1 && n < groups && !out.contains(&Strategy::Partial(n)) {
            out.push(Strategy::Partial(n));
        }
    }
    out.push(Strategy::Scratch);
    out
}

/// Where a strategy's run goes, relative to the compare directory (no `:` in file names).
pub fn run_subdir(s: Strategy) -> String {
    format!("runs/{}", s.to_string().replace(':', "-"))
}

/// A strategy's run settings: `train`'s defaults, with the study's seed and split and the
/// compare's budget.
pub fn strategy_spec(
    study: &Study,
    strategy: Strategy,
    out: PathBuf,
    fit: FitConfig,
    label: String,
) -> RunSpec {
    RunSpec {
        out: Some(out),
        force: true,
        val_fraction: study.val_fraction,
        select_fraction: study.protocol.select_fraction,
        select_on_eval: study.protocol.select_on_eval,
        label,
        fit: FitConfig {
            seed: study.seed,
            ..fit
        },
        ..RunSpec::new(study.data.clone(), strategy)
    }
}

/// The order strategies run in, and the lower freeze point each may start from: partial
/// strategies from the most groups down (each starts from the previous one's cached
/// activations), then head (its validation features from the last partial's), then the rest.
pub fn run_order(strategies: &[Strategy], groups: usize) -> Vec<(usize, Option<usize>)> {
    let mut partials: Vec<(usize, usize)> = strategies
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            Strategy::Partial(n) => Some((i, *n)),
            _ => None,
        })
        .collect();
    partials.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
    let mut order = Vec::new();
    let mut lowest: Option<usize> = None;
    for (i, n) in partials {
        order.push((i, lowest));
        lowest = Some(groups - n);
    }
    for (i, s) in strategies.iter().enumerate() {
        match s {
            Strategy::Head => order.push((i, lowest)),
            Strategy::Partial(_) => {}
            _ => order.push((i, None)),
        }
    }
    order.sort_by_key(|&(i, _)| match strategies[i] {
        Strategy::Partial(_) | Strategy::Head => 0,
        Strategy::Pretrained => 1,
        Strategy::Scratch => 2,
    });
    order
}

fn counts(ds: &Dataset) -> Vec<SplitCount> {
    let mut splits = vec![("train", &ds.train)];
    if ds.selection != graft_data::Selection::Report {
        splits.push((ds.select_name(), &ds.select));
    }
    splits.push((ds.val_name.as_str(), &ds.val));
    splits
        .into_iter()
        .map(|(name, samples)| {
            let mut per_class = vec![0; ds.classes.len()];
            for s in samples.iter() {
                per_class[s.class] += 1;
            }
            SplitCount {
                name: name.to_string(),
                per_class,
            }
        })
        .collect()
}

/// Two training images per class (at most 24 in all), for the report's dataset section.
fn examples(ds: &Dataset) -> Vec<(String, PathBuf)> {
    let per_class = (24 / ds.classes.len().max(1)).clamp(1, 2);
    let mut out = Vec::new();
    for (c, name) in ds.classes.iter().enumerate() {
        out.extend(
            ds.train
                .iter()
                .filter(|s| s.class == c)
                .take(per_class)
                .map(|s| (name.clone(), s.path.clone())),
        );
    }
    out
}

fn save_manifest(dir: &Path, m: &Manifest) -> Result<()> {
    write_json(&dir.join("compare.json"), m)?;
    Ok(())
}

/// The strategies to run: the given ones, or the default line-up (pretrained only where the
/// classes map onto ImageNet's).
fn line_up(
    spec: &CompareSpec,
    ds: &Dataset,
    model: &LoadedModel,
    obs: &mut dyn Observer,
) -> Result<Vec<Strategy>> {
    let groups = model.net.group_names();
    let strategies = match &spec.strategies {
        Some(list) => list.clone(),
        None => {
            let mappable = class_mapping(&ds.classes, spec.class_map.as_deref()).is_ok();
            if !mappable {
                obs.log(
                    "pretrained left out: your class names do not map onto ImageNet's (give --class-map to include it)",
                );
            }
            default_strategies(groups.len(), mappable)
        }
    };
    ensure!(!strategies.is_empty(), "--strategies lists no strategy");
    for s in &strategies {
        s.plan(&groups)?;
    }
    Ok(strategies)
}

fn manifest(spec: &CompareSpec, study: &Study, strategies: &[Strategy]) -> Manifest {
    Manifest {
        question: format!(
            "Which way of reusing {} (pretrained on ImageNet) works best on these images: as it is, a new head, fine-tuning the top block groups, or training from scratch?",
            study.model.spec.name
        ),
        model: study.model.spec.name.to_string(),
        data: study.data.clone(),
        classes: study.ds.classes.clone(),
        splits: counts(&study.ds),
        budget: Budget {
            max_epochs: spec.epochs,
            seconds_per_strategy: Some(spec.budget_s),
            seed: study.seed,
        },
        runs: strategies
            .iter()
            .map(|&s| RunEntry {
                strategy: s.to_string(),
                dir: run_subdir(s),
                status: Status::Pending,
                error: None,
            })
            .collect(),
        examples: examples(&study.ds),
        thumbnails: Default::default(),
    }
}

/// Runs every strategy into `DIR/runs/`, then writes the report into `DIR`.
pub fn compare(spec: &CompareSpec, obs: &mut dyn Observer) -> Result<Compared> {
    let start = Instant::now();
    ensure!(
        spec.budget_s > 0.0 && spec.budget_s.is_finite(),
        "--budget must be a positive number of seconds, not {}",
        spec.budget_s
    );
    ensure!(spec.epochs > 0, "--epochs must be at least 1");
    // Checked before the folder is made: a bad line-up writes nothing.
    let check = |ds: &Dataset, m: &LoadedModel| line_up(spec, ds, m, &mut crate::Silent).map(drop);
    let study = study::open(&spec.study, "compare", &check, obs)?;
    let strategies = line_up(spec, &study.ds, &study.model, obs)?;
    let dir = study.dir.clone();
    let mut manifest = manifest(spec, &study, &strategies);
    let example_paths: Vec<PathBuf> = manifest.examples.iter().map(|e| e.1.clone()).collect();
    thumbs::make(&dir, &example_paths, &mut manifest.thumbnails, obs);
    save_manifest(&dir, &manifest)?;
    let n = strategies.len();
    let groups = study.model.net.group_names().len();
    let mut failed = 0;
    for (k, (i, reuse_from)) in run_order(&strategies, groups).into_iter().enumerate() {
        let strategy = strategies[i];
        let left = (n - k) as f64 * spec.budget_s;
        obs.log(format!(
            "[{}/{n}] {strategy}: at most {} epochs and {:.0} s of training ({:.1} min elapsed, at most ~{:.0} min of training left)",
            k + 1,
            spec.epochs,
            spec.budget_s,
            start.elapsed().as_secs_f64() / 60.0,
            left / 60.0
        ));
        let fit = FitConfig {
            epochs: spec.epochs,
            patience: spec.patience,
            time_budget_s: Some(spec.budget_s),
            ..FitConfig::default()
        };
        let label = format!("[{}/{n} {strategy}] ", k + 1);
        let run = RunSpec {
            reuse_from,
            class_map: spec.class_map.clone(),
            ..strategy_spec(&study, strategy, dir.join(run_subdir(strategy)), fit, label)
        };
        let entry = &mut manifest.runs[i];
        match train_with(&run, study.model.clone(), obs) {
            Ok(done) => {
                entry.status = Status::Ok;
                let r = &done.result;
                let select = r.selection.as_ref().map_or(String::new(), |s| {
                    format!("{:.1}% on {} (ranks), ", 100.0 * s.accuracy, s.split)
                });
                obs.log(format!(
                    "[{}/{n}] {strategy}: {select}{:.1}% on {} in {:.1} s",
                    k + 1,
                    100.0 * r.val_accuracy,
                    r.val_split,
                    r.seconds
                ));
            }
            Err(e) => {
                failed += 1;
                obs.warn(format!("[{}/{n}] {strategy} failed: {e}", k + 1));
                entry.status = Status::Failed;
                entry.error = Some(e.to_string());
            }
        }
        save_manifest(&dir, &manifest)?;
    }
    let results = graft_report::collect(&dir)?;
    let mistakes: Vec<PathBuf> = results
        .mistakes
        .iter()
        .map(|p| PathBuf::from(&p.path))
        .collect();
    thumbs::make(&dir, &mistakes, &mut manifest.thumbnails, obs);
    save_manifest(&dir, &manifest)?;
    let results = graft_report::collect(&dir)?;
    graft_report::write(&dir, &results).context(|| "cannot write the report".into())?;
    Ok(Compared {
        results,
        failed,
        dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partials_run_from_the_most_groups_down_each_starting_from_the_previous() {
        let s = default_strategies(9, true);
        assert_eq!(
            s,
            [
                Strategy::Pretrained,
                Strategy::Head,
                Strategy::Partial(1),
                Strategy::Partial(2),
                Strategy::Partial(4),
                Strategy::Scratch
            ]
        );
        let order: Vec<(String, Option<usize>)> = run_order(&s, 9)
            .into_iter()
            .map(|(i, q)| (s[i].to_string(), q))
            .collect();
        let expect = [
            ("partial:4", None),
            ("partial:2", Some(5)),
            ("partial:1", Some(7)),
            ("head", Some(8)),
            ("pretrained", None),
            ("scratch", None),
        ];
        assert_eq!(order, expect.map(|(a, b)| (a.to_string(), b)).to_vec());
    }
}
