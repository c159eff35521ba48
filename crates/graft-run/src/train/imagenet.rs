//! Strategy 1 on the user's classes: the ImageNet classifier as it is, each user class scored by
//! the summed probability of the ImageNet classes mapped onto it; no training.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use graft_models::imagenet;
use graft_spec::{ClassMapping, ImagenetClass, RunConfig, Tta};
use graft_transfer::Confusion;
use graft_transfer::class_map::{self, map_classes};
use graft_transfer::train::{Evaluation, Fitted, Stopped};

use super::Earlier;
use super::checkpoint::write_run_files;
use super::summary::{RunFacts, Trained, summarise};
use super::{
    Prepared, SplitFeatures, embed_extractor, extract, feature_cache, features, select_features,
};
use crate::error::{Result, RunError};
use crate::observer::{Observer, ObserverExt};
use crate::pretrained::LoadedModel;

/// `class,imagenet` rows (a header row starting with `class` is skipped).
fn read_class_map(path: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).map_err(RunError::io(path))?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || (i == 0 && line.starts_with("class")) {
            continue;
        }
        let (class, target) = line.split_once([',', '\t']).ok_or_else(|| {
            RunError::Invalid(format!(
                "{}:{}: expected `class,imagenet`, found {line:?}",
                path.display(),
                i + 1
            ))
        })?;
        rows.push((class.trim().to_string(), target.trim().to_string()));
    }
    Ok(rows)
}

/// The ImageNet classes standing for each user class (explicit rows, else matched by name).
pub fn class_mapping(classes: &[String], class_map: Option<&Path>) -> Result<Vec<Vec<usize>>> {
    let explicit = class_map
        .map(read_class_map)
        .transpose()?
        .unwrap_or_default();
    map_classes(classes, imagenet::classes(), &explicit).map_err(RunError::Invalid)
}

fn mapping_file(classes: &[String], map: &[Vec<usize>]) -> Vec<ClassMapping> {
    classes
        .iter()
        .zip(map)
        .map(|(c, ids)| ClassMapping {
            class: c.clone(),
            imagenet: ids
                .iter()
                .map(|&i| ImagenetClass {
                    index: i,
                    wnid: imagenet::classes()[i].wnid.clone(),
                    name: imagenet::classes()[i].name.clone(),
                })
                .collect(),
        })
        .collect()
}

/// The ImageNet classifier on pooled features, each user class the sum of its ImageNet
/// classes: the confusion and each image's class probabilities.
fn score(
    model: &LoadedModel,
    val: &SplitFeatures,
    map: &[Vec<usize>],
    classes: usize,
) -> Result<(Confusion, Vec<Vec<f32>>)> {
    let mut confusion = Confusion::new(classes);
    let mut val_probs = Vec::with_capacity(val.y.len());
    let dim = model.net.embed_dim();
    for (xs, ys) in val.x.chunks(256).zip(val.y.chunks(256)) {
        let flat: Vec<f32> = xs.iter().flatten().copied().collect();
        let e = Tensor::<2>::from_data(TensorData::new(flat, [xs.len(), dim]), &model.device);
        let probs = burn::tensor::activation::softmax(model.net.classify(e), 1)
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| RunError::Backend(format!("cannot read probabilities: {e:?}")))?;
        for (row, &y) in probs.chunks_exact(probs.len() / xs.len().max(1)).zip(ys) {
            confusion.add(y, class_map::predict(row, map));
            val_probs.push(class_map::class_probabilities(row, map));
        }
    }
    Ok((confusion, val_probs))
}

pub(super) fn run(run: Prepared, obs: &mut dyn Observer) -> Result<Trained> {
    let (model, ds) = (&run.model, &run.ds);
    let map = class_mapping(&ds.classes, run.spec.class_map.as_deref())?;
    for m in mapping_file(&ds.classes, &map) {
        let names: Vec<&str> = m.imagenet.iter().map(|c| c.name.as_str()).collect();
        obs.log(format!("{} <- ImageNet {}", m.class, names.join(", ")));
    }
    let cache = feature_cache(&model.home);
    let extractor = embed_extractor(model, &cache, &model.weights_sha256);
    let what = format!("{}pretrained ({})", run.spec.label, ds.val_name);
    let val = features(&extractor, &ds.val, &what, obs);
    // Nothing is chosen, but compare ranks strategies on the selection split, this one too.
    let what = format!("{}pretrained ", run.spec.label);
    let select = select_features(&extractor, ds, &val, &what, obs);
    let failed: Vec<(PathBuf, String)> = val.failed.iter().chain(&select.failed).cloned().collect();
    extract::report_unreadable(&failed, obs);
    let (select_confusion, _) = score(model, &select, &map, ds.classes.len())?;
    let (confusion, probs) = score(model, &val, &map, ds.classes.len())?;
    let config = RunConfig {
        format: graft_spec::FORMAT,
        graft_version: graft_spec::VERSION.to_string(),
        model: model.spec.name.to_string(),
        weights: model.weights.clone(),
        weights_sha256: model.weights_sha256.clone(),
        data: run.spec.data.clone(),
        strategy: run.spec.strategy,
        seed: run.spec.fit.seed,
        val_fraction: run.spec.val_fraction,
        protocol: Some(run.spec.protocol()),
        frozen_groups: run.plan.frozen.clone(),
        trained_groups: Vec::new(),
        fit: None,
        cached_views: 0,
        backbone_lr_scale: 0.0,
        split: format!("{:?}", ds.split),
        preprocess: format!("{:?}", model.preprocess),
        classes: ds.classes.clone(),
        class_map: Some(mapping_file(&ds.classes, &map)),
        // The ImageNet classifier is scored on the evaluation view only.
        tta: Tta::None,
    };
    write_run_files(&run.dir, &config, ds)?;
    let outcome = Fitted {
        best_epoch: 0,
        best_val_accuracy: select_confusion.accuracy(),
        history: Vec::new(),
        stopped: Stopped::Completed,
    };
    let report = Evaluation {
        loss: 0.0,
        confusion,
        probs,
    };
    let (hits, computed, rebuilt) = cache.stats.snapshot();
    summarise(
        &RunFacts {
            strategy: run.spec.strategy,
            model: model.spec.name,
            data: &run.spec.data,
            plan: &run.plan,
            ds,
            dir: &run.dir,
            n_train: 0,
            n_select: select.y.len(),
            selected: None,
            val_paths: &val.paths,
            val_y: &val.y,
            tta: Tta::None,
            failed: &failed,
            cache: graft_spec::CacheCounts {
                hits,
                computed,
                rebuilt,
            },
            trainable_params: 0,
            time_budget_s: run.spec.fit.time_budget_s,
            train_seconds: 0.0,
            start: run.start,
            earlier: Earlier::default(),
        },
        &outcome,
        &report,
    )
}
