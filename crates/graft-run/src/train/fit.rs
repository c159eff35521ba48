//! The fit step: config.json first, then the trainable part trained epoch by epoch on what the
//! extract step cached, each epoch checkpointed (resumable) before the observer hears of it.

use std::path::PathBuf;
use std::time::Instant;

use burn::module::Module;
use graft_models::Network;
use graft_spec::{FitConfig, HeadSolver, RunConfig};
use graft_transfer::CacheKey;
use graft_transfer::FeatureCache;
use graft_transfer::features::{Base, Extractor, Output};
use graft_transfer::finetune::{Activations, FinetuneConfig, evaluate, finetune};
use graft_transfer::head::{BuildHead, Head};
use graft_transfer::train::{
    Evaluation, Fitted, Split, TrainError, average_views, evaluate_head, train_head,
};

use super::checkpoint::{
    best_backbone, best_head, keep_metrics_before, resume_finetune, resume_head, save_best,
    save_epoch, write_run_files,
};
use super::{Extracted, Prepared, SplitFeatures, cache_key, resume, shape_at};
use crate::error::{Context, Result};
use crate::observer::{Event, Observer, ObserverExt};

/// A run trained: its best model and the loop's account of it.
pub struct FitDone {
    pub data: Extracted,
    pub config: RunConfig,
    pub outcome: Fitted,
    /// The best epoch's head, and its backbone when the run trained one.
    pub head: Head,
    pub net: Option<Network>,
    /// The chosen model on the reported split: evaluated once, after every decision.
    pub report: Evaluation,
    /// What was chosen where, when it is not an epoch on the selection split (L-BFGS).
    pub selected: Option<graft_spec::Selected>,
    /// Images the model was fitted on.
    pub trained_on: usize,
    pub trainable_params: usize,
    /// Seconds in the training loop (the rest went to frozen features and saving), over the
    /// whole run.
    pub train_seconds: f64,
    /// What a resumed run had done before this process.
    pub earlier: Earlier,
}

/// What a resumed run had done before the process that finishes it: the epochs it had run and
/// the seconds since it started (as `metrics.jsonl` counts them). `result.json` accounts for
/// the whole run, as if it had not been interrupted.
#[derive(Clone, Copy, Debug, Default)]
pub struct Earlier {
    pub epochs: usize,
    pub seconds: f64,
}

/// The extractor of `view` at freeze point `upto` (`None`: pooled features), starting from a
/// lower freeze point's cached activations where `compare` said one exists.
pub(crate) fn extractor<'a>(
    run: &'a Prepared,
    cache: &'a FeatureCache,
    upto: Option<usize>,
    view: u32,
) -> Extractor<'a> {
    let model = &run.model;
    let sha = &model.weights_sha256;
    let base = run
        .spec
        .reuse_from
        .filter(|&q| upto.is_none_or(|p| q < p))
        .map(|q| Base {
            upto: q,
            key: CacheKey {
                view,
                ..cache_key(model, sha, Some(q))
            },
            shape: shape_at(model, q),
        });
    Extractor {
        net: &model.net,
        device: &model.device,
        preprocess: model.preprocess,
        cache,
        key: CacheKey {
            view,
            ..cache_key(model, sha, upto)
        },
        batch_size: model.batch_size,
        output: upto.map_or(Output::Embed, Output::Activations),
        base,
    }
}

/// The chosen model on the reported split, once per evaluated view (`--tta`), the views'
/// probabilities averaged.
pub(super) fn on_report(
    x: &Extracted,
    classes: usize,
    evaluate: impl Fn(&SplitFeatures) -> std::result::Result<Evaluation, TrainError>,
) -> Result<Evaluation> {
    let views = std::iter::once(&x.val).chain(&x.val_mirrored);
    views
        .map(evaluate)
        .collect::<std::result::Result<Vec<_>, _>>()
        .and_then(|evals| average_views(evals, &x.val.y, classes))
        .context(|| format!("evaluating on {}", x.run.ds.val_name))
}

fn run_config(x: &Extracted, fit: &FitConfig, backbone_lr_scale: f64) -> RunConfig {
    let run = &x.run;
    RunConfig {
        format: graft_spec::FORMAT,
        graft_version: graft_spec::VERSION.to_string(),
        model: run.model.spec.name.to_string(),
        weights: run.model.weights.clone(),
        weights_sha256: run.model.weights_sha256.clone(),
        data: run.spec.data.clone(),
        strategy: run.spec.strategy,
        seed: fit.seed,
        val_fraction: run.spec.val_fraction,
        protocol: Some(run.spec.protocol()),
        frozen_groups: run.plan.frozen.clone(),
        trained_groups: run.plan.trainable.clone(),
        fit: Some(fit.clone()),
        cached_views: run.spec.views(),
        backbone_lr_scale,
        split: format!("{:?}", run.ds.split),
        preprocess: format!("{:?}", run.model.preprocess),
        classes: run.ds.classes.clone(),
        class_map: None,
        tta: run.spec.tta,
    }
}

