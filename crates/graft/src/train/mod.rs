//! `graft train`: a strategy on the user's dataset, into a run directory. `compare` and `auto`
//! run the same [`execute`] with settings of their own.

mod checkpoint;
pub mod pretrained;
mod summary;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use burn::prelude::*;
use graft_data::{Sample, SplitOptions, open_dataset};
use graft_transfer::features::{Base, Extractor, Output};
use graft_transfer::finetune::{Activations, FinetuneConfig, finetune};
use graft_transfer::head::HeadKind;
use graft_transfer::train::{HeadConfig, Split, train_head};
use graft_transfer::{CacheKey, FeatureCache, Strategy};
use graft_weights::sha256_file;
use serde_json::json;

use crate::args::{ModelArgs, TrainArgs};
use crate::progress::{Progress, log};
use crate::resume;
use crate::run_dir;
use crate::settings::{LoadedModel, load_pretrained};
use checkpoint::{keep_metrics_before, resume_finetune, resume_head, save_epoch, write_run_files};
pub use summary::Trained;
use summary::{RunFacts, finish};

/// Cached inputs of one split, with the images that could not be read.
pub struct SplitFeatures {
    /// The images that were read, in the order of `x` and `y`.
    pub paths: Vec<PathBuf>,
    pub x: Vec<Vec<f32>>,
    pub y: Vec<usize>,
    pub failed: Vec<(PathBuf, String)>,
}

pub fn features(
    extractor: &Extractor<'_>,
    samples: &[Sample],
    label: &str,
    quiet: bool,
) -> SplitFeatures {
    let paths: Vec<PathBuf> = samples.iter().map(|s| s.path.clone()).collect();
    let mut progress = Progress::new(label, paths.len() as u64, "images", quiet);
    let results = extractor.embeddings(&paths, &mut |n| progress.inc(n as u64));
    progress.finish();
    let mut out = SplitFeatures {
        paths: Vec::new(),
        x: Vec::new(),
        y: Vec::new(),
        failed: Vec::new(),
    };
    for (s, r) in samples.iter().zip(results) {
        match r {
            Ok(v) => {
                out.paths.push(s.path.clone());
                out.x.push(v);
                out.y.push(s.class);
            }
            Err(e) => out.failed.push((s.path.clone(), e)),
        }
    }
    out
}

/// The cache key of what is cached at `freeze_point` (`None`: the pooled classifier input).
pub fn cache_key(
    model: &LoadedModel,
    weights_sha256: &str,
    freeze_point: Option<usize>,
) -> CacheKey {
    let groups = model.net.group_names();
    let point = match freeze_point {
        None => "embed".to_string(),
        Some(0) => "input".to_string(),
        Some(p) => groups
            .get(p - 1)
            .cloned()
            .unwrap_or_else(|| format!("group{p}")),
    };
    CacheKey {
        model: model.spec.name.to_string(),
        // The input image does not depend on the weights.
        weights: if freeze_point == Some(0) {
            String::new()
        } else {
            weights_sha256.to_string()
        },
        preprocess: format!("{:?}", model.preprocess),
        freeze_point: point,
        view: 0,
    }
}

/// The cache key of pooled classifier inputs (shared by train and evaluate --run).
pub fn embedding_key(model: &LoadedModel, weights_sha256: &str) -> CacheKey {
    cache_key(model, weights_sha256, None)
}

/// The extractor of pooled classifier inputs (what `head` trains on), shared by `train`,
/// `pretrained`, `evaluate --run` and `probe`, so they read and write the same cache entries.
pub fn embed_extractor<'a>(
    model: &'a LoadedModel,
    cache: &'a FeatureCache,
    weights_sha256: &str,
) -> Extractor<'a> {
    Extractor {
        net: &model.net,
        device: &model.device,
        preprocess: model.preprocess,
        cache,
        key: embedding_key(model, weights_sha256),
        batch_size: model.batch_size,
        output: Output::Embed,
        base: None,
    }
}

