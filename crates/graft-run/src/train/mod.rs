//! One training run, as four steps: [`prepare`] (dataset, freeze plan, run directory),
//! [`extract`] (the frozen part, once per image, through the cache), [`fit`] (the trainable
//! part, checkpointed every epoch) and [`finish`] (result files and the trained model).
//! [`train`] runs them in turn; `compare` and `auto` run the same steps with settings of their
//! own.

pub mod checkpoint;
pub mod extract;
pub(crate) mod fit;
mod imagenet;
mod lbfgs;
pub mod resume;
mod summary;

use std::path::PathBuf;
use std::time::Instant;

use graft_data::{Dataset, Selection, SplitOptions, open_dataset};
use graft_spec::{CacheCounts, FreezePlan, Strategy, Tta};

use crate::error::Result;
use crate::observer::{Observer, ObserverExt};
use crate::pretrained::{LoadedModel, data_stem, load_pretrained};
use crate::spec::RunSpec;
use crate::{ensure, run_dir};
pub use extract::{
    SplitFeatures, cache_key, embed_extractor, feature_cache, features, mirrored_features,
    select_features, shape_at, split_features,
};
pub use fit::{Earlier, FitDone, fit};
pub use imagenet::class_mapping;
pub use summary::{Trained, finish};

/// A run ready to start: its settings, model, dataset, plan and directory.
pub struct Prepared {
    pub spec: RunSpec,
    pub model: LoadedModel,
    pub ds: Dataset,
    pub plan: FreezePlan,
    pub dir: PathBuf,
    pub start: Instant,
}

/// A run's frozen part computed: the training views, and the features of the selection split
/// (decisions) and of the reported split (the figure).
pub struct Extracted {
    pub run: Prepared,
    /// Groups `0..p` cached as activations (`None`: pooled features, for `head`).
    pub upto: Option<usize>,
    pub train_views: Vec<SplitFeatures>,
    pub select: SplitFeatures,
    pub val: SplitFeatures,
    /// The reported split's images mirrored (`--tta flip`), in `val`'s order.
    pub val_mirrored: Option<SplitFeatures>,
    pub failed: Vec<(PathBuf, String)>,
    pub cache: CacheCounts,
}

/// Loads the pretrained model `spec` names and trains it.
pub fn train(spec: &RunSpec, obs: &mut dyn Observer) -> Result<Trained> {
    let model = load_pretrained(&spec.model, obs)?;
    train_with(spec, model, obs)
}

/// Trains `spec` from an already loaded model (compare and auto load it once).
pub fn train_with(spec: &RunSpec, model: LoadedModel, obs: &mut dyn Observer) -> Result<Trained> {
    let run = prepare(spec, model, obs)?;
    if run.spec.strategy == Strategy::Pretrained {
        return imagenet::run(run, obs);
    }
    let extracted = extract(run, obs)?;
    let fitted = fit(extracted, obs)?;
    finish(fitted, obs)
}

/// Checks the settings, opens the dataset, plans the strategy and creates the run directory.
pub fn prepare(spec: &RunSpec, model: LoadedModel, obs: &mut dyn Observer) -> Result<Prepared> {
    let what = spec.strategy.to_string();
    prepare_as(spec, model, &what, obs)
}

/// [`prepare`], the directory named `runs/<dataset>-<model>-<what>` when `spec.out` is not
/// given (`lr-find` names its own).
pub fn prepare_as(
    spec: &RunSpec,
    mut model: LoadedModel,
    what: &str,
    obs: &mut dyn Observer,
) -> Result<Prepared> {
    let start = Instant::now();
    ensure!(spec.fit.epochs > 0, "--epochs must be at least 1");
    if let Some(b) = spec.fit.time_budget_s {
        ensure!(
            b > 0.0 && b.is_finite(),
            "a time budget must be a positive number of seconds, not {b}"
        );
    }
    ensure!(
        spec.train_batch_size != Some(0),
        "--batch-size must be at least 1"
    );
    let ds = open_dataset(
        &spec.data,
        SplitOptions {
            val_fraction: spec.val_fraction,
            seed: spec.fit.seed,
        },
    )?
    .with_selection(spec.protocol())?;
    for w in &ds.warnings {
        obs.warn(w);
    }
    let plan = spec.strategy.plan(&model.net.group_names())?;
    if plan.fresh_weights {
        // Seeded, so a scratch run is as reproducible as the others.
        model.device.seed(spec.fit.seed);
        model.net = model.spec.arch.init(&model.device);
    }
    let dir = run_dir::create(
        spec.out.as_deref(),
        &format!("{}-{}-{what}", data_stem(&spec.data), model.spec.name),
        spec.force,
    )?;
    Ok(Prepared {
        spec: spec.clone(),
        model,
        ds,
        plan,
        dir,
        start,
    })
}

