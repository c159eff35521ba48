//! `graft train`: a strategy on the user's dataset, into a run directory.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use burn::optim::AdamWConfig;
use burn::prelude::*;
use graft_data::{Dataset, Sample, SplitOptions, open_dataset};
use graft_models::Network;
use graft_models::imagenet;
use graft_transfer::class_map::{self, map_classes};
use graft_transfer::features::Extractor;
use graft_transfer::finetune::{Activations, FinetuneConfig, finetune};
use graft_transfer::head::{Head, HeadKind};
use graft_transfer::schedule::LoopState;
use graft_transfer::train::{Checkpoint, Fitted, HeadConfig, Resume, Split, train_head};
use graft_transfer::{CacheKey, Confusion, FeatureCache, FreezePlan, Strategy};
use graft_weights::sha256_file;
use graft_weights::{KeyMap, LoadPolicy, load_weights};
use serde_json::json;

use crate::args::{ModelArgs, TrainArgs};
use crate::progress::{Progress, log};
use crate::resume;
use crate::run_dir;
use crate::settings::{LoadedModel, load_pretrained};

/// Cached inputs of one split, with the images that could not be read.
pub struct SplitFeatures {
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

/// What every run directory holds from the start: the resolved settings, the class list and the
/// split (so a generated split can be reused).
fn write_run_files(dir: &Path, config: &serde_json::Value, ds: &Dataset) -> anyhow::Result<()> {
    run_dir::write_atomic(
        &dir.join("config.json"),
        serde_json::to_string_pretty(config)?.as_bytes(),
    )?;
    run_dir::write_atomic(
        &dir.join("classes.json"),
        serde_json::to_string_pretty(&ds.classes)?.as_bytes(),
    )?;
    run_dir::write_atomic(&dir.join("split.csv"), split_csv(ds).as_bytes())
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

/// Everything saved after an epoch, in crash-safe order: the metrics line, the last (and, when
/// best, the best) safetensors checkpoint via `safetensors(which)`, then the resumable state
/// via `burnpack(folder)`.
fn save_epoch<M>(
    dir: &Path,
    ck: &Checkpoint<'_, M>,
    safetensors: &dyn Fn(&str) -> anyhow::Result<()>,
    burnpack: &dyn Fn(&Path) -> anyhow::Result<()>,
) -> Result<(), String> {
    let line = serde_json::to_string(ck.record).map_err(|e| e.to_string())?;
    run_dir::append_line(&dir.join("metrics.jsonl"), &line).map_err(|e| e.to_string())?;
    safetensors("last").map_err(|e| e.to_string())?;
    if ck.is_best {
        safetensors("best").map_err(|e| e.to_string())?;
    }
    resume::save(dir, ck.state, ck.optim, burnpack).map_err(|e| e.to_string())?;
    interrupt_for_tests(ck.record.epoch);
    Ok(())
}

/// `--head linear` or `--head mlp[:HIDDEN]` (hidden width 512 unless given).
fn parse_head(text: &str) -> anyhow::Result<HeadKind> {
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

/// `class,imagenet` rows (a header row starting with `class` is skipped).
fn read_class_map(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --class-map {}", path.display()))?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || (i == 0 && line.starts_with("class")) {
            continue;
        }
        let (class, target) = line.split_once([',', '\t']).with_context(|| {
            format!(
                "{}:{}: expected `class,imagenet`, found {line:?}",
                path.display(),
                i + 1
            )
        })?;
        rows.push((class.trim().to_string(), target.trim().to_string()));
    }
    Ok(rows)
}

/// Strategy 1 on the user's classes: the ImageNet classifier as it is, each user class scored by
/// the summed probability of the ImageNet classes mapped onto it; no training.
#[allow(clippy::too_many_arguments)]
fn run_pretrained(
    args: &Settings,
    raw: &TrainArgs,
    quiet: bool,
    model: &LoadedModel,
    plan: &FreezePlan,
    ds: &Dataset,
    dir: &Path,
    start: Instant,
) -> anyhow::Result<usize> {
    let explicit = raw
        .class_map
        .as_deref()
        .map(read_class_map)
        .transpose()?
        .unwrap_or_default();
    let map =
        map_classes(&ds.classes, imagenet::classes(), &explicit).map_err(anyhow::Error::msg)?;
    for (c, ids) in ds.classes.iter().zip(&map) {
        let names: Vec<&str> = ids
            .iter()
            .map(|&i| imagenet::classes()[i].name.as_str())
            .collect();
        log(quiet, format!("{c} <- ImageNet {}", names.join(", ")));
    }
    let weights_sha256 = sha256_file(&model.weights)?;
    let cache = FeatureCache::new(graft_weights::graft_home().join("features"));
    let extractor = Extractor {
        net: &model.net,
        device: &model.device,
        preprocess: model.preprocess,
        cache: &cache,
        key: embedding_key(model, &weights_sha256),
        batch_size: model.batch_size,
        upto: None,
    };
    let val = features(
        &extractor,
        &ds.val,
        &format!("pretrained ({})", ds.val_name),
        quiet,
    );
    for (p, e) in &val.failed {
        eprintln!("unreadable: {} ({e})", p.display());
    }
    let mut confusion = Confusion::new(ds.classes.len());
    let dim = model.net.embed_dim();
    for (xs, ys) in val.x.chunks(256).zip(val.y.chunks(256)) {
        let flat: Vec<f32> = xs.iter().flatten().copied().collect();
        let e = Tensor::<2>::from_data(TensorData::new(flat, [xs.len(), dim]), &model.device);
        let probs = burn::tensor::activation::softmax(model.net.classify(e), 1)
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("cannot read probabilities: {e:?}"))?;
        for (row, &y) in probs.chunks_exact(probs.len() / xs.len().max(1)).zip(ys) {
            confusion.add(y, class_map::predict(row, &map));
        }
    }
    let mapping: Vec<_> = ds
        .classes
        .iter()
        .zip(&map)
        .map(|(c, ids)| json!({"class": c, "imagenet": ids.iter().map(|&i| json!({"index": i, "wnid": imagenet::classes()[i].wnid, "name": imagenet::classes()[i].name})).collect::<Vec<_>>()}))
        .collect();
    let config = json!({
        "model": model.spec.name, "weights": model.weights, "weights_sha256": weights_sha256,
        "data": args.data, "strategy": "pretrained", "seed": args.head.seed, "val_fraction": args.val_fraction,
        "class_map": mapping, "classes": ds.classes,
    });
    write_run_files(dir, &config, ds)?;
    let outcome = Fitted {
        best_epoch: 0,
        best_val_accuracy: confusion.accuracy(),
        history: Vec::new(),
        confusion,
    };
    let (hits, misses, invalid) = cache.stats.snapshot();
    let failed: Vec<&(PathBuf, String)> = val.failed.iter().collect();
    report(
        args,
        raw.json,
        quiet,
        model,
        plan,
        Strategy::Pretrained,
        ds,
        dir,
        (0, val.x.len()),
        &failed,
        (hits, misses, invalid),
        &outcome,
        start,
    )?;
    Ok(failed.len())
}

