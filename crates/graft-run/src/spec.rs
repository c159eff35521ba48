//! What a run is asked to do, resolved: every setting with its value, no "default" left to
//! look up later. The CLI builds one from its arguments, `--resume` from a run's config.json.

use std::path::PathBuf;

use graft_spec::{FitConfig, Protocol, RunConfig, Strategy, Tta, defaults};
use serde::{Deserialize, Serialize};

/// Which pretrained model, from which weights file (`None`: the cache, downloading on first
/// use), and how many images go through it at a time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelChoice {
    pub name: String,
    pub weights: Option<PathBuf>,
    /// Images per forward pass for frozen features and predictions.
    pub batch_size: usize,
    /// Where downloaded weights and the feature cache live (`$GRAFT_HOME`).
    pub home: PathBuf,
    /// Never download (`GRAFT_OFFLINE`).
    pub offline: bool,
}

/// The environment's `$GRAFT_HOME` and `GRAFT_OFFLINE`, read once here.
impl Default for ModelChoice {
    fn default() -> Self {
        let env = graft_weights::FetchOptions::from_env();
        Self {
            name: defaults::MODEL.to_string(),
            weights: None,
            batch_size: defaults::INFERENCE_BATCH_SIZE,
            home: env.home,
            offline: env.offline,
        }
    }
}

impl ModelChoice {
    pub fn fetch_options(&self) -> graft_weights::FetchOptions {
        graft_weights::FetchOptions {
            home: self.home.clone(),
            offline: self.offline,
        }
    }
}

/// One training run: a strategy on a dataset, into a run directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    pub model: ModelChoice,
    pub data: PathBuf,
    pub strategy: Strategy,
    /// The run directory (`None`: `runs/<dataset>-<model>-<strategy>`, numbered when taken).
    pub out: Option<PathBuf>,
    /// Write into an existing, non-empty `out` (graft replaces only its own files).
    pub force: bool,
    /// Continue the run in `out` from its last saved epoch.
    pub resume: bool,
    /// `fit.batch_size` is the training batch; `None` in `train_batch_size` means the
    /// strategy's default (32 on pooled features, 16 on cached activations).
    pub fit: FitConfig,
    pub train_batch_size: Option<usize>,
    pub val_fraction: f64,
    /// Which split decisions are taken on (the epoch, here).
    pub select_fraction: f64,
    pub select_on_eval: bool,
    /// Augmented training views cached per image (`None`: 0 for head, 2 otherwise).
    pub cached_views: Option<usize>,
    /// Test-time augmentation of the reported split: each image's views averaged.
    pub tta: Tta,
    /// `pretrained`: a `class,imagenet` file mapping the user's classes.
    pub class_map: Option<PathBuf>,
    /// Refuse the dataset if any image cannot be read.
    pub strict: bool,
    /// Put before progress labels (`compare` says which run of how many).
    #[serde(skip)]
    pub label: String,
    /// A lower freeze point whose cached activations this run may start from instead of the
    /// images (`compare` runs the partial strategies from the most groups down).
    #[serde(skip)]
    pub reuse_from: Option<usize>,
}

impl RunSpec {
    /// graft's defaults for `strategy` on `data`.
    pub fn new(data: impl Into<PathBuf>, strategy: Strategy) -> Self {
        Self {
            model: ModelChoice::default(),
            data: data.into(),
            strategy,
            out: None,
            force: false,
            resume: false,
            fit: FitConfig::default(),
            train_batch_size: None,
            val_fraction: defaults::VAL_FRACTION,
            select_fraction: defaults::SELECT_FRACTION,
            select_on_eval: false,
            cached_views: None,
            tta: defaults::TTA,
            class_map: None,
            strict: false,
            label: String::new(),
            reuse_from: None,
        }
    }

    /// The settings of the run in `dir`, to continue it. What the run fixed (model, weights,
    /// data, strategy, fitting) comes from its config.json; the rest of `model` (batch, home)
    /// and `strict` may differ, since they do not change the result.
    pub fn resuming(dir: PathBuf, config: &RunConfig, model: ModelChoice, strict: bool) -> Self {
        let fit = config.fit.clone().unwrap_or_default();
        // A run from before the protocol chose its epoch on the reported split.
        let protocol = config.protocol.unwrap_or(Protocol {
            select_fraction: defaults::SELECT_FRACTION,
            seed: fit.seed,
            select_on_eval: true,
        });
        Self {
            model: ModelChoice {
                name: config.model.clone(),
                weights: Some(config.weights.clone()),
                ..model
            },
            data: config.data.clone(),
            strategy: config.strategy,
            out: Some(dir),
            force: true,
            resume: true,
            train_batch_size: Some(fit.batch_size),
            fit,
            val_fraction: config.val_fraction,
            select_fraction: protocol.select_fraction,
            select_on_eval: protocol.select_on_eval,
            cached_views: Some(config.cached_views),
            tta: config.tta,
            class_map: None,
            strict,
            label: String::new(),
            reuse_from: None,
        }
    }

    /// How this run's selection split is made.
    pub fn protocol(&self) -> Protocol {
        Protocol {
            select_fraction: self.select_fraction,
            seed: self.fit.seed,
            select_on_eval: self.select_on_eval,
        }
    }

    /// The training batch this run uses.
    pub fn train_batch(&self, on_activations: bool) -> usize {
        self.train_batch_size.unwrap_or(if on_activations {
            defaults::FINETUNE_BATCH_SIZE
        } else {
            defaults::HEAD_BATCH_SIZE
        })
    }

    /// Augmented views cached per training image.
    pub fn views(&self) -> usize {
        self.cached_views
            .unwrap_or(if self.strategy == Strategy::Head {
                defaults::HEAD_VIEWS
            } else {
                defaults::FINETUNE_VIEWS
            })
    }
}
