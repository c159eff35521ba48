//! How good a model is on labelled images: a pretrained model's top-1/top-5 on
//! ImageNet-labelled images, or a trained model's accuracy on a split of the user's dataset.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use graft_data::{LabeledImage, Sample, SplitOptions, find_images, open_dataset, read_list_file};
use graft_models::imagenet::parse_label;
use graft_spec::{RunConfig, Tta, defaults};
use graft_transfer::Confusion;
use graft_transfer::train::{Split, average_views, evaluate_head};

use crate::artifact::TrainedModel;
use crate::error::{Result, RunError};
use crate::infer::{classify_files, top_k};
use crate::observer::Observer;
use crate::pretrained::LoadedModel;
use crate::train::{embed_extractor, extract, feature_cache, features, mirrored_features};

/// Which images of a dataset to evaluate on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvalSplit {
    Train,
    /// The held-out split (`val` or `test`).
    Val,
    All,
}

impl FromStr for EvalSplit {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "train" => Ok(Self::Train),
            "val" | "test" | "valid" | "validation" => Ok(Self::Val),
            "all" => Ok(Self::All),
            other => Err(format!(
                "unknown split {other:?}: use train, val (or test) or all"
            )),
        }
    }
}

impl std::fmt::Display for EvalSplit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Train => "train",
            Self::Val => "val",
            Self::All => "all",
        })
    }
}

/// Images with their ImageNet class index, from a list file or a folder of class folders.
pub fn labelled_images(data: &Path) -> Result<Vec<(PathBuf, usize)>> {
    let items: Vec<LabeledImage> = if data.is_dir() {
        let (paths, _) = find_images(&[data.to_path_buf()])?;
        paths
            .into_iter()
            .map(|path| {
                let label = path
                    .parent()
                    .and_then(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                LabeledImage { path, label }
            })
            .collect()
    } else {
        read_list_file(data)?
    };
    items
        .into_iter()
        .map(|item| {
            let class = parse_label(&item.label).ok_or_else(|| {
                RunError::Invalid(format!(
                    "{}: label {:?} of {} is not an ImageNet wnid (n01440764) or class index \
                     (0..999){}",
                    data.display(),
                    item.label,
                    item.path.display(),
                    list_files_hint(data)
                ))
            })?;
            Ok((item.path, class))
        })
        .collect()
}

/// For a folder read as class folders whose names are no labels: the list files at its top,
/// which are what was probably meant (a dataset that keeps its images in one folder and its
/// labels in `labels.csv`).
fn list_files_hint(data: &Path) -> String {
    let Ok(entries) = std::fs::read_dir(data) else {
        return String::new();
    };
    let mut lists: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .is_some_and(|x| x.eq_ignore_ascii_case("csv") || x.eq_ignore_ascii_case("tsv"))
        })
        .collect();
    lists.sort();
    match lists.first() {
        Some(list) => format!(
            "; a folder is read as one subfolder per class: to use its list file, pass it \
             (--data {})",
            list.display()
        ),
        None => String::new(),
    }
}

/// A pretrained model's ImageNet figures.
pub struct PretrainedScore {
    pub n: usize,
    pub top1: f64,
    pub top5: f64,
    pub seconds: f64,
    pub failed: Vec<(PathBuf, String)>,
}

pub fn evaluate_pretrained(
    model: &LoadedModel,
    items: &[(PathBuf, usize)],
    obs: &mut dyn Observer,
) -> Result<PretrainedScore> {
    let paths: Vec<PathBuf> = items.iter().map(|(p, _)| p.clone()).collect();
    let start = Instant::now();
    let (mut n, mut top1, mut top5) = (0usize, 0usize, 0usize);
    let mut failed = Vec::new();
    classify_files(model, None, &paths, obs, |i, path, result| match result {
        Ok(probs) => {
            let top = top_k(&probs, 5);
            let label = items[i].1;
            n += 1;
            top1 += usize::from(top.first().is_some_and(|(c, _)| *c == label));
            top5 += usize::from(top.iter().any(|(c, _)| *c == label));
        }
        Err(e) => failed.push((path.clone(), e.to_string())),
    })?;
    let frac = |k: usize| if n == 0 { 0.0 } else { k as f64 / n as f64 };
    Ok(PretrainedScore {
        n,
        top1: frac(top1),
        top5: frac(top5),
        seconds: start.elapsed().as_secs_f64(),
        failed,
    })
}

