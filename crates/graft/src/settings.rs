//! Raw arguments resolved into the library's settings: every default filled in from
//! `graft_spec::defaults`, a resumed run's settings read from its config.json.

use graft_run::study::StudySpec;
use graft_run::{ModelChoice, RunConfig, RunSpec};
use graft_spec::{FitConfig, defaults};

use crate::args::{Architecture, DataArgs, LearnArgs, LrFindArgs, ModelArgs, TrainArgs};

pub fn model(args: &ModelArgs) -> ModelChoice {
    ModelChoice {
        batch_size: args.batch_size.unwrap_or(defaults::INFERENCE_BATCH_SIZE),
        ..architecture(&args.arch)
    }
}

/// The model of `export` and `serve`, which choose no batch size of their own.
pub fn architecture(args: &Architecture) -> ModelChoice {
    ModelChoice {
        name: args.model.clone(),
        weights: args.weights.clone(),
        ..ModelChoice::default()
    }
}

pub fn study(
    model_args: &ModelArgs,
    data: &DataArgs,
    out: Option<std::path::PathBuf>,
) -> StudySpec {
    StudySpec {
        model: model(model_args),
        data: data.data.clone(),
        seed: data.seed,
        val_fraction: data.val_fraction,
        select_fraction: data.protocol.select_fraction,
        select_on_eval: data.protocol.select_on_eval,
        out,
        force: data.force,
    }
}

/// `graft train`'s settings: from the command line, or from the run being resumed.
pub fn train(args: &TrainArgs) -> anyhow::Result<RunSpec> {
    if let Some(dir) = &args.resume {
        let config = RunConfig::read(dir)
            .map_err(|e| anyhow::anyhow!("{} is not a graft run directory: {e}", dir.display()))?;
        return Ok(RunSpec::resuming(
            dir.clone(),
            &config,
            model(&args.model),
            args.strict,
        ));
    }
    let Some(data) = &args.data else {
        anyhow::bail!("--data is required");
    };
    Ok(RunSpec {
        model: model(&args.model),
        out: args.out.clone(),
        force: args.force,
        fit: FitConfig {
            epochs: args.epochs,
            lr: args.lr,
            patience: args.patience,
            seed: args.seed,
            time_budget_s: args.time_budget,
            solver: args.head_solver,
            head_first: args.head_first,
            ..learn(&args.learn)
        },
        train_batch_size: args.model.batch_size,
        val_fraction: args.val_fraction,
        select_fraction: args.protocol.select_fraction,
        select_on_eval: args.protocol.select_on_eval,
        cached_views: args.learn.cached_views,
        tta: args.tta,
        class_map: args.class_map.clone(),
        strict: args.strict,
        ..RunSpec::new(data.clone(), args.strategy)
    })
}

/// `graft lr-find`'s settings: the run it would train, and the rates to try.
pub fn lr_find(args: &LrFindArgs) -> (RunSpec, graft_spec::lr_find::LrRange) {
    let data = &args.data;
    let spec = RunSpec {
        model: model(&args.model),
        out: args.out.clone(),
        force: data.force,
        fit: FitConfig {
            seed: data.seed,
            ..learn(&args.learn)
        },
        train_batch_size: args.model.batch_size,
        val_fraction: data.val_fraction,
        select_fraction: data.protocol.select_fraction,
        select_on_eval: data.protocol.select_on_eval,
        cached_views: args.learn.cached_views,
        strict: args.strict,
        ..RunSpec::new(data.data.clone(), args.strategy)
    };
    let range = graft_spec::lr_find::LrRange {
        start: args.start_lr,
        end: args.end_lr,
        steps: args.steps,
    };
    (spec, range)
}

/// The fit settings `train` and `lr-find` share, the rest graft's defaults.
fn learn(args: &LearnArgs) -> FitConfig {
    FitConfig {
        weight_decay: args.weight_decay,
        label_smoothing: args.label_smoothing,
        head: args.head,
        class_balanced: args.class_balanced,
        ..FitConfig::default()
    }
}
