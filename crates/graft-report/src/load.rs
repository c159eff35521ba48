//! What a compare directory holds: `compare.json` (the manifest `graft compare` writes first and
//! updates after every run) and one run directory per strategy, read into [`Results`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::conclusion::{Row, Status, best_row, conclusion};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
}

fn read(path: &Path) -> Result<String, ReportError> {
    std::fs::read_to_string(path).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn parse<T: for<'de> Deserialize<'de>>(path: &Path, text: &str) -> Result<T, ReportError> {
    serde_json::from_str(text).map_err(|e| ReportError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

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
        let path = dir.join("compare.json");
        parse(&path, &read(&path)?)
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

/// One row of a run's `predictions.csv`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Prediction {
    pub path: String,
    pub label: String,
    pub predicted: String,
    pub confidence: f64,
    pub label_rank: usize,
}

pub fn read_predictions(path: &Path) -> Result<Vec<Prediction>, ReportError> {
    let text = read(path)?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let f = crate::csv::fields(line);
        let bad = |what: &str| ReportError::Parse {
            path: path.to_path_buf(),
            message: format!("line {}: {what}", i + 1),
        };
        if f.len() != 6 {
            return Err(bad(&format!("expected 6 fields, found {}", f.len())));
        }
        out.push(Prediction {
            path: f[0].clone(),
            label: f[1].clone(),
            predicted: f[2].clone(),
            confidence: f[3].parse().map_err(|_| bad("confidence"))?,
            label_rank: f[5].parse().map_err(|_| bad("label_rank"))?,
        });
    }
    Ok(out)
}

fn read_epochs(path: &Path) -> Result<Vec<Epoch>, ReportError> {
    let Ok(text) = std::fs::read_to_string(path) else {
        // `pretrained` trains nothing and has no metrics.
        return Ok(Vec::new());
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| parse(path, l))
        .collect()
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
            let path = run_dir.join("result.json");
            match read(&path).and_then(|t| parse::<serde_json::Value>(&path, &t)) {
                Ok(v) => {
                    row = Row::from_result(&run.strategy, &v);
                    confusions.insert(run.strategy.clone(), v["confusion"].clone());
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
            let m = serde_json::from_value(confusions.remove(s).unwrap_or_default())
                .unwrap_or_default();
            let run = manifest.runs.iter().find(|r| &r.strategy == s);
            let mut wrong: Vec<Prediction> = run
                .map(|r| read_predictions(&dir.join(&r.dir).join("predictions.csv")))
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

/// Writes `report.html`, `report.md`, `results.json` and `plots/*.svg` into `dir`, each
/// atomically (a temporary file renamed into place).
pub fn write(dir: &Path, results: &Results) -> Result<(), ReportError> {
    let plots = crate::html::plots(results);
    std::fs::create_dir_all(dir.join("plots")).map_err(|source| ReportError::Io {
        path: dir.join("plots"),
        source,
    })?;
    for (name, svg) in &plots {
        write_atomic(&dir.join("plots").join(format!("{name}.svg")), svg)?;
    }
    let json = serde_json::to_string_pretty(results).map_err(|e| ReportError::Parse {
        path: dir.join("results.json"),
        message: e.to_string(),
    })?;
    write_atomic(&dir.join("results.json"), &json)?;
    write_atomic(
        &dir.join("report.md"),
        &crate::markdown::compare(results, &plots),
    )?;
    write_atomic(
        &dir.join("report.html"),
        &crate::html::compare(dir, results, &plots),
    )
}

pub(crate) fn write_atomic(path: &Path, text: &str) -> Result<(), ReportError> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    let io = |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