/// A trained model's figures on a split of a dataset.
pub struct TrainedScore {
    pub classes: Vec<String>,
    pub confusion: Confusion,
    /// The views each image's probabilities average.
    pub tta: Tta,
    pub seconds: f64,
    pub failed: Vec<(PathBuf, String)>,
}

/// Evaluates the trained model in `dir` on `split` of `data` (split as the run split it when
/// `dir` is a run directory, with its seed and validation fraction), with the run's own
/// test-time augmentation unless `tta` says otherwise.
pub fn evaluate_trained(
    dir: &Path,
    data: &Path,
    split: EvalSplit,
    tta: Option<Tta>,
    choice: &crate::ModelChoice,
    obs: &mut dyn Observer,
) -> Result<TrainedScore> {
    let start = Instant::now();
    let trained = TrainedModel::load(dir)?;
    // A folder holding only the model (no config.json) splits with graft's defaults.
    let (seed, val_fraction, run_tta) = if dir.join(graft_spec::files::CONFIG).exists() {
        let c = RunConfig::read(dir)?;
        (c.seed, c.val_fraction, c.tta)
    } else {
        (defaults::SEED, defaults::VAL_FRACTION, Tta::None)
    };
    let tta = tta.unwrap_or(run_tta);
    let ds = open_dataset(data, SplitOptions { val_fraction, seed })?;
    let classes = trained.card.classes.clone();
    // Labels by class name: the dataset's own order need not be the run's.
    let map = ds
        .classes
        .iter()
        .map(|c| {
            classes.iter().position(|k| k == c).ok_or_else(|| {
                RunError::Invalid(format!(
                    "{}: class {c:?} is not one the run was trained on ({})",
                    data.display(),
                    classes.join(", ")
                ))
            })
        })
        .collect::<Result<Vec<usize>>>()?;
    let samples: Vec<Sample> = match split {
        EvalSplit::Train => ds.train.clone(),
        EvalSplit::Val => ds.val.clone(),
        // A three-split dataset's val (its selection split) is in `select`.
        EvalSplit::All => ds
            .train
            .iter()
            .chain(&ds.select)
            .chain(&ds.val)
            .cloned()
            .collect(),
    };
    let model = trained.as_loaded(choice);
    let cache = feature_cache(&model.home);
    let extractor = embed_extractor(&model, &cache, &model.weights_sha256);
    let feats = features(&extractor, &samples, "evaluate", obs);
    extract::report_unreadable(&feats.failed, obs);
    let labels: Vec<usize> = feats.y.iter().map(|&c| map[c]).collect();
    let head_on = |x: &[Vec<f32>]| {
        let view = Split { x, y: &labels };
        evaluate_head(&trained.head, &view, classes.len(), &model.device)
    };
    let mut evals = vec![head_on(&feats.x)?];
    if tta == Tta::Flip {
        let m = mirrored_features(&extractor, &samples, &feats, "evaluate (mirrored)", obs)?;
        evals.push(head_on(&m.x)?);
    }
    let confusion = average_views(evals, &labels, classes.len())?.confusion;
    Ok(TrainedScore {
        classes,
        confusion,
        tta,
        seconds: start.elapsed().as_secs_f64(),
        failed: feats.failed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dataset folder that keeps its images in one folder and its labels in a list file is
    /// read as class folders, and its error points to the list file.
    #[test]
    fn a_folder_with_a_list_file_points_to_it() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir(dir.path().join("images")).expect("mkdir");
        std::fs::write(dir.path().join("images/a.jpg"), b"not read here").expect("image");
        std::fs::write(
            dir.path().join("labels.csv"),
            "path,label\nimages/a.jpg,0\n",
        )
        .expect("list");
        let err = match labelled_images(dir.path()) {
            Ok(items) => panic!("read as class folders: {items:?}"),
            Err(e) => e.to_string(),
        };
        let list = dir.path().join("labels.csv");
        assert!(err.contains(&format!("--data {}", list.display())), "{err}");
        // The list file itself is read.
        let items = labelled_images(&list).expect("the list file");
        assert_eq!(items, vec![(dir.path().join("images/a.jpg"), 0)]);
    }
}
