//! The files of a run directory, as types: the one reader and writer for the CLI, the reports
//! and everything else. Each JSON file carries `format`; one written by another version is
//! refused with a message, never read with silent defaults.
//!
//! ```text
//! RUN_DIR/config.json        RunConfig: every resolved setting, the classes, the split
//! RUN_DIR/classes.json       the class names, in label order
//! RUN_DIR/split.csv          path,label,split of every image used (train, select, val/test)
//! RUN_DIR/metrics.jsonl      one MetricsLine per epoch
//! RUN_DIR/result.json        RunResult: the figures reports read
//! RUN_DIR/predictions.csv    one Prediction per image of the reported split
//! RUN_DIR/model.safetensors  the trained network and head, under the original checkpoint's names
//! RUN_DIR/model.json         ModelCard: what is needed to use model.safetensors
//! RUN_DIR/resume/            the last epoch's state, for --resume
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::csv::{fields, quote};
use crate::fit::{FitConfig, HeadKind};
use crate::io::{FileError, read_text, read_versioned, write_atomic, write_json};
use crate::strategy::Strategy;

/// The run-file format this version writes and reads. Format 1 (no `format` field) had
/// untyped files and a model that pointed at its pretrained weights file.
pub const FORMAT: u32 = 2;

pub const CONFIG: &str = "config.json";
pub const RESULT: &str = "result.json";
pub const METRICS: &str = "metrics.jsonl";
pub const PREDICTIONS: &str = "predictions.csv";
pub const MODEL_WEIGHTS: &str = "model.safetensors";
pub const MODEL_CARD: &str = "model.json";

/// ImageNet classes standing for one user class (`--strategy pretrained`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassMapping {
    pub class: String,
    pub imagenet: Vec<ImagenetClass>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImagenetClass {
    pub index: usize,
    pub wnid: String,
    pub name: String,
}

/// `config.json`: what a run was asked to do, resolved; enough to resume it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub format: u32,
    pub graft_version: String,
    pub model: String,
    /// The pretrained weights it started from (provenance; the trained model does not need it).
    pub weights: PathBuf,
    pub weights_sha256: String,
    pub data: PathBuf,
    pub strategy: Strategy,
    pub seed: u64,
    pub val_fraction: f64,
    pub frozen_groups: Vec<String>,
    pub trained_groups: Vec<String>,
    /// How the trained part was fitted (`None` for pretrained, which trains nothing).
    pub fit: Option<FitConfig>,
    pub cached_views: usize,
    pub backbone_lr_scale: f64,
    pub split: String,
    pub preprocess: String,
    pub classes: Vec<String>,
    /// `pretrained` only: the ImageNet classes each user class stands for.
    pub class_map: Option<Vec<ClassMapping>>,
    /// How the selection split was made (`None`: a run from before the protocol, which
    /// selected on the reported split).
    #[serde(default)]
    pub protocol: Option<crate::Protocol>,
    /// Test-time augmentation of the reported split (absent in runs from before it: none).
    #[serde(default)]
    pub tta: crate::Tta,
}

impl RunConfig {
    pub fn read(dir: &Path) -> Result<Self, FileError> {
        read_versioned(&dir.join(CONFIG), FORMAT)
    }

    pub fn write(&self, dir: &Path) -> Result<(), FileError> {
        write_json(&dir.join(CONFIG), self)
    }
}

/// Why a training loop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stopped {
    /// Every configured epoch ran.
    Completed,
    /// No better validation accuracy for `patience` epochs.
    EarlyStopped,
    /// The next epoch would not have fitted the time budget.
    TimeBudget,
}

/// One epoch of a fit loop.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
}

/// One line of `metrics.jsonl`: an epoch and the seconds since the run started (frozen
/// features included; a resumed run's clock continues).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricsLine {
    #[serde(flatten)]
    pub record: EpochRecord,
    pub seconds: f64,
}

impl MetricsLine {
    /// Every line of `path`; a missing file is no epochs (`pretrained` trains none).
    pub fn read_all(path: &Path) -> Result<Vec<Self>, FileError> {
        if !path.exists() {
            return Ok(Vec::new());
        }
        read_text(path)?
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l)
                    .map_err(|e| FileError::parse(path, format!("line {}: {e}", i + 1)))
            })
            .collect()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Unreadable {
    pub path: PathBuf,
    pub error: String,
}

/// Feature cache use during a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheCounts {
    pub hits: usize,
    pub computed: usize,
    pub rebuilt: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassResult {
    pub class: String,
    pub precision: f64,
    pub recall: f64,
    pub images: usize,
}

/// `result.json`: a finished run's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunResult {
    pub format: u32,
    pub strategy: Strategy,
    pub model: String,
    pub trained_groups: Vec<String>,
    pub frozen_groups: Vec<String>,
    pub trainable_params: usize,
    pub train_images: usize,
    pub val_images: usize,
    pub val_split: String,
    pub val_accuracy: f64,
    pub val_top5: Option<f64>,
    pub macro_f1: f64,
    pub best_epoch: usize,
    pub epochs_run: usize,
    pub stopped: Stopped,
    pub time_budget_s: Option<f64>,
    /// Wall-clock seconds of the whole run (frozen features, training, saving).
    pub seconds: f64,
    pub train_seconds: f64,
    /// Training images processed per second of training.
    pub images_per_s: f64,
    pub run_dir: PathBuf,
    pub unreadable: Vec<Unreadable>,
    pub cache: CacheCounts,
    pub classes: Vec<String>,
    pub per_class: Vec<ClassResult>,
    pub confusion: Vec<Vec<usize>>,
    /// Where the run's decisions were taken (`None`: a run from before the protocol).
    #[serde(default)]
    pub selection: Option<crate::Selected>,
    /// The views `val_accuracy` averages (absent in runs from before it: none).
    #[serde(default)]
    pub tta: crate::Tta,
}

