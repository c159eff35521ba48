//! A finished run directory as a model: the pretrained backbone it names (checked by sha256)
//! and the classifier it trained.

use std::path::{Path, PathBuf};

use anyhow::Context;
use graft_transfer::head::Head;
use graft_transfer::train::HeadConfig;
use graft_weights::{KeyMap, LoadPolicy, load_weights, sha256_file};
use serde_json::Value;

use crate::args::ModelArgs;
use crate::settings::{LoadedModel, load_pretrained};

pub struct TrainedRun {
    pub model: LoadedModel,
    pub head: Head,
    pub classes: Vec<String>,
    /// Identity of the backbone weights in use (the trained backbone's file when the run trained
    /// one): cached features are keyed by it.
    pub weights_sha256: String,
    pub seed: u64,
    pub val_fraction: f64,
}

fn field<'a>(config: &'a Value, key: &str, dir: &Path) -> anyhow::Result<&'a Value> {
    config
        .get(key)
        .with_context(|| format!("{}: config.json has no {key:?}", dir.display()))
}

pub fn load_run(dir: &Path, batch_size: usize, quiet: bool) -> anyhow::Result<TrainedRun> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{} is not a graft run directory", dir.display()))?;
    let config: Value =
        serde_json::from_str(&text).with_context(|| format!("{}: invalid JSON", path.display()))?;
    let str_of = |key: &str| -> anyhow::Result<String> {
        field(&config, key, dir)?
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("{}: {key:?} is not a string", path.display()))
    };
    let classes: Vec<String> = serde_json::from_value(field(&config, "classes", dir)?.clone())
        .with_context(|| format!("{}: \"classes\" is not a list of names", path.display()))?;
    let weights = PathBuf::from(str_of("weights")?);
    let expected = str_of("weights_sha256")?;
    let args = ModelArgs {
        model: str_of("model")?,
        weights: Some(weights.clone()),
        batch_size,
    };
    let mut model = load_pretrained(&args, quiet)?;
    let found = sha256_file(&weights)?;
    anyhow::ensure!(
        found == expected,
        "{}: the backbone weights {} changed since this run was trained (sha256 {found}, run has {expected})",
        dir.display(),
        weights.display()
    );
    // partial:N and scratch runs also trained (part of) the backbone.
    let backbone = dir.join("best_backbone.safetensors");
    let mut weights_sha256 = found;
    if backbone.is_file() {
        // Cached features are keyed by the weights that computed them: these ones.
        weights_sha256 = sha256_file(&backbone)?;
        // Saved under graft's own module paths, which the architecture's key map leaves as they are.
        let (net, _) = model.spec.arch.load(
            &backbone,
            &LoadPolicy::strict(),
            "trained backbone",
            &model.device,
        )?;
        model.net = net;
    }
    let best = dir.join("best.safetensors");
    let dim = model.net.embed_dim();
    let head_cfg: HeadConfig = config
        .get("head")
        .map(|h| serde_json::from_value(h.clone()))
        .transpose()
        .with_context(|| format!("{}: \"head\"", path.display()))?
        .unwrap_or_default();
    let mut head = head_cfg.head.shell(dim, classes.len(), &model.device);
    load_weights(
        &mut head,
        &best,
        &KeyMap::default(),
        &LoadPolicy::strict(),
        "trained head",
    )?;
    Ok(TrainedRun {
        model,
        head,
        classes,
        weights_sha256,
        seed: config.get("seed").and_then(Value::as_u64).unwrap_or(0),
        val_fraction: config
            .get("val_fraction")
            .and_then(Value::as_f64)
            .unwrap_or(0.2),
    })
}