/// `--head linear` or `--head mlp[:HIDDEN]` (hidden width 512 unless given).
pub fn parse_head(text: &str) -> anyhow::Result<HeadKind> {
    match text.trim().to_ascii_lowercase().as_str() {
        "linear" => Ok(HeadKind::Linear),
        "mlp" => Ok(HeadKind::Mlp { hidden: 512 }),
        other => match other.strip_prefix("mlp:").map(str::parse::<usize>) {
            Some(Ok(hidden)) if hidden > 0 => Ok(HeadKind::Mlp { hidden }),
            _ => anyhow::bail!(
                "unknown --head {other:?}: use linear, mlp or mlp:HIDDEN (e.g. mlp:4096, VGG's own width)"
            ),
        },
    }
}

/// Output shape `[c, h, w]` of groups `0..p` for this model's input size.
fn shape_at(model: &LoadedModel, p: usize) -> [usize; 3] {
    let s = model.preprocess.crop as usize;
    let y = model
        .net
        .forward_groups(0..p, Tensor::<4>::zeros([1, 3, s, s], &model.device));
    let [_, c, h, w] = y.dims();
    [c, h, w]
}

/// `graft train`'s arguments, resolved: from the command line, or from the run being resumed.
#[derive(Clone, Debug)]
pub struct Settings {
    pub model: ModelArgs,
    pub data: PathBuf,
    pub strategy: Strategy,
    pub out: Option<PathBuf>,
    pub force: bool,
    pub resume: bool,
    pub head: HeadConfig,
    pub val_fraction: f64,
    /// Augmented training views cached per image (None: the strategy's default).
    pub cached_views: Option<usize>,
    /// `pretrained`: the `class,imagenet` file, if given.
    pub class_map: Option<PathBuf>,
    /// Refuse the dataset if any image cannot be read.
    pub strict: bool,
    /// Put before progress labels (`compare` says which run of how many).
    pub label: String,
    /// A lower freeze point whose cached activations this run may start from instead of the
    /// images (`compare` runs the partial strategies from the most groups down).
    pub reuse_from: Option<usize>,
}

fn settings(args: &TrainArgs) -> anyhow::Result<Settings> {
    let Some(dir) = &args.resume else {
        let head = HeadConfig {
            epochs: args.epochs,
            batch_size: 32,
            lr: args.lr,
            weight_decay: args.weight_decay,
            label_smoothing: args.label_smoothing,
            warmup_epochs: 1,
            patience: args.patience,
            seed: args.seed,
            head: parse_head(&args.head)?,
            class_balanced: args.class_balanced,
            time_budget_s: args.time_budget,
        };
        return Ok(Settings {
            model: args.model.clone(),
            data: args.data.clone().context("--data is required")?,
            strategy: args.strategy.parse().map_err(anyhow::Error::msg)?,
            out: args.out.clone(),
            force: args.force,
            resume: false,
            head,
            val_fraction: args.val_fraction,
            cached_views: args.cached_views,
            class_map: args.class_map.clone(),
            strict: args.strict,
            label: String::new(),
            reuse_from: None,
        });
    };
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{} is not a graft run directory", dir.display()))?;
    let c: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: invalid JSON", path.display()))?;
    let s = |k: &str| {
        c.get(k)
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .with_context(|| format!("{}: no {k:?}", path.display()))
    };
    Ok(Settings {
        model: ModelArgs {
            model: s("model")?,
            weights: Some(PathBuf::from(s("weights")?)),
            batch_size: args.model.batch_size,
        },
        data: PathBuf::from(s("data")?),
        strategy: s("strategy")?.parse().map_err(anyhow::Error::msg)?,
        out: Some(dir.clone()),
        force: true,
        resume: true,
        head: serde_json::from_value(c.get("head").cloned().unwrap_or_default())
            .with_context(|| format!("{}: \"head\"", path.display()))?,
        val_fraction: c
            .get("val_fraction")
            .and_then(|v| v.as_f64())
            .unwrap_or(0.2),
        cached_views: c
            .get("cached_views")
            .and_then(|v| v.as_u64())
            .map(|v| v as usize),
        class_map: None,
        strict: args.strict,
        label: String::new(),
        reuse_from: None,
    })
}

/// `graft train`: prints the run's summary (text, or JSON with `--json`).
pub fn run(raw: &TrainArgs, quiet: bool) -> anyhow::Result<usize> {
    let args = settings(raw)?;
    let model = load_pretrained(&args.model, quiet)?;
    let done = execute(&args, model, quiet)?;
    if !raw.json {
        print!("{}", done.text);
    } else {
        if !quiet {
            eprint!("{}", done.text);
        }
        println!("{}", done.summary);
    }
    Ok(done.failed)
}

