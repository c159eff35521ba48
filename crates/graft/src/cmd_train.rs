//! `graft train`: a strategy on the user's dataset, into a run directory.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use graft_data::{Dataset, SplitOptions, open_dataset};
use graft_transfer::features::Extractor;
use graft_transfer::train::{HeadConfig, Split, train_head};
use graft_transfer::{CacheKey, FeatureCache, Strategy};
use graft_weights::sha256_file;
use serde_json::json;

use crate::args::TrainArgs;
use crate::progress::{Progress, log};
use crate::run_dir;
use crate::settings::{LoadedModel, load_pretrained};

/// Features of one split, with the images that could not be read.
pub struct SplitFeatures {
    pub x: Vec<Vec<f32>>,
    pub y: Vec<usize>,
    pub failed: Vec<(PathBuf, String)>,
}

pub fn features(
    extractor: &Extractor<'_>,
    samples: &[graft_data::Sample],
    label: &str,
    quiet: bool,
) -> SplitFeatures {
    let paths: Vec<PathBuf> = samples.iter().map(|s| s.path.clone()).collect();
    let mut progress = Progress::new(label, paths.len() as u64, "images", quiet);
    let results = extractor.embeddings(&paths, &mut |n| progress.inc(n as u64));
    progress.finish();
    let mut out = SplitFeatures {
        x: Vec::new(),
        y: Vec::new(),
        failed: Vec::new(),
    };
    for (s, r) in samples.iter().zip(results) {
        match r {
            Ok(v) => {
                out.x.push(v);
                out.y.push(s.class);
            }
            Err(e) => out.failed.push((s.path.clone(), e)),
        }
    }
    out
}

/// The cache key of pooled classifier inputs for `model` (shared by train and evaluate --run).
pub fn embedding_key(model: &LoadedModel, weights_sha256: &str) -> CacheKey {
    CacheKey {
        model: model.spec.name.to_string(),
        weights: weights_sha256.to_string(),
        preprocess: format!("{:?}", model.preprocess),
        freeze_point: "embed".into(),
        view: 0,
    }
}

fn split_csv(ds: &Dataset) -> String {
    let mut s = String::from("path,label,split\n");
    for (samples, name) in [(&ds.train, "train"), (&ds.val, ds.val_name.as_str())] {
        for x in samples.iter() {
            s += &format!("{},{},{name}\n", x.path.display(), ds.classes[x.class]);
        }
    }
    s
}

