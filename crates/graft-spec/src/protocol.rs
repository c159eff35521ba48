//! The evaluation protocol as data: which split decisions are taken on (the selection split)
//! and what a run chose there. The reported split is touched once, at the end; see
//! graft-data's `selection` for how the selection split is made.

use serde::{Deserialize, Serialize};

/// How to choose the selection split of a dataset that does not give one.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protocol {
    /// Share of each class's training images carved out for selection (at least one image of
    /// every class with two or more).
    pub select_fraction: f64,
    pub seed: u64,
    /// Decide on the reported split (optimistic; for comparing with tutorials' figures).
    pub select_on_eval: bool,
}

/// Where a dataset's selection split comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Selection {
    /// Not chosen yet (the dataset as opened from two splits).
    None,
    /// The dataset's own val split (it gives test too, which is reported on).
    Given,
    /// A stratified, seeded share of the training images, set apart from training.
    Carved { fraction: f64, seed: u64 },
    /// The reported split itself (`--select-on-eval`): decisions and figure share the images.
    Report,
}

/// The standard error of the difference between two accuracies measured on the same `n`
/// selection images, treated as independent (an upper bound: two models mostly agree), and never
/// below one image: a difference inside it is not evidence either way.
pub fn selection_noise(a: f64, b: f64, n: usize) -> f64 {
    let n = n.max(1) as f64;
    ((a * (1.0 - a) + b * (1.0 - b)) / n).sqrt().max(1.0 / n)
}

/// What a run decided, on which images, and how the chosen model did there. The reported
/// figure (`val_accuracy`) is on other images unless `source` is `Report`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selected {
    /// The selection split's name: `select` (carved from train), `val`, or the reported
    /// split's own name under `--select-on-eval`.
    pub split: String,
    pub source: Selection,
    pub images: usize,
    /// The chosen model's accuracy on the selection split.
    pub accuracy: f64,
    /// What was chosen there, e.g. `epoch 12`, or `nothing` for pretrained.
    pub chose: String,
}

impl Selected {
    /// "epoch 12 chosen on select (37 images, 97.3%)", with a warning under --select-on-eval.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} chosen on {} ({} images, {:.1}%)",
            self.chose,
            self.split,
            self.images,
            100.0 * self.accuracy
        );
        if self.source == Selection::Report {
            s += ": the reported split itself (--select-on-eval), so the figure is optimistic";
        }
        s
    }
}

/// Test-time augmentation: the reported split's predictions averaged over views of each image
/// (class probabilities, as fastai's `tta` and timm's validation do). Views come through the
/// feature cache like every other image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tta {
    /// The evaluation view only.
    #[default]
    None,
    /// The evaluation view and its mirror image (left-right).
    Flip,
}

impl std::fmt::Display for Tta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Tta::None => "none",
            Tta::Flip => "flip",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown test-time augmentation {0:?}: use none or flip")]
pub struct TtaError(pub String);

impl std::str::FromStr for Tta {
    type Err = TtaError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "none" | "off" => Ok(Tta::None),
            "flip" => Ok(Tta::Flip),
            _ => Err(TtaError(text.to_string())),
        }
    }
}
