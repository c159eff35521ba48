//! The cross-validated linear head on cached features, timed, with the features written out
//! for the peer (bench/peer_linear_probe.py: scikit-learn's GridSearchCV on the same rows).
//!
//!   cargo run --release -p graft-run --example linear_probe -- DATA WEIGHTS OUT_PREFIX
//!
//! Writes OUT_PREFIX-{train,test}.{f32,labels} (little-endian f32 rows, u32 labels) and prints
//! one JSON line: the chosen C, every C's mean CV accuracy, the seconds the search took, and
//! the accuracy on the dataset's held-out split (which no choice looked at). `scalings` repeats
//! the search on standardised and on L2-normalised features (issue 16: keep what wins), the
//! statistics taken from the training rows only.

use std::path::PathBuf;
use std::time::Instant;

use graft_data::{SplitOptions, open_dataset};
use graft_run::train::{embed_extractor, feature_cache, features};
use graft_run::{ModelChoice, Silent, load_pretrained};
use graft_transfer::logistic::{CvOptions, CvResult, Features, fit_cv};

fn write(path: PathBuf, bytes: Vec<u8>) -> anyhow::Result<()> {
    graft_spec::write_atomic(&path, &bytes)?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [data, weights, prefix] = args.as_slice() else {
        anyhow::bail!("usage: linear_probe DATA WEIGHTS OUT_PREFIX");
    };
    let model = load_pretrained(
        &ModelChoice {
            weights: Some(weights.into()),
            ..ModelChoice::default()
        },
        &mut Silent,
    )?;
    let ds = open_dataset(data.as_ref(), SplitOptions::default())?;
    let cache = feature_cache(&model.home);
    let ex = embed_extractor(&model, &cache, &model.weights_sha256);
    let train = features(&ex, &ds.train, "train", &mut Silent);
    let test = features(&ex, &ds.val, "held out", &mut Silent);
    let d = train.x.first().map_or(0, Vec::len);
    let k = ds.classes.len();
    let flat = |rows: &[Vec<f32>]| rows.concat();
    let (xt, xh) = (flat(&train.x), flat(&test.x));
    for (name, x, y) in [("train", &xt, &train.y), ("test", &xh, &test.y)] {
        write(
            PathBuf::from(format!("{prefix}-{name}.f32")),
            x.iter().flat_map(|v| v.to_le_bytes()).collect(),
        )?;
        write(
            PathBuf::from(format!("{prefix}-{name}.labels")),
            y.iter().flat_map(|v| (*v as u32).to_le_bytes()).collect(),
        )?;
    }
    let started = Instant::now();
    let cv = fit_cv(Features { x: &xt, d }, &train.y, k, &CvOptions::default());
    let seconds = started.elapsed().as_secs_f64();
    let predicted = cv.model.predict(Features { x: &xh, d });
    let right = predicted
        .iter()
        .zip(&test.y)
        .filter(|(a, b)| a == b)
        .count();
    // The unscaled search is the one above; the scaled ones repeat it on transformed rows.
    let scaled = |name: &str, xt: &[f32], xh: &[f32]| {
        let cv = fit_cv(Features { x: xt, d }, &train.y, k, &CvOptions::default());
        let right = cv.model.correct(Features { x: xh, d }, &test.y);
        scaling_json(name, &cv, right, test.y.len())
    };
    let (mean, std) = moments(&xt, d);
    let scalings = [
        scaling_json("none", &cv, right, test.y.len()),
        scaled(
            "standardise",
            &standardise(&xt, &mean, &std),
            &standardise(&xh, &mean, &std),
        ),
        scaled("l2", &l2_rows(&xt, d), &l2_rows(&xh, d)),
    ];
    println!(
        "{}",
        serde_json::json!({
            "scalings": scalings,
            "dataset": data, "n_train": train.y.len(), "n_test": test.y.len(), "d": d, "k": k,
            "held_out_split": ds.val_name, "cv_seconds": seconds, "c": cv.c,
            "cv_scores": cv.scores, "iterations": cv.iterations, "evaluations": cv.evaluations,
            "test_accuracy": right as f64 / test.y.len().max(1) as f64,
        })
    );
    Ok(())
}

/// One scaling's line: the chosen C, its CV accuracy and the held-out accuracy.
fn scaling_json(name: &str, cv: &CvResult, right: usize, n: usize) -> serde_json::Value {
    let best = cv.scores.iter().map(|s| s.1).fold(0.0, f64::max);
    serde_json::json!({"scaling": name, "c": cv.c, "cv_accuracy": best,
        "test_accuracy": right as f64 / n.max(1) as f64})
}

/// Per-column mean and standard deviation (1 where a column is constant).
fn moments(x: &[f32], d: usize) -> (Vec<f32>, Vec<f32>) {
    let n = (x.len() / d.max(1)).max(1) as f64;
    let mut mean = vec![0f64; d];
    let mut sq = vec![0f64; d];
    for row in x.chunks_exact(d) {
        for (j, &v) in row.iter().enumerate() {
            mean[j] += v as f64;
            sq[j] += (v as f64) * (v as f64);
        }
    }
    let mean: Vec<f64> = mean.iter().map(|m| m / n).collect();
    let std = sq
        .iter()
        .zip(&mean)
        .map(|(s, m)| {
            let sd = (s / n - m * m).max(0.0).sqrt();
            if sd > 1e-12 { sd as f32 } else { 1.0 }
        })
        .collect();
    (mean.into_iter().map(|m| m as f32).collect(), std)
}

fn standardise(x: &[f32], mean: &[f32], std: &[f32]) -> Vec<f32> {
    x.chunks_exact(mean.len())
        .flat_map(|row| row.iter().zip(mean).zip(std).map(|((v, m), s)| (v - m) / s))
        .collect()
}

fn l2_rows(x: &[f32], d: usize) -> Vec<f32> {
    x.chunks_exact(d)
        .flat_map(|row| {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            row.iter().map(move |v| v / norm)
        })
        .collect()
}