pub fn run(args: &TrainArgs, quiet: bool) -> anyhow::Result<usize> {
    let start = Instant::now();
    let strategy: Strategy = args.strategy.parse().map_err(anyhow::Error::msg)?;
    anyhow::ensure!(args.epochs > 0, "--epochs must be at least 1");
    let ds = open_dataset(
        &args.data,
        SplitOptions {
            val_fraction: args.val_fraction,
            seed: args.seed,
        },
    )?;
    for w in &ds.warnings {
        log(quiet, format!("warning: {w}"));
    }
    let model = load_pretrained(&args.model, quiet)?;
    let plan = strategy
        .plan(&model.net.group_names())
        .map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        strategy == Strategy::Head,
        "--strategy {strategy} is not available yet in this version of graft; --strategy head is (plan: frozen {:?}, trained {:?})",
        plan.frozen,
        plan.trainable
    );
    let data_name = args
        .data
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".into());
    let dir = run_dir::create(
        args.out.as_deref(),
        &format!("{data_name}-{}-{strategy}", model.spec.name),
        args.force,
    )?;
    log(quiet, format!("run directory: {}", dir.display()));

    let cache = FeatureCache::new(graft_weights::graft_home().join("features"));
    let weights_sha256 = sha256_file(&model.weights)?;
    let key = embedding_key(&model, &weights_sha256);
    let extractor = Extractor {
        net: &model.net,
        device: &model.device,
        preprocess: model.preprocess,
        cache: &cache,
        key,
        batch_size: model.batch_size,
    };
    let train = features(&extractor, &ds.train, "features (train)", quiet);
    let val = features(
        &extractor,
        &ds.val,
        &format!("features ({})", ds.val_name),
        quiet,
    );
    let failed: Vec<&(PathBuf, String)> = train.failed.iter().chain(&val.failed).collect();
    for (p, e) in &failed {
        eprintln!("unreadable: {} ({e})", p.display());
    }
    anyhow::ensure!(
        failed.is_empty() || !args.strict,
        "{} images could not be read (listed above) and --strict is set",
        failed.len()
    );
    let (hits, misses, invalid) = cache.stats.snapshot();
    log(
        quiet,
        format!("feature cache: {hits} hits, {misses} computed, {invalid} stale entries rebuilt"),
    );

    let cfg = HeadConfig {
        epochs: args.epochs,
        batch_size: 32,
        lr: args.lr,
        weight_decay: args.weight_decay,
        label_smoothing: args.label_smoothing,
        warmup_epochs: 1,
        patience: args.patience,
        seed: args.seed,
    };
    let config = json!({
        "model": model.spec.name, "weights": model.weights, "weights_sha256": weights_sha256,
        "data": args.data, "strategy": strategy.to_string(), "seed": args.seed, "val_fraction": args.val_fraction,
        "frozen_groups": plan.frozen, "trained_groups": plan.trainable, "head": cfg,
        "split": format!("{:?}", ds.split), "preprocess": format!("{:?}", model.preprocess),
        "classes": ds.classes,
    });
    run_dir::write_atomic(
        &dir.join("config.json"),
        serde_json::to_string_pretty(&config)?.as_bytes(),
    )?;
    run_dir::write_atomic(
        &dir.join("classes.json"),
        serde_json::to_string_pretty(&ds.classes)?.as_bytes(),
    )?;
    run_dir::write_atomic(&dir.join("split.csv"), split_csv(&ds).as_bytes())?;
    let metrics = dir.join("metrics.jsonl");
    let _ = std::fs::remove_file(&metrics);

    let mut progress = Progress::new("train", args.epochs as u64, "epochs", quiet);
    let outcome = train_head(
        &Split {
            x: &train.x,
            y: &train.y,
        },
        &Split {
            x: &val.x,
            y: &val.y,
        },
        ds.classes.len(),
        &cfg,
        &model.device,
        &mut |record, best| {
            progress.inc(1);
            let line = serde_json::to_string(record).map_err(|e| e.to_string())?;
            run_dir::append_line(&metrics, &line).map_err(|e| e.to_string())?;
            if let Some(head) = best {
                run_dir::save_module(head, &dir.join("best.safetensors"))
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        },
    )
    .with_context(|| format!("training in {}", dir.display()))?;
    progress.finish();
    run_dir::save_module(&outcome.head, &dir.join("last.safetensors"))?;
    let seconds = start.elapsed().as_secs_f64();
    let summary = json!({
        "strategy": strategy.to_string(),
        "model": model.spec.name,
        "train_images": train.x.len(),
        "val_images": val.x.len(),
        "val_split": ds.val_name,
        "val_accuracy": outcome.best_val_accuracy,
        "best_epoch": outcome.best_epoch,
        "epochs_run": outcome.history.len(),
        "seconds": seconds,
        "run_dir": dir,
        "unreadable": failed.iter().map(|(p, _)| p).collect::<Vec<_>>(),
        "cache": {"hits": hits, "computed": misses, "rebuilt": invalid},
        "per_class": ds.classes.iter().enumerate().map(|(i, c)| json!({
            "class": c, "precision": outcome.confusion.precision(i), "recall": outcome.confusion.recall(i),
        })).collect::<Vec<_>>(),
        "confusion": outcome.confusion.matrix,
    });
    run_dir::write_atomic(
        &dir.join("result.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    if !args.json || !quiet {
        let out = format!(
            "{} {} on {}: {} accuracy {:.2}% ({} images) at epoch {}, {} training images, {:.1} s\n\n{}",
            model.spec.name,
            strategy,
            args.data.display(),
            ds.val_name,
            100.0 * outcome.best_val_accuracy,
            val.x.len(),
            outcome.best_epoch,
            train.x.len(),
            seconds,
            outcome.confusion.render(&ds.classes)
        );
        if args.json {
            eprint!("{out}")
        } else {
            print!("{out}")
        }
    }
    if args.json {
        println!("{summary}");
    }
    Ok(failed.len())
}
