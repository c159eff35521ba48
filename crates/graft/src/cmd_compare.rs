//! `graft compare`: every strategy on the user's data under one declared budget, then one
//! report. Each strategy is a `graft train` run in `DIR/runs/<strategy>/`; frozen prefixes they
//! share come from the feature cache. A strategy that fails is a failed row, not a lost report.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use graft_data::{Dataset, SplitOptions, open_dataset};
use graft_report::{Budget, Manifest, RunEntry, SplitCount, Status};
use graft_transfer::Strategy;
use graft_transfer::train::HeadConfig;

use crate::args::{CompareArgs, DataArgs, ModelArgs};
use crate::progress::log;
use crate::run_dir;
use crate::settings::load_pretrained;
use crate::thumbs;
use crate::train::{self, Settings, pretrained::class_mapping};

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

/// A strategy's settings: `graft train`'s defaults, with the compare's seed and budget.
#[allow(clippy::too_many_arguments)]
pub fn strategy_settings(
    model: &ModelArgs,
    data: &DataArgs,
    strategy: Strategy,
    out: PathBuf,
    epochs: usize,
    patience: usize,
    budget_s: Option<f64>,
    class_map: Option<PathBuf>,
    label: String,
) -> Settings {
    Settings {
        model: model.clone(),
        data: data.data.clone(),
        strategy,
        out: Some(out),
        force: true,
        resume: false,
        head: HeadConfig {
            epochs,
            patience,
            seed: data.seed,
            time_budget_s: budget_s,
            ..HeadConfig::default()
        },
        val_fraction: data.val_fraction,
        cached_views: None,
        class_map,
        strict: false,
        label,
        reuse_from: None,
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
    [("train", &ds.train), (ds.val_name.as_str(), &ds.val)]
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

fn save_manifest(dir: &Path, m: &Manifest) -> anyhow::Result<()> {
    run_dir::write_atomic(
        &dir.join("compare.json"),
        serde_json::to_string_pretty(m)?.as_bytes(),
    )
}

pub fn run(args: &CompareArgs, quiet: bool) -> anyhow::Result<usize> {
    let start = Instant::now();
    anyhow::ensure!(
        args.budget > 0.0 && args.budget.is_finite(),
        "--budget must be a positive number of seconds, not {}",
        args.budget
    );
    anyhow::ensure!(args.epochs > 0, "--epochs must be at least 1");
    // The dataset first: a dataset that cannot be split is refused before anything is written.
    let ds = open_dataset(
        &args.data.data,
        SplitOptions {
            val_fraction: args.data.val_fraction,
            seed: args.data.seed,
        },
    )?;
    let model = load_pretrained(&args.model, quiet)?;
    let groups = model.net.group_names().len();
    let strategies: Vec<Strategy> = match &args.strategies {
        Some(list) => list
            .iter()
            .map(|s| s.parse().map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<_>>()?,
        None => {
            let mappable = class_mapping(&ds.classes, args.class_map.as_deref()).is_ok();
            if !mappable {
                log(
                    quiet,
                    "pretrained left out: your class names do not map onto ImageNet's (give --class-map to include it)",
                );
            }
            default_strategies(groups, mappable)
        }
    };
    anyhow::ensure!(!strategies.is_empty(), "--strategies lists no strategy");
    for s in &strategies {
        s.plan(&model.net.group_names())
            .map_err(anyhow::Error::msg)?;
    }
    let dir = run_dir::create(Some(&args.out), "", args.data.force)?;
    let mut manifest = Manifest {
        question: format!(
            "Which way of reusing {} (pretrained on ImageNet) works best on these images: as it is, a new head, fine-tuning the top block groups, or training from scratch?",
            model.spec.name
        ),
        model: model.spec.name.to_string(),
        data: args.data.data.clone(),
        classes: ds.classes.clone(),
        splits: counts(&ds),
        budget: Budget {
            max_epochs: args.epochs,
            seconds_per_strategy: Some(args.budget),
            seed: args.data.seed,
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
        examples: examples(&ds),
        thumbnails: Default::default(),
    };
    let example_paths: Vec<PathBuf> = manifest.examples.iter().map(|e| e.1.clone()).collect();
    thumbs::make(&dir, &example_paths, &mut manifest.thumbnails);
    save_manifest(&dir, &manifest)?;

    let n = strategies.len();
    let mut failed = 0;
    for (k, (i, reuse_from)) in run_order(&strategies, groups).into_iter().enumerate() {
        let strategy = strategies[i];
        let left = (n - k) as f64 * args.budget;
        log(
            quiet,
            format!(
                "[{}/{n}] {strategy}: at most {} epochs and {:.0} s of training ({:.1} min elapsed, at most ~{:.0} min of training left)",
                k + 1,
                args.epochs,
                args.budget,
                start.elapsed().as_secs_f64() / 60.0,
                left / 60.0
            ),
        );
        let settings = Settings {
            reuse_from,
            ..strategy_settings(
                &args.model,
                &args.data,
                strategy,
                dir.join(run_subdir(strategy)),
                args.epochs,
                args.patience,
                Some(args.budget),
                args.class_map.clone(),
                format!("[{}/{n} {strategy}] ", k + 1),
            )
        };
        let entry = &mut manifest.runs[i];
        match train::execute(&settings, model.clone(), quiet) {
            Ok(done) => {
                entry.status = Status::Ok;
                log(
                    quiet,
                    format!(
                        "[{}/{n}] {strategy}: {:.1}% in {:.1} s",
                        k + 1,
                        100.0 * done.summary["val_accuracy"].as_f64().unwrap_or(0.0),
                        done.summary["seconds"].as_f64().unwrap_or(0.0)
                    ),
                );
            }
            Err(e) => {
                failed += 1;
                eprintln!("[{}/{n}] {strategy} failed: {e:#}", k + 1);
                entry.status = Status::Failed;
                entry.error = Some(format!("{e:#}"));
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
    thumbs::make(&dir, &mistakes, &mut manifest.thumbnails);
    save_manifest(&dir, &manifest)?;
    let results = graft_report::collect(&dir)?;
    graft_report::write(&dir, &results).context("cannot write the report")?;
    if args.data.json {
        println!("{}", serde_json::to_string(&results)?);
    } else {
        println!("{}\n", results.conclusion);
        for r in &results.rows {
            match r.status {
                Status::Ok => println!(
                    "{:<12} {:>6.1}%  {:>8.1} s  {:>3} epochs  {}",
                    r.strategy,
                    100.0 * r.val_accuracy,
                    r.seconds,
                    r.epochs_run,
                    r.stopped.replace('_', " ")
                ),
                _ => println!(
                    "{:<12} failed: {}",
                    r.strategy,
                    r.error.as_deref().unwrap_or("")
                ),
            }
        }
        println!("\nreport: {}", dir.join("report.html").display());
    }
    Ok(failed)
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
