//! The head strategy's linear classifier fitted as multinomial logistic regression by L-BFGS
//! (`--head-solver lbfgs`), not by AdamW epochs: deterministic, no learning rate, no epochs.
//! The L2 strength `C` is the one decision, and it is taken where the protocol says: by k-fold
//! cross-validation on the training features when the selection split was carved from them
//! (so the selection images are trained on too, as scikit-learn's `refit=True` does), or on a
//! selection split the dataset gives (or the reported one, under `--select-on-eval`).

use burn::module::Param;
use burn::prelude::*;

use crate::head::{BuildHead, Head, HeadKind};
use crate::logistic::{self, CvOptions, Features, Linear};
use crate::train::Split;

/// Where `C` is chosen.
pub enum SelectOn<'a> {
    /// k-fold cross-validation on the training rows.
    CrossValidation { folds: usize },
    /// A separate split: each `C` fitted on the training rows, scored there.
    Holdout(Split<'a>),
}

/// A fitted head and how its `C` was chosen.
pub struct LinearFit {
    pub head: Head,
    pub c: f64,
    /// The chosen `C`'s accuracy where it was chosen (mean held-out fold accuracy for CV).
    pub accuracy: f64,
    /// (C, accuracy) along the grid.
    pub scores: Vec<(f64, f64)>,
}

fn flatten(rows: &[Vec<f32>]) -> (Vec<f32>, usize) {
    let d = rows.first().map_or(0, Vec::len);
    (rows.iter().flatten().copied().collect(), d)
}

/// Fits on `train` with `C` chosen by `select` over scikit-learn's grid `logspace(-3, 2, 11)`.
pub fn fit_linear_head(
    train: &Split<'_>,
    select: SelectOn<'_>,
    classes: usize,
    seed: u64,
    device: &Device,
) -> LinearFit {
    let (x, d) = flatten(train.x);
    let f = Features { x: &x, d };
    let options = CvOptions {
        seed,
        ..CvOptions::default()
    };
    let (model, c, scores) = match select {
        SelectOn::CrossValidation { folds } => {
            let cv = logistic::fit_cv(f, train.y, classes, &CvOptions { folds, ..options });
            (cv.model, cv.c, cv.scores)
        }
        SelectOn::Holdout(held) => {
            let (hx, _) = flatten(held.x);
            let h = Features { x: &hx, d };
            let mut best: Option<(Linear, f64, f64)> = None;
            let mut scores = Vec::new();
            logistic::along_grid(f, train.y, classes, &options, &mut |g, m, _| {
                let c = options.grid[g];
                let a = m.correct(h, held.y) as f64 / held.y.len().max(1) as f64;
                scores.push((c, a));
                // Strictly better only: ties keep the smaller C (the stronger penalty).
                if best.as_ref().is_none_or(|b| a > b.2) {
                    best = Some((m.clone(), c, a));
                }
            });
            let (m, c, _) = best.unwrap_or((Linear::zeros(classes, d), 1.0, 0.0));
            (m, c, scores)
        }
    };
    let accuracy = scores
        .iter()
        .find(|(g, _)| *g == c)
        .map_or(0.0, |(_, a)| *a);
    LinearFit {
        head: to_head(&model, device),
        c,
        accuracy,
        scores,
    }
}

/// The burn head holding `model`'s weights (burn's `Linear` keeps `[in, out]`).
pub fn to_head(model: &Linear, device: &Device) -> Head {
    let (k, d) = (model.k, model.d);
    let mut head = HeadKind::Linear.shell(d, k, device);
    let mut wt = vec![0f32; d * k];
    for c in 0..k {
        for j in 0..d {
            wt[j * k + c] = model.w[c * d + j];
        }
    }
    if let Some(layer) = head.layers.first_mut() {
        layer.weight = Param::from_tensor(Tensor::from_data(TensorData::new(wt, [d, k]), device));
        layer.bias = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(model.b.clone(), [k]),
            device,
        )));
    }
    head
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::evaluate_head;

    /// Two well-separated classes in 3 dimensions, with some label noise.
    fn blobs(n: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<usize>) {
        let mut rng = graft_spec::SplitMix64(seed);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..n {
            let c = i % 2;
            let centre = if c == 0 { -1.0 } else { 1.0 };
            x.push(
                (0..3)
                    .map(|_| centre + (rng.unit() as f32 - 0.5) * 2.5)
                    .collect(),
            );
            y.push(c);
        }
        (x, y)
    }

    #[test]
    fn the_burn_head_predicts_what_the_fitted_model_does() {
        let device = Default::default();
        let (x, y) = blobs(60, 1);
        let (hx, hy) = blobs(40, 2);
        let train = Split { x: &x, y: &y };
        let fit = fit_linear_head(
            &train,
            SelectOn::Holdout(Split { x: &hx, y: &hy }),
            2,
            0,
            &device,
        );
        assert_eq!(fit.scores.len(), 11);
        let eval = evaluate_head(&fit.head, &Split { x: &hx, y: &hy }, 2, &device).expect("eval");
        assert!((eval.confusion.accuracy() - fit.accuracy).abs() < 1e-12);
        assert!(fit.accuracy > 0.8, "{}", fit.accuracy);
    }

    #[test]
    fn cross_validation_chooses_c_without_a_holdout() {
        let device = Default::default();
        let (x, y) = blobs(80, 3);
        let fit = fit_linear_head(
            &Split { x: &x, y: &y },
            SelectOn::CrossValidation { folds: 5 },
            2,
            0,
            &device,
        );
        assert!(fit.scores.iter().any(|&(c, _)| c == fit.c));
        assert!(fit.accuracy > 0.8, "{}", fit.accuracy);
    }
}