/// Keeps the metrics of epochs before `next_epoch` (all of them are gone for a fresh run): an
/// interruption may have logged an epoch whose checkpoint was not completed.
fn keep_metrics_before(path: &Path, next_epoch: usize) -> anyhow::Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v.get("epoch").and_then(|e| e.as_u64()))
                .is_some_and(|e| (e as usize) < next_epoch)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    run_dir::write_atomic(path, kept.as_bytes())
}

/// Test hook: `GRAFT_TEST_INTERRUPT_AFTER_EPOCH=N` kills the process after epoch N is saved, as
/// Ctrl-C or `kill` would, so the resume tests need no timing.
fn interrupt_for_tests(epoch: usize) {
    if std::env::var("GRAFT_TEST_INTERRUPT_AFTER_EPOCH")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        == Some(epoch)
    {
        std::process::exit(130);
    }
}

fn resume_head(
    dir: &Path,
    sub: &Path,
    state: LoopState,
    dim: usize,
    classes: usize,
    cfg: &HeadConfig,
    device: &Device,
) -> anyhow::Result<Resume<Head>> {
    let mut last = cfg.head.shell(dim, classes, device);
    resume::load_module(&mut last, &sub.join("head.bpk"))?;
    let mut best = cfg.head.shell(dim, classes, device);
    load_weights(
        &mut best,
        &dir.join("best.safetensors"),
        &KeyMap::default(),
        &LoadPolicy::strict(),
        "best head",
    )?;
    let optim = resume::load_optim(
        AdamWConfig::new()
            .with_weight_decay(cfg.weight_decay)
            .init(),
        &sub.join("optim0.bpk"),
    )?;
    Ok(Resume {
        state,
        last,
        best,
        optim: vec![optim],
    })
}

