//! Reading a compare directory: `compare.json` (the manifest `graft compare` writes first and
//! updates after every run) and one run directory per strategy, read into [`Results`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use graft_spec::io::{FileError, read_json};
use graft_spec::{MetricsLine, Prediction, RunResult};
use serde::{Deserialize, Serialize};

use crate::conclusion::{Row, Status, best_row, conclusion};

/// A report's files could not be read or written (graft-spec's error: it names the file).
pub type ReportError = FileError;

/// Images per class in one split.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SplitCount {
    pub name: String,
    pub per_class: Vec<usize>,
}

/// The budget every strategy got, declared in the report.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Budget {
    pub max_epochs: usize,
    /// Seconds of training per strategy (frozen-feature extraction not counted).
    pub seconds_per_strategy: Option<f64>,
    pub seed: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunEntry {
    pub strategy: String,
    /// Relative to the compare directory.
    pub dir: String,
    pub status: Status,
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub question: String,
    pub model: String,
    pub data: PathBuf,
    pub classes: Vec<String>,
    pub splits: Vec<SplitCount>,
    pub budget: Budget,
    pub runs: Vec<RunEntry>,
    /// A few training images per class, shown with the dataset.
    pub examples: Vec<(String, PathBuf)>,
    /// Image path -> thumbnail file relative to the compare directory.
    #[serde(default)]
    pub thumbnails: BTreeMap<String, String>,
}

impl Manifest {
    pub fn read(dir: &Path) -> Result<Self, ReportError> {
        read_json(&dir.join("compare.json"))
    }
}

/// One line of a run's `metrics.jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Epoch {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    /// Since the run started (frozen features included).
    #[serde(default)]
    pub seconds: f64,
}

impl From<MetricsLine> for Epoch {
    fn from(m: MetricsLine) -> Self {
        Self {
            epoch: m.record.epoch,
            train_loss: m.record.train_loss,
            val_loss: m.record.val_loss,
            val_accuracy: m.record.val_accuracy,
            seconds: m.seconds,
        }
    }
}

fn read_epochs(path: &Path) -> Result<Vec<Epoch>, ReportError> {
    Ok(MetricsLine::read_all(path)?
        .into_iter()
        .map(Epoch::from)
        .collect())
}

/// Everything the report shows, as `results.json` holds it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Results {
    pub manifest: Manifest,
    pub rows: Vec<Row>,
    pub curves: BTreeMap<String, Vec<Epoch>>,
    /// The strategy with the best validation accuracy (ties: the faster).
    pub best: Option<String>,
    pub best_confusion: Vec<Vec<usize>>,
    /// The best strategy's wrong answers, most confident first (at most 8).
    pub mistakes: Vec<Prediction>,
    pub conclusion: String,
}

/// Reads the manifest and every run directory it lists. A run that failed, or whose files are
/// missing, becomes a failed row saying why: the report is written whatever happened.
pub fn collect(dir: &Path) -> Result<Results, ReportError> {
    let manifest = Manifest::read(dir)?;
    let mut rows = Vec::new();
    let mut curves = BTreeMap::new();
    let mut confusions = BTreeMap::new();
    for run in &manifest.runs {
        let run_dir = dir.join(&run.dir);
        let mut row = Row::failed(&run.strategy, run.error.clone().unwrap_or_default());
        row.status = run.status;
        if run.status == Status::Ok {
            match RunResult::read(&run_dir) {
                Ok(v) => {
                    row = Row::from_result(&run.strategy, &v);
                    confusions.insert(run.strategy.clone(), v.confusion);
                }
                Err(e) => row = Row::failed(&run.strategy, e.to_string()),
            }
        }
        curves.insert(
            run.strategy.clone(),
            read_epochs(&run_dir.join("metrics.jsonl")).unwrap_or_default(),
        );
        rows.push(row);
    }
    let best = best_row(&rows).map(|r| r.strategy.clone());
    let (best_confusion, mistakes) = match &best {
        Some(s) => {
            let m = confusions.remove(s).unwrap_or_default();
            let run = manifest.runs.iter().find(|r| &r.strategy == s);
            let mut wrong: Vec<Prediction> = run
                .map(|r| {
                    Prediction::read_all(&dir.join(&r.dir).join(graft_spec::files::PREDICTIONS))
                })
                .transpose()?
                .unwrap_or_default()
                .into_iter()
                .filter(|p| p.label != p.predicted)
                .collect();
            wrong.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
            wrong.truncate(8);
            (m, wrong)
        }
        None => (Vec::new(), Vec::new()),
    };
    let conclusion = conclusion(&rows);
    Ok(Results {
        manifest,
        rows,
        curves,
        best,
        best_confusion,
        mistakes,
        conclusion,
    })
}