impl RunResult {
    pub fn read(dir: &Path) -> Result<Self, FileError> {
        read_versioned(&dir.join(RESULT), FORMAT)
    }

    pub fn write(&self, dir: &Path) -> Result<(), FileError> {
        write_json(&dir.join(RESULT), self)
    }
}

/// Preprocessing a model expects, as torchvision writes it: `Resize(resize)`,
/// `CenterCrop(crop)`, `ToTensor()`, `Normalize(mean, std)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preprocessing {
    pub resize: u32,
    pub crop: u32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

/// `model.json`: how to use `model.safetensors`, the trained network and head in one file
/// under the original checkpoint's tensor names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelCard {
    pub format: u32,
    pub graft_version: String,
    /// The architecture (`graft weights list` names).
    pub architecture: String,
    pub classes: Vec<String>,
    pub head: HeadKind,
    /// Tensor-name prefix of the new classifier in `model.safetensors` (`fc`, `_fc`,
    /// `classifier`): a single layer is `PREFIX.weight`; an MLP is `PREFIX.0`, `.3`, `.6`,
    /// as torchvision's VGG classifier.
    pub classifier: String,
    pub input_size: u32,
    pub preprocessing: Preprocessing,
    pub strategy: Strategy,
    /// Validation accuracy of this model in its run.
    pub val_accuracy: Option<f64>,
    /// sha256 of the pretrained weights the run started from (provenance only).
    pub pretrained_sha256: String,
}

impl ModelCard {
    pub fn read(dir: &Path) -> Result<Self, FileError> {
        read_versioned(&dir.join(MODEL_CARD), FORMAT)
    }

    pub fn write(&self, dir: &Path) -> Result<(), FileError> {
        write_json(&dir.join(MODEL_CARD), self)
    }
}

/// One point of `probe.json`'s curve: the accuracy of the same linear classifier on one
/// group's pooled output.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ProbeGroup {
    pub group: String,
    /// Width of the features (channels; for the last group, the classifier's input).
    pub dim: usize,
    pub val_accuracy: f64,
}

/// What the probe curve suggests (`graft_transfer::auto::recommend`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Recommendation {
    /// `head` or `partial:N`.
    pub strategy: Strategy,
    /// The frozen prefix ends after this group.
    pub freeze_after: String,
    pub reason: String,
}

/// One row of `predictions.csv`: the best model's answer for a validation image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub path: String,
    pub label: String,
    pub predicted: String,
    pub confidence: f64,
    pub label_probability: f64,
    /// 1 when the label was the top answer.
    pub label_rank: usize,
}

const PREDICTIONS_HEADER: &str = "path,label,predicted,confidence,label_probability,label_rank";

impl Prediction {
    pub fn write_all(path: &Path, rows: &[Self]) -> Result<(), FileError> {
        let mut s = format!("{PREDICTIONS_HEADER}\n");
        for r in rows {
            s += &format!(
                "{},{},{},{:.6},{:.6},{}\n",
                quote(&r.path),
                quote(&r.label),
                quote(&r.predicted),
                r.confidence,
                r.label_probability,
                r.label_rank
            );
        }
        write_atomic(path, s.as_bytes())
    }

    pub fn read_all(path: &Path) -> Result<Vec<Self>, FileError> {
        let text = read_text(path)?;
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate().skip(1) {
            let f = fields(line);
            let bad = |what: &str| FileError::parse(path, format!("line {}: {what}", i + 1));
            if f.len() != 6 {
                return Err(bad(&format!("expected 6 fields, found {}", f.len())));
            }
            out.push(Self {
                path: f[0].clone(),
                label: f[1].clone(),
                predicted: f[2].clone(),
                confidence: f[3].parse().map_err(|_| bad("confidence"))?,
                label_probability: f[4].parse().map_err(|_| bad("label_probability"))?,
                label_rank: f[5].parse().map_err(|_| bad("label_rank"))?,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Test = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn predictions_round_trip_through_csv() -> Test {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join(PREDICTIONS);
        let rows = vec![Prediction {
            path: "a, \"b\".jpg".into(),
            label: "ants".into(),
            predicted: "bees".into(),
            confidence: 0.75,
            label_probability: 0.25,
            label_rank: 2,
        }];
        Prediction::write_all(&p, &rows)?;
        assert_eq!(Prediction::read_all(&p)?, rows);
        Ok(())
    }

    #[test]
    fn a_result_missing_a_field_names_the_field() -> Test {
        let dir = tempfile::tempdir()?;
        std::fs::write(
            dir.path().join(RESULT),
            r#"{"format": 2, "strategy": "head"}"#,
        )?;
        let e = RunResult::read(dir.path())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("missing field `model`"), "{e}");
        Ok(())
    }
}
