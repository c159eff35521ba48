//! Frozen features of a dataset's images through the feature cache: the keys every command
//! shares (so train, evaluate, probe and compare read each other's entries) and the per-split
//! result with the images that could not be read.

use std::path::PathBuf;

use burn::prelude::*;
use graft_data::{Dataset, Sample, Selection};
use graft_transfer::CacheKey;
use graft_transfer::FeatureCache;
use graft_transfer::features::{Extractor, FeatureError, MIRRORED_VIEW, Output};

use crate::ensure;
use crate::error::Result;
use crate::observer::{Event, Observer, ObserverExt};
use crate::pretrained::LoadedModel;

/// Cached inputs of one split, with the images that could not be read.
#[derive(Clone)]
pub struct SplitFeatures {
    /// The images that were read, in the order of `x` and `y`.
    pub paths: Vec<PathBuf>,
    pub x: Vec<Vec<f32>>,
    pub y: Vec<usize>,
    pub failed: Vec<(PathBuf, String)>,
}

/// The feature cache under `home/features` (`$GRAFT_HOME`).
pub fn feature_cache(home: &std::path::Path) -> FeatureCache {
    FeatureCache::new(crate::cache::dir(home))
}

/// `extractor`'s output for every sample, with progress under `label`.
pub fn features(
    extractor: &Extractor<'_>,
    samples: &[Sample],
    label: &str,
    obs: &mut dyn Observer,
) -> SplitFeatures {
    let [one] = split_features(extractor, [samples], label, obs);
    one
}

/// `extractor`'s output for the samples of each split, in that order, from one pass through
/// the network: one pipeline of decoding and batches instead of one per split, whose starts,
/// ends and part-filled last batches cost 1-3% of strategy 2 on hymenoptera (three splits).
pub fn split_features<const N: usize>(
    extractor: &Extractor<'_>,
    splits: [&[Sample]; N],
    label: &str,
    obs: &mut dyn Observer,
) -> [SplitFeatures; N] {
    let paths: Vec<PathBuf> = splits
        .iter()
        .flat_map(|samples| samples.iter().map(|s| s.path.clone()))
        .collect();
    obs.begin(label, paths.len() as u64, "images");
    let results = extractor.embeddings(&paths, &mut |n| obs.event(Event::Advance(n as u64)));
    obs.event(Event::End);
    let mut results = results.into_iter();
    splits.map(|samples| split(samples, &mut results))
}

/// The next `samples.len()` of `results` as `samples`' split.
fn split(
    samples: &[Sample],
    results: &mut dyn Iterator<Item = Result<Vec<f32>, FeatureError>>,
) -> SplitFeatures {
    let mut out = SplitFeatures {
        paths: Vec::new(),
        x: Vec::new(),
        y: Vec::new(),
        failed: Vec::new(),
    };
    for (s, r) in samples.iter().zip(results) {
        match r {
            Ok(v) => {
                out.paths.push(s.path.clone());
                out.x.push(v);
                out.y.push(s.class);
            }
            Err(e) => out.failed.push((s.path.clone(), e.to_string())),
        }
    }
    out
}

/// `plain`'s samples again through `extractor`, mirrored left to right (`--tta flip`): in
/// `plain`'s order, or an error if they did not read the same images (both views are decoded
/// from the same files, so they fail or not together).
pub fn mirrored_features(
    extractor: &Extractor<'_>,
    samples: &[Sample],
    plain: &SplitFeatures,
    label: &str,
    obs: &mut dyn Observer,
) -> Result<SplitFeatures> {
    let mirrored = features(&extractor.viewing(MIRRORED_VIEW), samples, label, obs);
    ensure!(
        mirrored.paths == plain.paths,
        "{label}: the mirrored view did not read the same images as the plain one"
    );
    Ok(mirrored)
}

/// The selection split's features: its own images through `extractor`, or under
/// `--select-on-eval` a copy of the reported split's `val` (without its unreadable images,
/// which `val` already reports).
pub fn select_features(
    extractor: &Extractor<'_>,
    ds: &Dataset,
    val: &SplitFeatures,
    label: &str,
    obs: &mut dyn Observer,
) -> SplitFeatures {
    if ds.selection == Selection::Report {
        return SplitFeatures {
            failed: Vec::new(),
            ..val.clone()
        };
    }
    let what = format!("{label}({})", ds.select_name());
    features(extractor, &ds.select, &what, obs)
}

/// The cache key of what is cached at `freeze_point` (`None`: the pooled classifier input),
/// computed by the backbone weights whose sha256 is `weights_sha256`.
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

/// The extractor of pooled classifier inputs (what `head` trains on), shared by `train`,
/// `pretrained`, `evaluate --run` and `probe`, so they read and write the same cache entries.
pub fn embed_extractor<'a>(
    model: &'a LoadedModel,
    cache: &'a FeatureCache,
    weights_sha256: &str,
) -> Extractor<'a> {
    Extractor {
        net: &model.net,
        device: &model.device,
        preprocess: model.preprocess,
        cache,
        key: cache_key(model, weights_sha256, None),
        batch_size: model.batch_size,
        output: Output::Embed,
        base: None,
    }
}

/// Output shape `[c, h, w]` of groups `0..p` for this model's input size.
pub fn shape_at(model: &LoadedModel, p: usize) -> [usize; 3] {
    let s = model.preprocess.crop as usize;
    let y = model
        .net
        .forward_groups(0..p, Tensor::<4>::zeros([1, 3, s, s], &model.device));
    let [_, c, h, w] = y.dims();
    [c, h, w]
}

/// Reports every unreadable image to the observer.
pub(crate) fn report_unreadable(failed: &[(PathBuf, String)], obs: &mut dyn Observer) {
    for (p, e) in failed {
        obs.event(Event::Unreadable { path: p, error: e });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(names: &[&str]) -> Vec<Sample> {
        names
            .iter()
            .enumerate()
            .map(|(class, n)| Sample {
                path: PathBuf::from(n),
                class,
            })
            .collect()
    }

    #[test]
    fn one_pass_results_go_back_to_their_splits_with_their_failures() {
        let (train, val) = (samples(&["t0", "t1"]), samples(&["v0", "v1", "v2"]));
        let failure = |p: &str| FeatureError::Backend {
            path: PathBuf::from(p),
            message: "broken".into(),
        };
        let results = vec![
            Ok(vec![0.0]),
            Err(failure("t1")),
            Ok(vec![2.0]),
            Err(failure("v1")),
            Ok(vec![4.0]),
        ];
        let mut results = results.into_iter();
        let (t, v) = (split(&train, &mut results), split(&val, &mut results));
        assert!(results.next().is_none());
        assert_eq!(t.paths, [PathBuf::from("t0")]);
        assert_eq!((t.x, t.y), (vec![vec![0.0]], vec![0]));
        assert_eq!(t.failed.len(), 1);
        assert_eq!(t.failed[0].0, PathBuf::from("t1"));
        assert_eq!(v.paths, [PathBuf::from("v0"), PathBuf::from("v2")]);
        assert_eq!((v.x, v.y), (vec![vec![2.0], vec![4.0]], vec![0, 2]));
        assert_eq!(v.failed[0].0, PathBuf::from("v1"));
        assert!(v.failed[0].1.contains("broken"));
    }
}