impl Prepared {
    /// The freeze point whose activations the run caches and trains on (`None`: `head`, which
    /// trains on pooled features).
    pub fn cached_upto(&self) -> Option<usize> {
        (self.spec.strategy != Strategy::Head).then_some(self.plan.freeze_point)
    }

    /// The rate of the trained backbone groups relative to the head's: pretrained groups learn
    /// slower; fresh weights (scratch) at the same rate.
    pub fn backbone_lr_scale(&self) -> f64 {
        if self.plan.fresh_weights {
            1.0
        } else {
            graft_spec::defaults::BACKBONE_LR_SCALE
        }
    }
}

/// The frozen part's output for every training image, one entry per training view (the
/// evaluation view, or the K augmented ones), under the cache keys every run shares.
pub(crate) fn train_features(
    run: &Prepared,
    cache: &graft_transfer::FeatureCache,
    upto: Option<usize>,
    obs: &mut dyn Observer,
) -> Vec<SplitFeatures> {
    let views = run.spec.views();
    let view_ids: Vec<u32> = if views == 0 {
        vec![0]
    } else {
        (1..=views as u32).collect()
    };
    let label = &run.spec.label;
    view_ids
        .into_iter()
        .map(|view| {
            let ex = fit::extractor(run, cache, upto, view);
            let what = if view == 0 {
                format!("{label}frozen part (train)")
            } else {
                format!("{label}frozen part (train, view {view}/{views})")
            };
            features(&ex, &run.ds.train, &what, obs)
        })
        .collect()
}

/// Computes (or reads from the cache) the frozen part's output for every image: one view of
/// the validation images, and the training views (the evaluation view, or K augmented ones).
pub fn extract(run: Prepared, obs: &mut dyn Observer) -> Result<Extracted> {
    let cache = feature_cache(&run.model.home);
    let upto = run.cached_upto();
    obs.log(format!(
        "run directory: {} (frozen: {:?}, trained: {:?} + new head)",
        run.dir.display(),
        run.plan.frozen,
        run.plan.trainable
    ));
    let label = &run.spec.label;
    let ex = fit::extractor(&run, &cache, upto, 0);
    let (train_views, val, select) =
        if run.spec.views() == 0 && run.ds.selection != Selection::Report {
            // Training sees the evaluation view: the three splits share an extractor, and go
            // through the network together.
            let what = format!(
                "{label}frozen part (train, {}, {})",
                run.ds.val_name,
                run.ds.select_name()
            );
            let [train, val, select] = split_features(
                &ex,
                [&run.ds.train, &run.ds.val, &run.ds.select],
                &what,
                obs,
            );
            (vec![train], val, select)
        } else {
            let train_views = train_features(&run, &cache, upto, obs);
            let what = format!("{label}frozen part ({})", run.ds.val_name);
            let val = features(&ex, &run.ds.val, &what, obs);
            let what = format!("{label}frozen part ");
            let select = select_features(&ex, &run.ds, &val, &what, obs);
            (train_views, val, select)
        };
    let val_mirrored = match run.spec.tta {
        Tta::None => None,
        Tta::Flip => {
            let what = format!("{label}frozen part ({}, mirrored)", run.ds.val_name);
            Some(mirrored_features(&ex, &run.ds.val, &val, &what, obs)?)
        }
    };
    let failed: Vec<(PathBuf, String)> = train_views[0]
        .failed
        .iter()
        .chain(&val.failed)
        .chain(&select.failed)
        .cloned()
        .collect();
    extract::report_unreadable(&failed, obs);
    ensure!(
        failed.is_empty() || !run.spec.strict,
        "{} images could not be read (listed above) and --strict is set",
        failed.len()
    );
    let (hits, computed, rebuilt) = cache.stats.snapshot();
    obs.log(format!(
        "feature cache: {hits} hits, {computed} computed, {rebuilt} stale entries rebuilt"
    ));
    Ok(Extracted {
        run,
        upto,
        train_views,
        select,
        val,
        val_mirrored,
        failed,
        cache: CacheCounts {
            hits,
            computed,
            rebuilt,
        },
    })
}