/// Trains the new head (and the trainable groups), or continues a resumed run.
pub fn fit(x: Extracted, obs: &mut dyn Observer) -> Result<FitDone> {
    let run = &x.run;
    let cfg = FitConfig {
        batch_size: run.spec.train_batch(x.upto.is_some()),
        ..run.spec.fit.clone()
    };
    let lr_scale = run.backbone_lr_scale();
    let config = run_config(&x, &cfg, lr_scale);
    write_run_files(&run.dir, &config, &run.ds)?;
    let lbfgs = x.upto.is_none() && cfg.solver == HeadSolver::Lbfgs;
    if lbfgs {
        // No epochs: nothing to resume, the fit is redone (it takes about a second), and a
        // reused run folder's epochs from an earlier fit are not this run's.
        keep_metrics_before(&run.dir.join(graft_spec::files::METRICS), 0)?;
        let fit_start = Instant::now();
        let done = super::lbfgs::fit_lbfgs(&x, &cfg)?;
        return Ok(FitDone {
            train_seconds: fit_start.elapsed().as_secs_f64(),
            earlier: Earlier::default(),
            trainable_params: done.head.num_params(),
            config,
            outcome: done.fitted,
            head: done.head,
            net: None,
            report: done.report,
            selected: Some(done.selected),
            trained_on: done.trained_on,
            data: x,
        });
    }
    let resumed = run
        .spec
        .resume
        .then(|| resume::load(&run.dir))
        .transpose()?;
    let next = resumed.as_ref().map_or(0, |(s, _)| s.next_epoch);
    let (kept_epochs, kept_seconds) =
        keep_metrics_before(&run.dir.join(graft_spec::files::METRICS), next)?;
    // A fresh run keeps no epochs: both are 0.
    let earlier = Earlier {
        epochs: kept_epochs,
        seconds: kept_seconds,
    };
    // The loop's seconds before a resume (in states saved before they were kept: none).
    let trained_before = resumed.as_ref().map_or(0.0, |(s, _)| s.train_seconds);
    // Seconds in metrics.jsonl count from the run's start; a resumed run's clock continues from
    // its last kept epoch (its cache-warm preparation is not counted twice).
    let clock = if resumed.is_some() {
        kept_seconds - run.start.elapsed().as_secs_f64()
    } else {
        0.0
    };
    let label = format!("{}train", run.spec.label);
    obs.begin(&label, cfg.epochs as u64, "epochs");
    if next > 0 {
        obs.log(format!("resuming at epoch {next} of {}", cfg.epochs));
        obs.event(Event::Advance(next as u64));
    }
    let train_start = Instant::now();
    let elapsed = || clock + run.start.elapsed().as_secs_f64();
    let (outcome, head, net, report) = match x.upto {
        None => fit_head(&x, &cfg, resumed, &elapsed, obs)?,
        Some(p) => fit_groups(&x, p, &cfg, lr_scale, resumed, &elapsed, obs)?,
    };
    obs.event(Event::End);
    let classes = run.ds.classes.len();
    let model = &run.model;
    let head_params = cfg
        .head
        .shell(model.net.embed_dim(), classes, &model.device)
        .num_params();
    let groups = run.plan.frozen.len() + run.plan.trainable.len();
    let group_params: usize = (run.plan.freeze_point..groups)
        .map(|g| model.net.group_num_params(g))
        .sum();
    Ok(FitDone {
        train_seconds: trained_before + train_start.elapsed().as_secs_f64(),
        earlier,
        trainable_params: head_params + group_params,
        config,
        outcome,
        head,
        net,
        report,
        selected: None,
        trained_on: x.train_views[0].x.len(),
        data: x,
    })
}

/// `--head-first`: the linear probe of the pretrained network's pooled features of the training
/// images (their evaluation view, through the cache `head` uses), by L-BFGS with its L2 strength
/// chosen by 5-fold cross-validation on them: the selection split is left to choose the epoch.
fn probe_head(x: &Extracted, cfg: &FitConfig, obs: &mut dyn Observer) -> Result<Head> {
    let run = &x.run;
    crate::ensure!(
        cfg.head == graft_spec::HeadKind::Linear,
        "--head-first starts from a linear probe; --head mlp starts from random weights"
    );
    let cache = super::feature_cache(&run.model.home);
    let ex = extractor(run, &cache, None, 0);
    let pooled = super::features(
        &ex,
        &run.ds.train,
        "frozen network (train, for --head-first)",
        obs,
    );
    let rows = Split {
        x: &pooled.x,
        y: &pooled.y,
    };
    let on = graft_transfer::linear_head::SelectOn::CrossValidation { folds: 5 };
    let device = &run.model.device;
    let fit = graft_transfer::linear_head::fit_linear_head(
        &rows,
        on,
        run.ds.classes.len(),
        cfg.seed,
        device,
    );
    obs.log(format!(
        "--head-first: linear probe C = {:.3}, {:.1}% in 5-fold CV on {} training images",
        fit.c,
        100.0 * fit.accuracy,
        rows.x.len()
    ));
    Ok(fit.head)
}

