//! A pretrained model ready to run: its registry entry, the network with the weights loaded,
//! where they came from (hashed once, here), and the preprocessing it expects.

use std::path::{Path, PathBuf};

use burn::prelude::Device;
use graft_data::{DecodeLimits, Preprocess};
use graft_models::{ModelSpec, Network, default_device, find_model};
use graft_weights::{FetchOptions, LoadPolicy, LoadReport, resolve, sha256_file};

use crate::error::{Context, Result};
use crate::observer::{Event, Observer, ObserverExt};
use crate::spec::ModelChoice;
use crate::{RunError, ensure};

#[derive(Clone)]
pub struct LoadedModel {
    pub spec: ModelSpec,
    pub net: Network,
    pub weights: PathBuf,
    /// Identity of `weights`: cached features are keyed by it.
    pub weights_sha256: String,
    pub report: LoadReport,
    pub preprocess: Preprocess,
    pub device: Device,
    pub batch_size: usize,
    /// `$GRAFT_HOME`: the feature cache is under it.
    pub home: PathBuf,
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

/// Finds the weights (downloading them if allowed), loads them strictly and hashes them.
pub fn load_pretrained(choice: &ModelChoice, obs: &mut dyn Observer) -> Result<LoadedModel> {
    ensure!(choice.batch_size > 0, "--batch-size must be at least 1");
    let spec = find_model(&choice.name)?;
    let weights = fetch_weights(
        &spec,
        choice.weights.as_deref(),
        &choice.fetch_options(),
        obs,
    )?;
    let device = default_device();
    // Hashing the file (for the run's provenance, about 10 ms for Lite0's) runs beside loading
    // it, on the core the loading leaves idle.
    let (loaded, hashed) = rayon::join(
        || {
            spec.arch
                .load(&weights, &LoadPolicy::strict(), spec.name, &device)
                .context(|| format!("cannot load {} weights", spec.name))
        },
        || sha256_file(&weights),
    );
    let (net, report) = loaded?;
    let weights_sha256 = hashed?;
    obs.log(format!(
        "{}: loaded {} tensors from {}",
        spec.name,
        report.applied.len(),
        weights.display()
    ));
    Ok(LoadedModel {
        preprocess: preprocess_for(&spec),
        spec,
        net,
        weights,
        weights_sha256,
        report,
        device,
        batch_size: choice.batch_size,
        home: choice.home.clone(),
    })
}

/// The weights file: `explicit`, else the cache, downloading into it on first use (reported
/// as progress in MiB).
pub fn fetch_weights(
    spec: &ModelSpec,
    explicit: Option<&Path>,
    options: &FetchOptions,
    obs: &mut dyn Observer,
) -> Result<PathBuf> {
    let mut started = false;
    let mut shown = 0u64;
    let path = resolve(
        spec.name,
        &spec.weights,
        explicit,
        options,
        &mut |done, total| {
            if !started {
                started = true;
                obs.log(format!("{}: downloading weights", spec.name));
                obs.begin(spec.name, total.unwrap_or(0) >> 20, "MiB");
            }
            let mib = done >> 20;
            if mib > shown {
                obs.event(Event::Advance(mib - shown));
                shown = mib;
            }
        },
    );
    if started {
        obs.event(Event::End);
    }
    path.map_err(RunError::from)
}

/// The default run directory name's first part: the dataset folder's or list file's stem.
pub(crate) fn data_stem(data: &Path) -> String {
    data.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".into())
}
