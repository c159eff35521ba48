//! Arguments resolved into what the commands run with: a model spec, a loaded network, the
//! weights it came from and the preprocessing it needs.

use std::path::PathBuf;

use anyhow::Context;
use burn::prelude::Device;
use graft_data::{DecodeLimits, Preprocess};
use graft_models::{ModelSpec, Network, default_device, find_model};
use graft_weights::{FetchOptions, LoadPolicy, LoadReport, resolve};

use crate::args::ModelArgs;
use crate::progress::{Progress, log};

#[derive(Clone)]
pub struct LoadedModel {
    pub spec: ModelSpec,
    pub net: Network,
    pub weights: PathBuf,
    pub report: LoadReport,
    pub preprocess: Preprocess,
    pub device: Device,
    pub batch_size: usize,
}

pub fn preprocess_for(spec: &ModelSpec) -> Preprocess {
    Preprocess {
        resize: spec.resize_size as u32,
        crop: spec.input_size as u32,
        mean: spec.normalization.mean,
        std: spec.normalization.std,
        limits: DecodeLimits::default(),
    }
}

pub fn load_pretrained(args: &ModelArgs, quiet: bool) -> anyhow::Result<LoadedModel> {
    anyhow::ensure!(args.batch_size > 0, "--batch-size must be at least 1");
    let spec = find_model(&args.model)?;
    let weights = fetch_weights(&spec, args.weights.as_deref(), quiet)?;
    let device = default_device();
    let (net, report) = spec
        .arch
        .load(&weights, &LoadPolicy::strict(), spec.name, &device)
        .with_context(|| format!("cannot load {} weights", spec.name))?;
    log(
        quiet,
        format!(
            "{}: loaded {} tensors from {}",
            spec.name,
            report.applied.len(),
            weights.display()
        ),
    );
    Ok(LoadedModel {
        preprocess: preprocess_for(&spec),
        spec,
        net,
        weights,
        report,
        device,
        batch_size: args.batch_size,
    })
}

pub fn fetch_weights(
    spec: &ModelSpec,
    explicit: Option<&std::path::Path>,
    quiet: bool,
) -> anyhow::Result<PathBuf> {
    let mut bar: Option<Progress> = None;
    let path = resolve(
        spec.name,
        &spec.weights,
        explicit,
        &FetchOptions::from_env(),
        &mut |done, total| {
            bar.get_or_insert_with(|| {
                log(quiet, format!("{}: downloading weights", spec.name));
                Progress::new(spec.name, total.unwrap_or(0) >> 20, "MiB", quiet)
            })
            .set(done >> 20);
        },
    );
    if let Some(bar) = bar {
        bar.finish();
    }
    Ok(path?)
}

/// What `probe`, `compare` and `auto` start from: the dataset split with the seed (checked
/// before anything is loaded or written), the pretrained model, and the output directory
/// (`out`, or `runs/<dataset>-<model>-<what>`; an existing one only with `--force`).
pub fn prepare(
    data: &crate::args::DataArgs,
    model: &ModelArgs,
    out: Option<&std::path::Path>,
    what: &str,
    quiet: bool,
) -> anyhow::Result<(graft_data::Dataset, LoadedModel, PathBuf)> {
    let ds = graft_data::open_dataset(
        &data.data,
        graft_data::SplitOptions {
            val_fraction: data.val_fraction,
            seed: data.seed,
        },
    )?;
    let model = load_pretrained(model, quiet)?;
    let stem = data
        .data
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".into());
    let dir = crate::run_dir::create(
        out,
        &format!("{stem}-{}-{what}", model.spec.name),
        data.force,
    )?;
    Ok((ds, model, dir))
}