/// Cached activations of `views`, each row a `shape` map.
pub(crate) fn activations(views: &[SplitFeatures], shape: [usize; 3]) -> Vec<Activations<'_>> {
    views
        .iter()
        .map(|t| Activations {
            x: &t.x,
            y: &t.y,
            shape,
        })
        .collect()
}

type Resumed = Option<(graft_transfer::schedule::LoopState, PathBuf)>;
/// The fit, the chosen head (and backbone), and the chosen model on the reported split.
type Outcome = (Fitted, Head, Option<Network>, Evaluation);

fn fit_head(
    x: &Extracted,
    cfg: &FitConfig,
    resumed: Resumed,
    elapsed: &dyn Fn() -> f64,
    obs: &mut dyn Observer,
) -> Result<Outcome> {
    let (run, dir) = (&x.run, &x.run.dir);
    let model = &run.model;
    let classes = run.ds.classes.len();
    let views: Vec<Split<'_>> = x
        .train_views
        .iter()
        .map(|t| Split { x: &t.x, y: &t.y })
        .collect();
    let resume = resumed
        .map(|(state, sub)| {
            resume_head(
                dir,
                &sub,
                state,
                model.net.embed_dim(),
                classes,
                cfg,
                &model.device,
            )
        })
        .transpose()?;
    // Epochs are chosen on the selection split; the reported split is not seen until the end.
    let select = Split {
        x: &x.select.x,
        y: &x.select.y,
    };
    let o = train_head(
        &views,
        &select,
        classes,
        cfg,
        &model.device,
        resume,
        &mut |ck| {
            obs.event(Event::Advance(1));
            let head = ck.model;
            save_epoch(
                dir,
                &ck,
                elapsed(),
                &|| save_best(head, &best_head(dir)),
                &|sub| resume::save_module(head, &sub.join("head.bpk")),
                obs,
            )
        },
    )
    .context(|| format!("training in {}", dir.display()))?;
    let report = on_report(x, classes, |v| {
        evaluate_head(&o.head, &Split { x: &v.x, y: &v.y }, classes, &model.device)
    })?;
    Ok((o.fit, o.head, None, report))
}

fn fit_groups(
    x: &Extracted,
    freeze_point: usize,
    cfg: &FitConfig,
    backbone_lr_scale: f64,
    resumed: Resumed,
    elapsed: &dyn Fn() -> f64,
    obs: &mut dyn Observer,
) -> Result<Outcome> {
    let (run, dir) = (&x.run, &x.run.dir);
    let model = &run.model;
    let classes = run.ds.classes.len();
    let shape = shape_at(model, freeze_point);
    let views = activations(&x.train_views, shape);
    let select = Activations {
        x: &x.select.x,
        y: &x.select.y,
        shape,
    };
    let resume = resumed
        .map(|(state, sub)| resume_finetune(dir, &sub, state, model, classes, cfg))
        .transpose()?;
    // A resumed run's head comes from its checkpoint.
    let head_init = match (&resume, cfg.head_first) {
        (None, true) => Some(probe_head(x, cfg, obs)?),
        _ => None,
    };
    let ft = FinetuneConfig {
        head: cfg.clone(),
        backbone_lr_scale,
        head_init,
    };
    let o = finetune(
        model.net.clone(),
        freeze_point,
        &views,
        &select,
        classes,
        &ft,
        &model.device,
        resume,
        &mut |ck| {
            obs.event(Event::Advance(1));
            let (net, head) = ck.model;
            save_epoch(
                dir,
                &ck,
                elapsed(),
                &|| {
                    save_best(head, &best_head(dir))?;
                    save_best(net, &best_backbone(dir))
                },
                &|sub| {
                    resume::save_module(head, &sub.join("head.bpk"))?;
                    resume::save_module(net, &sub.join("backbone.bpk"))
                },
                obs,
            )
        },
    )
    .context(|| format!("training in {}", dir.display()))?;
    let report = on_report(x, classes, |v| {
        let view = Activations {
            x: &v.x,
            y: &v.y,
            shape,
        };
        evaluate(
            &o.net,
            &o.head,
            freeze_point,
            &view,
            classes,
            cfg.batch_size,
            &model.device,
        )
    })?;
    Ok((o.fit, o.head, Some(o.net), report))
}
