//! Strategy 1 on the user's classes: the ImageNet classifier as it is, each user class scored by
//! the summed probability of the ImageNet classes mapped onto it; no training.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use burn::prelude::*;
use graft_data::Dataset;
use graft_models::imagenet;
use graft_transfer::class_map::{self, map_classes};
use graft_transfer::train::{Fitted, Stopped};
use graft_transfer::{Confusion, FeatureCache, FreezePlan};
use graft_weights::sha256_file;
use serde_json::json;

use super::checkpoint::write_run_files;
use super::summary::{RunFacts, Trained, finish};
use super::{Settings, embed_extractor, features};
use crate::settings::LoadedModel;

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

/// The ImageNet classes standing for each user class (explicit rows, else matched by name).
pub fn class_mapping(
    classes: &[String],
    class_map: Option<&Path>,
) -> anyhow::Result<Vec<Vec<usize>>> {
    let explicit = class_map
        .map(read_class_map)
        .transpose()?
        .unwrap_or_default();
    map_classes(classes, imagenet::classes(), &explicit).map_err(anyhow::Error::msg)
}

pub(super) fn run(
    args: &Settings,
    quiet: bool,
    model: &LoadedModel,
    plan: &FreezePlan,
    ds: &Dataset,
    dir: &Path,
    start: Instant,
) -> anyhow::Result<Trained> {
    let map = class_mapping(&ds.classes, args.class_map.as_deref())?;
    for (c, ids) in ds.classes.iter().zip(&map) {
        let names: Vec<&str> = ids
            .iter()
            .map(|&i| imagenet::classes()[i].name.as_str())
            .collect();
        crate::progress::log(quiet, format!("{c} <- ImageNet {}", names.join(", ")));
    }
    let weights_sha256 = sha256_file(&model.weights)?;
    let cache = FeatureCache::new(graft_weights::graft_home().join("features"));
    let extractor = embed_extractor(model, &cache, &weights_sha256);
    let val = features(
        &extractor,
        &ds.val,
        &format!("{}pretrained ({})", args.label, ds.val_name),
        quiet,
    );
    for (p, e) in &val.failed {
        eprintln!("unreadable: {} ({e})", p.display());
    }
    let mut confusion = Confusion::new(ds.classes.len());
    let mut val_probs = Vec::with_capacity(val.y.len());
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
            val_probs.push(class_map::class_probabilities(row, &map));
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
        val_probs,
        stopped: Stopped::Completed,
    };
    let failed: Vec<&(PathBuf, String)> = val.failed.iter().collect();
    finish(
        &RunFacts {
            settings: args,
            model,
            plan,
            ds,
            dir,
            n_train: 0,
            val_paths: &val.paths,
            val_y: &val.y,
            failed: &failed,
            cache: cache.stats.snapshot(),
            trainable_params: 0,
            train_seconds: 0.0,
            start,
        },
        &outcome,
    )
}