fn resume_finetune(
    dir: &Path,
    sub: &Path,
    state: LoopState,
    model: &LoadedModel,
    classes: usize,
    cfg: &HeadConfig,
) -> anyhow::Result<Resume<(Network, Head)>> {
    let device = &model.device;
    let dim = model.net.embed_dim();
    let mut net = model.spec.arch.init(device);
    resume::load_module(&mut net, &sub.join("backbone.bpk"))?;
    let mut head = cfg.head.shell(dim, classes, device);
    resume::load_module(&mut head, &sub.join("head.bpk"))?;
    let (best_net, _) = model.spec.arch.load(
        &dir.join("best_backbone.safetensors"),
        &LoadPolicy::strict(),
        "best backbone",
        device,
    )?;
    let mut best_head = cfg.head.shell(dim, classes, device);
    load_weights(
        &mut best_head,
        &dir.join("best.safetensors"),
        &KeyMap::default(),
        &LoadPolicy::strict(),
        "best head",
    )?;
    let adamw = || {
        AdamWConfig::new()
            .with_weight_decay(cfg.weight_decay)
            .init()
    };
    let optim = vec![
        resume::load_optim(adamw(), &sub.join("optim0.bpk"))?,
        resume::load_optim(adamw(), &sub.join("optim1.bpk"))?,
    ];
    Ok(Resume {
        state,
        last: (net, head),
        best: (best_net, best_head),
        optim,
    })
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
struct Settings {
    model: ModelArgs,
    data: PathBuf,
    strategy: Strategy,
    out: Option<PathBuf>,
    force: bool,
    resume: bool,
    head: HeadConfig,
    val_fraction: f64,
    /// Augmented training views cached per image (None: the strategy's default).
    cached_views: Option<usize>,
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
    })
}

pub fn run(raw: &TrainArgs, quiet: bool) -> anyhow::Result<usize> {
    let start = Instant::now();
    let args = settings(raw)?;
    let strategy = args.strategy;
    anyhow::ensure!(args.head.epochs > 0, "--epochs must be at least 1");
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
    let mut model = load_pretrained(&args.model, quiet)?;
    let plan = strategy
        .plan(&model.net.group_names())
        .map_err(anyhow::Error::msg)?;
    if plan.fresh_weights {
        model.net = model.spec.arch.init(&model.device);
    }
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
        return run_pretrained(&args, raw, quiet, &model, &plan, &ds, &dir, start);
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
    let extractor = Extractor {
        net: &model.net,
        device: &model.device,
        preprocess: model.preprocess,
        cache: &cache,
        key: cache_key(&model, &weights_sha256, upto),
        batch_size: model.batch_size,
        upto,
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
            ..extractor.clone()
        };
        let label = if view == 0 {
            "frozen part (train)".to_string()
        } else {
            format!("frozen part (train, view {view}/{views})")
        };
        features(&ex, &ds.train, &label, quiet)
    })
    .collect();
    let train = &train_views[0];
    let val = features(
        &extractor,
        &ds.val,
        &format!("frozen part ({})", ds.val_name),
        quiet,
    );
    let failed: Vec<&(PathBuf, String)> = train.failed.iter().chain(&val.failed).collect();
    for (p, e) in &failed {
        eprintln!("unreadable: {} ({e})", p.display());
    }
    anyhow::ensure!(
        failed.is_empty() || !raw.strict,
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
    keep_metrics_before(
        &dir.join("metrics.jsonl"),
        resumed.as_ref().map_or(0, |(s, _)| s.next_epoch),
    )?;

    let mut progress = Progress::new("train", cfg.epochs as u64, "epochs", quiet);
    if let Some((state, _)) = &resumed {
        log(
            quiet,
            format!("resuming at epoch {} of {}", state.next_epoch, cfg.epochs),
        );
        progress.inc(state.next_epoch as u64);
    }
    let classes = ds.classes.len();
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
    report(
        &args,
        raw.json,
        quiet,
        &model,
        &plan,
        strategy,
        &ds,
        &dir,
        (train.x.len(), val.x.len()),
        &failed,
        (hits, misses, invalid),
        &outcome,
        start,
    )?;
    Ok(failed.len())
}

#[allow(clippy::too_many_arguments)]
fn report(
    args: &Settings,
    json: bool,
    quiet: bool,
    model: &LoadedModel,
    plan: &FreezePlan,
    strategy: Strategy,
    ds: &Dataset,
    dir: &Path,
    (n_train, n_val): (usize, usize),
    failed: &[&(PathBuf, String)],
    (hits, misses, invalid): (usize, usize, usize),
    outcome: &Fitted,
    start: Instant,
) -> anyhow::Result<()> {
    let seconds = start.elapsed().as_secs_f64();
    let summary = json!({
        "strategy": strategy.to_string(),
        "model": model.spec.name,
        "trained_groups": plan.trainable,
        "train_images": n_train,
        "val_images": n_val,
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
    if !json || !quiet {
        let out = format!(
            "{} {} on {}: {} accuracy {:.2}% ({} images) at epoch {}, {} training images, {:.1} s\n\n{}",
            model.spec.name,
            strategy,
            args.data.display(),
            ds.val_name,
            100.0 * outcome.best_val_accuracy,
            n_val,
            outcome.best_epoch,
            n_train,
            seconds,
            outcome.confusion.render(&ds.classes)
        );
        if json {
            eprint!("{out}")
        } else {
            print!("{out}")
        }
    }
    if json {
        println!("{summary}");
    }
    Ok(())
}