/// Trains one strategy into its run directory and writes its summary there.
pub fn execute(args: &Settings, mut model: LoadedModel, quiet: bool) -> anyhow::Result<Trained> {
    let start = Instant::now();
    let strategy = args.strategy;
    anyhow::ensure!(args.head.epochs > 0, "--epochs must be at least 1");
    if let Some(b) = args.head.time_budget_s {
        anyhow::ensure!(
            b > 0.0 && b.is_finite(),
            "a time budget must be a positive number of seconds, not {b}"
        );
    }
    let ds = open_dataset(
        &args.data,
        SplitOptions {
            val_fraction: args.val_fraction,
            seed: args.head.seed,
        },
    )?;
    for w in &ds.warnings {
        log(quiet, format!("warning: {w}"));
    }
    let plan = strategy
        .plan(&model.net.group_names())
        .map_err(anyhow::Error::msg)?;
    if plan.fresh_weights {
        // Seeded, so a scratch run is as reproducible as the others.
        model.device.seed(args.head.seed);
        model.net = model.spec.arch.init(&model.device);
    }
    let model = model;
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
    if strategy == Strategy::Pretrained {
        return pretrained::run(args, quiet, &model, &plan, &ds, &dir, start);
    }
    log(
        quiet,
        format!(
            "run directory: {} (frozen: {:?}, trained: {:?} + new head)",
            dir.display(),
            plan.frozen,
            plan.trainable
        ),
    );

    let weights_sha256 = sha256_file(&model.weights)?;
    let cache = FeatureCache::new(graft_weights::graft_home().join("features"));
    let upto = (strategy != Strategy::Head).then_some(plan.freeze_point);
    // Activations another run cached at a lower freeze point, per view.
    let base = |view: u32| {
        args.reuse_from
            .filter(|&q| upto.is_none_or(|p| q < p))
            .map(|q| Base {
                upto: q,
                key: CacheKey {
                    view,
                    ..cache_key(&model, &weights_sha256, Some(q))
                },
                shape: shape_at(&model, q),
            })
    };
    let extractor = Extractor {
        net: &model.net,
        device: &model.device,
        preprocess: model.preprocess,
        cache: &cache,
        key: cache_key(&model, &weights_sha256, upto),
        batch_size: model.batch_size,
        output: upto.map_or(Output::Embed, Output::Activations),
        base: base(0),
    };
    // Training views: the evaluation view, or K cached augmented views used in turn.
    let views = args
        .cached_views
        .unwrap_or(if strategy == Strategy::Head { 0 } else { 2 });
    let train_views: Vec<SplitFeatures> = if views == 0 {
        vec![0]
    } else {
        (1..=views as u32).collect()
    }
    .into_iter()
    .map(|view| {
        let ex = Extractor {
            key: CacheKey {
                view,
                ..extractor.key.clone()
            },
            base: base(view),
            ..extractor.clone()
        };
        let label = if view == 0 {
            format!("{}frozen part (train)", args.label)
        } else {
            format!("{}frozen part (train, view {view}/{views})", args.label)
        };
        features(&ex, &ds.train, &label, quiet)
    })
    .collect();
    let train = &train_views[0];
    let val = features(
        &extractor,
        &ds.val,
        &format!("{}frozen part ({})", args.label, ds.val_name),
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
        batch_size: if upto.is_some() { 16 } else { 32 },
        ..args.head.clone()
    };
    let backbone_lr_scale = if plan.fresh_weights { 1.0 } else { 0.1 };
    let config = json!({
        "model": model.spec.name, "weights": model.weights, "weights_sha256": weights_sha256,
        "data": args.data, "strategy": strategy.to_string(), "seed": cfg.seed, "val_fraction": args.val_fraction,
        "frozen_groups": plan.frozen, "trained_groups": plan.trainable, "head": cfg,
        "cached_views": views,
        "backbone_lr_scale": backbone_lr_scale,
        "split": format!("{:?}", ds.split), "preprocess": format!("{:?}", model.preprocess),
        "classes": ds.classes,
    });
    write_run_files(&dir, &config, &ds)?;
    let resumed = if args.resume {
        Some(resume::load(&dir)?)
    } else {
        None
    };
    let kept_seconds = keep_metrics_before(
        &dir.join("metrics.jsonl"),
        resumed.as_ref().map_or(0, |(s, _)| s.next_epoch),
    )?;
    // Seconds in metrics.jsonl count from the run's start; a resumed run's clock continues from
    // its last kept epoch (its cache-warm preparation is not counted twice).
    let clock = if resumed.is_some() {
        kept_seconds - start.elapsed().as_secs_f64()
    } else {
        0.0
    };

    let mut progress = Progress::new(
        &format!("{}train", args.label),
        cfg.epochs as u64,
        "epochs",
        quiet,
    );
    if let Some((state, _)) = &resumed {
        log(
            quiet,
            format!("resuming at epoch {} of {}", state.next_epoch, cfg.epochs),
        );
        progress.inc(state.next_epoch as u64);
    }
    let classes = ds.classes.len();
    let head_params = cfg
        .head
        .shell(model.net.embed_dim(), classes, &model.device)
        .num_params();
    let group_params: usize = (plan.freeze_point..plan.frozen.len() + plan.trainable.len())
        .map(|g| model.net.group_num_params(g))
        .sum();
    let train_start = Instant::now();
    let outcome = match upto {
        None => {
            let o = train_head(
                &train_views
                    .iter()
                    .map(|t| Split { x: &t.x, y: &t.y })
                    .collect::<Vec<_>>(),
                &Split {
                    x: &val.x,
                    y: &val.y,
                },
                classes,
                &cfg,
                &model.device,
                resumed
                    .map(|(state, sub)| {
                        resume_head(
                            &dir,
                            &sub,
                            state,
                            model.net.embed_dim(),
                            classes,
                            &cfg,
                            &model.device,
                        )
                    })
                    .transpose()?,
                &mut |ck| {
                    progress.inc(1);
                    let head = ck.model;
                    save_epoch(
                        &dir,
                        &ck,
                        clock + start.elapsed().as_secs_f64(),
                        &|which| {
                            run_dir::save_module(head, &dir.join(format!("{which}.safetensors")))
                        },
                        &|sub| resume::save_module(head, &sub.join("head.bpk")),
                    )
                },
            )
            .with_context(|| format!("training in {}", dir.display()))?;
            o.fit
        }
        Some(p) => {
            let shape = shape_at(&model, p);
            let o = finetune(
                model.net.clone(),
                p,
                &train_views
                    .iter()
                    .map(|t| Activations {
                        x: &t.x,
                        y: &t.y,
                        shape,
                    })
                    .collect::<Vec<_>>(),
                &Activations {
                    x: &val.x,
                    y: &val.y,
                    shape,
                },
                classes,
                &FinetuneConfig {
                    head: cfg.clone(),
                    backbone_lr_scale,
                },
                &model.device,
                resumed
                    .map(|(state, sub)| resume_finetune(&dir, &sub, state, &model, classes, &cfg))
                    .transpose()?,
                &mut |ck| {
                    progress.inc(1);
                    let (net, head) = ck.model;
                    save_epoch(
                        &dir,
                        &ck,
                        clock + start.elapsed().as_secs_f64(),
                        &|which| {
                            run_dir::save_module(head, &dir.join(format!("{which}.safetensors")))?;
                            run_dir::save_module(
                                net,
                                &dir.join(format!("{which}_backbone.safetensors")),
                            )
                        },
                        &|sub| {
                            resume::save_module(head, &sub.join("head.bpk"))?;
                            resume::save_module(net, &sub.join("backbone.bpk"))
                        },
                    )
                },
            )
            .with_context(|| format!("training in {}", dir.display()))?;
            o.fit
        }
    };
    progress.finish();
    finish(
        &RunFacts {
            settings: args,
            model: &model,
            plan: &plan,
            ds: &ds,
            dir: &dir,
            n_train: train.x.len(),
            val_paths: &val.paths,
            val_y: &val.y,
            failed: &failed,
            cache: (hits, misses, invalid),
            trainable_params: head_params + group_params,
            train_seconds: train_start.elapsed().as_secs_f64(),
            start,
        },
        &outcome,
    )
}
