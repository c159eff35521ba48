//! Multinomial logistic regression on cached features, fitted full-batch by L-BFGS, with the
//! L2 strength chosen by stratified k-fold cross-validation on the training features and warm
//! starts along the grid: the linear-probe protocol of CLIP (Radford et al., "Learning
//! Transferable Visual Models From Natural Language Supervision", 2021, appendix A.3), and what
//! scikit-learn's `GridSearchCV(LogisticRegression(solver="lbfgs"))` computes. Deterministic:
//! no epochs, no learning rate, no sampling.
//!
//! The path along the grid is where the time goes (5 folds x 11 values of `C`), and four
//! things shorten it without changing what is minimised or when a fit counts as converged
//! (scikit-learn's `tol`, on the largest gradient entry). On caltech101-20's Lite0 features
//! they took the search from 896 objective evaluations to 254 (BENCHMARKS.md):
//! - the features are centred ([`Centred`]);
//! - L-BFGS starts from a diagonal estimate of the inverse Hessian ([`inverse_diagonal`]);
//! - its correction pairs carry from one `C` to the next ([`lbfgs::Curvature::add_penalty`]);
//! - each fit starts where the path's last two solutions point ([`predict_start`]), not at
//!   the last one.

use graft_kernels::{Mat, matmul_into};
use graft_spec::SplitMix64;
use rayon::prelude::*;

use crate::lbfgs::{self, Curvature, Options, Report};

/// Row-major features: rows of `d`.
#[derive(Clone, Copy, Debug)]
pub struct Features<'a> {
    pub x: &'a [f32],
    pub d: usize,
}

impl Features<'_> {
    /// The number of rows.
    pub fn n(&self) -> usize {
        self.x.len() / self.d.max(1)
    }
}

/// A fitted linear classifier: `w` is `k x d` row-major, `b` has `k` entries.
#[derive(Clone, Debug, PartialEq)]
pub struct Linear {
    pub w: Vec<f32>,
    pub b: Vec<f32>,
    pub k: usize,
    pub d: usize,
}

impl Linear {
    /// All-zero weights: every class equally likely.
    pub fn zeros(k: usize, d: usize) -> Self {
        Self::from_params(&vec![0f32; k * d + k], k, d)
    }

    fn from_params(theta: &[f32], k: usize, d: usize) -> Self {
        Self {
            w: theta[..k * d].to_vec(),
            b: theta[k * d..].to_vec(),
            k,
            d,
        }
    }

    /// `n x k` scores.
    pub fn logits(&self, f: Features<'_>) -> Vec<f32> {
        let mut z = vec![0f32; f.n() * self.k];
        scores(&self.w, &self.b, f, self.k, &mut z);
        z
    }

    /// How many rows of `f` are predicted as their label in `y`.
    pub fn correct(&self, f: Features<'_>, y: &[usize]) -> usize {
        self.predict(f)
            .iter()
            .zip(y)
            .filter(|(a, b)| a == b)
            .count()
    }

    pub fn predict(&self, f: Features<'_>) -> Vec<usize> {
        self.logits(f)
            .chunks_exact(self.k)
            .map(|row| {
                row.iter()
                    .enumerate()
                    .fold((0, f32::NEG_INFINITY), |best, (i, v)| {
                        if *v > best.1 { (i, *v) } else { best }
                    })
                    .0
            })
            .collect()
    }
}

fn scores(w: &[f32], b: &[f32], f: Features<'_>, k: usize, z: &mut [f32]) {
    let x = Mat::rows(f.x, f.n(), f.d);
    matmul_into(z, k, x, Mat::rows(w, k, f.d).t(), false);
    for row in z.chunks_exact_mut(k) {
        row.iter_mut().zip(b).for_each(|(v, b)| *v += b);
    }
}

/// The mean cross-entropy plus `penalty / 2 * |w|^2` (the bias is not penalised), and its
/// gradient. scikit-learn's `C` is `1 / (penalty * n)`.
fn objective(
    theta: &[f32],
    grad: &mut [f32],
    f: Features<'_>,
    y: &[usize],
    k: usize,
    penalty: f32,
    z: &mut [f32],
) -> f64 {
    let (w, b) = theta.split_at(k * f.d);
    scores(w, b, f, k, z);
    let inv_n = 1.0 / f.n() as f32;
    let mut loss = 0.0f64;
    for (row, &label) in z.chunks_exact_mut(k).zip(y) {
        let max = row.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
        let own = row[label] - max;
        let mut sum = 0.0f32;
        row.iter_mut().for_each(|v| {
            *v = (*v - max).exp();
            sum += *v;
        });
        loss += f64::from(sum.ln() - own);
        row.iter_mut().for_each(|v| *v *= inv_n / sum);
        row[label] -= inv_n;
    }
    // z now holds d(loss)/d(scores): grad_w = z^T x, grad_b = column sums of z.
    let (gw, gb) = grad.split_at_mut(k * f.d);
    let x = Mat::rows(f.x, f.n(), f.d);
    matmul_into(gw, f.d, Mat::rows(z, f.n(), k).t(), x, false);
    gb.fill(0.0);
    for row in z.chunks_exact(k) {
        gb.iter_mut().zip(row).for_each(|(g, v)| *g += v);
    }
    let mut norm = 0.0f64;
    for (g, v) in gw.iter_mut().zip(w) {
        *g += penalty * v;
        norm += f64::from(*v) * f64::from(*v);
    }
    loss / f.n() as f64 + 0.5 * f64::from(penalty) * norm
}

/// Fits at scikit-learn's `c` from zeros: a path of one value.
pub fn fit(f: Features<'_>, y: &[usize], k: usize, c: f64, options: Options) -> (Linear, Report) {
    let mut out = None;
    let grid = CvOptions {
        grid: vec![c],
        solver: options,
        ..CvOptions::default()
    };
    along_grid(f, y, k, &grid, &mut |_, model, report| {
        out = Some((model.clone(), report));
    });
    out.unwrap_or_else(|| (Linear::zeros(k, f.d), Report::default()))
}

/// The L2 penalty of scikit-learn's `c` on `n` rows (see [`objective`]).
fn penalty(c: f64, n: usize) -> f64 {
    1.0 / (c * n.max(1) as f64)
}

/// The inverse of the objective's Hessian diagonal where every class is equally likely (the
/// start of the path): `1 / (p (1 - p) mean(x_j^2) + penalty)` for each weight of feature
/// `j`, `1 / (p (1 - p))` for each bias, `p = 1 / k`. Lite0's feature variances span four
/// orders of magnitude, which a multiple of the identity cannot follow.
fn inverse_diagonal(square_means: &[f64], k: usize, penalty: f64) -> Vec<f32> {
    let p = 1.0 / k.max(1) as f64;
    let curvature = p * (1.0 - p);
    let mut h = Vec::with_capacity(k * square_means.len() + k);
    for _ in 0..k {
        h.extend(
            square_means
                .iter()
                .map(|m| (1.0 / (curvature * m + penalty)) as f32),
        );
    }
    h.extend(std::iter::repeat_n((1.0 / curvature) as f32, k));
    h
}

/// The start for the next `C`: the last solution moved on along the line through the last
/// two, in proportion to the step in `log C` (the path is smooth in `log C`). Past the first
/// values, where the fits move least, this start often already meets the tolerance. A grid
/// that repeats a value or turns back starts from the last solution; an uneven one moves on
/// at most twice the last step.
fn predict_start(last: &[f32], before: Option<(&[f32], f64)>, ratio: f64) -> Vec<f32> {
    let t = before.map_or(0.0, |(_, previous_ratio)| ratio.ln() / previous_ratio.ln());
    match before {
        Some((before, _)) if t.is_finite() && t > 0.0 => {
            let t = t.min(2.0) as f32;
            last.iter()
                .zip(before)
                .map(|(a, b)| a + t * (a - b))
                .collect()
        }
        _ => last.to_vec(),
    }
}

/// Features less their column means. The bias is not penalised, so the optimum is the same
/// model with its bias less `w . mean` ([`Centred::restore`]); but a common offset in every
/// row couples the bias with the weights. On Lite0's features the mean direction's curvature
/// is 7x the next one's, and L-BFGS needed a third more evaluations without this.
struct Centred {
    x: Vec<f32>,
    mean: Vec<f32>,
    /// Each column's mean square after centring (its variance).
    square_means: Vec<f64>,
}

impl Centred {
    fn new(f: Features<'_>) -> Self {
        let n = f.n().max(1) as f64;
        let mut sum = vec![0f64; f.d];
        for row in f.x.chunks_exact(f.d) {
            sum.iter_mut()
                .zip(row)
                .for_each(|(s, v)| *s += f64::from(*v));
        }
        let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
        let mut x = f.x.to_vec();
        let mut squares = vec![0f64; f.d];
        for row in x.chunks_exact_mut(f.d) {
            for ((v, m), q) in row.iter_mut().zip(&mean).zip(&mut squares) {
                *v -= m;
                *q += f64::from(*v) * f64::from(*v);
            }
        }
        let square_means = squares.iter().map(|q| q / n).collect();
        Self {
            x,
            mean,
            square_means,
        }
    }

    fn features(&self) -> Features<'_> {
        Features {
            x: &self.x,
            d: self.mean.len(),
        }
    }

    /// The model on uncentred rows: the same scores as `theta` on centred ones.
    fn restore(&self, theta: &[f32], k: usize) -> Linear {
        let mut out = Linear::from_params(theta, k, self.mean.len());
        for (b, w) in out.b.iter_mut().zip(out.w.chunks_exact(out.d)) {
            let shift: f64 = w
                .iter()
                .zip(&self.mean)
                .map(|(w, m)| f64::from(*w) * f64::from(*m))
                .sum();
            *b -= shift as f32;
        }
        out
    }
}

/// scikit-learn's grid for `C`: `logspace(-3, 2, 11)`.
pub fn default_grid() -> Vec<f64> {
    (0..11).map(|i| 10f64.powf(-3.0 + 0.5 * i as f64)).collect()
}

#[derive(Clone, Debug, PartialEq)]
pub struct CvOptions {
    pub folds: usize,
    /// Values of scikit-learn's `C`, tried from the smallest (strongest penalty) up, each fit
    /// starting from the previous one's solution.
    pub grid: Vec<f64>,
    pub seed: u64,
    pub solver: Options,
}

impl Default for CvOptions {
    fn default() -> Self {
        Self {
            folds: 5,
            grid: default_grid(),
            seed: 0,
            solver: Options::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct CvResult {
    /// The `C` with the best mean held-out accuracy (the smaller on a tie).
    pub c: f64,
    /// (C, mean accuracy over the folds), in grid order.
    pub scores: Vec<(f64, f64)>,
    /// Refitted on all the rows at `c`.
    pub model: Linear,
    /// L-BFGS iterations and objective evaluations over every fit.
    pub iterations: usize,
    pub evaluations: usize,
}

/// Stratified folds: each class's rows, shuffled with `seed`, dealt out in turn.
pub fn stratified_folds(y: &[usize], k: usize, folds: usize, seed: u64) -> Vec<usize> {
    let mut fold_of = vec![0; y.len()];
    let mut rng = SplitMix64(seed);
    let mut next = 0;
    for class in 0..k {
        let mut rows: Vec<usize> = (0..y.len()).filter(|&i| y[i] == class).collect();
        for i in (1..rows.len()).rev() {
            rows.swap(i, (rng.next() % (i as u64 + 1)) as usize);
        }
        for r in rows {
            fold_of[r] = next % folds;
            next += 1;
        }
    }
    fold_of
}

/// Fits at every `C` of `options.grid`, from the smallest (strongest penalty) up, each fit
/// warm-started from the path so far; `each(index, model, report)` sees every fit.
pub fn along_grid(
    f: Features<'_>,
    y: &[usize],
    k: usize,
    options: &CvOptions,
    each: &mut dyn FnMut(usize, &Linear, Report),
) {
    let centred = Centred::new(f);
    let cf = centred.features();
    let weights = 0..k * f.d;
    let mut theta = vec![0f32; k * f.d + k];
    // The solution before the last, and the ratio of the last step's C to its.
    let mut before: Option<(Vec<f32>, f64)> = None;
    let mut curvature = Curvature::default();
    let mut z = vec![0f32; cf.n() * k];
    let mut last: Option<(f64, f64)> = None;
    for (g, &c) in options.grid.iter().enumerate() {
        let strength = penalty(c, cf.n());
        if let Some((last_c, last_strength)) = last {
            curvature.add_penalty((strength - last_strength) as f32, weights.clone());
            let start = predict_start(
                &theta,
                before.as_ref().map(|(b, r)| (b.as_slice(), *r)),
                c / last_c,
            );
            before = Some((std::mem::replace(&mut theta, start), c / last_c));
        }
        let scale = inverse_diagonal(&centred.square_means, k, strength);
        let report = lbfgs::minimize(
            &mut theta,
            &mut |t, grad| objective(t, grad, cf, y, k, strength as f32, &mut z),
            Some(&scale),
            &mut curvature,
            options.solver,
        );
        each(g, &centred.restore(&theta, k), report);
        last = Some((c, strength));
    }
}

fn take(f: Features<'_>, y: &[usize], rows: &[usize]) -> (Vec<f32>, Vec<usize>) {
    let mut x = Vec::with_capacity(rows.len() * f.d);
    for &r in rows {
        x.extend_from_slice(&f.x[r * f.d..(r + 1) * f.d]);
    }
    (x, rows.iter().map(|&r| y[r]).collect())
}

/// Chooses `C` by `options.folds`-fold cross-validation on (`f`, `y`) and refits on all of it.
pub fn fit_cv(f: Features<'_>, y: &[usize], k: usize, options: &CvOptions) -> CvResult {
    let fold_of = stratified_folds(y, k, options.folds, options.seed);
    // The folds and the refit are independent paths along the grid, one task each: the refit
    // on all the rows runs warm-started along the grid too, beside the folds, keeping every
    // C's model, instead of one cold fit after them on one thread while the other waits
    // (5 folds + 1 refit make 3 paths a thread on this machine's 2).
    let paths: Vec<Path> = (0..=options.folds)
        .into_par_iter()
        .map(|task| {
            if task == options.folds {
                let mut models = Vec::with_capacity(options.grid.len());
                let mut path = Path::default();
                along_grid(f, y, k, options, &mut |_, model, report| {
                    path.count(report);
                    models.push(model.clone());
                });
                path.models = models;
                return path;
            }
            let (train_rows, held_rows): (Vec<usize>, Vec<usize>) =
                (0..f.n()).partition(|&i| fold_of[i] != task);
            let mut path = Path {
                correct: vec![0; options.grid.len()],
                ..Path::default()
            };
            if held_rows.is_empty() || train_rows.is_empty() {
                return path;
            }
            let (xt, yt) = take(f, y, &train_rows);
            let (xh, yh) = take(f, y, &held_rows);
            let train = Features { x: &xt, d: f.d };
            let held = Features { x: &xh, d: f.d };
            along_grid(train, &yt, k, options, &mut |g, model, report| {
                path.count(report);
                path.correct[g] = model.correct(held, &yh);
            });
            path
        })
        .collect();
    let mut correct = vec![0usize; options.grid.len()];
    let (mut iterations, mut evaluations) = (0, 0);
    let mut models = Vec::new();
    for p in paths {
        correct
            .iter_mut()
            .zip(&p.correct)
            .for_each(|(a, b)| *a += b);
        iterations += p.iterations;
        evaluations += p.evaluations;
        if !p.models.is_empty() {
            models = p.models;
        }
    }
    let scores: Vec<(f64, f64)> = options
        .grid
        .iter()
        .zip(&correct)
        .map(|(&c, &n)| (c, n as f64 / f.n().max(1) as f64))
        .collect();
    let (best, _) = scores
        .iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |best, (g, &(_, s))| {
            if s > best.1 { (g, s) } else { best }
        });
    let c = options.grid.get(best).copied().unwrap_or(1.0);
    let model = match models.into_iter().nth(best) {
        Some(model) => model,
        // An empty grid: one fit at the default strength.
        None => {
            let (model, report) = fit(f, y, k, c, options.solver);
            iterations += report.iterations;
            evaluations += report.evaluations;
            model
        }
    };
    CvResult {
        c,
        scores,
        model,
        iterations,
        evaluations,
    }
}

/// One task of [`fit_cv`]: a fold's held-out hits per `C`, or the refit's model per `C`.
#[derive(Default)]
struct Path {
    correct: Vec<usize>,
    models: Vec<Linear>,
    iterations: usize,
    evaluations: usize,
}

impl Path {
    fn count(&mut self, report: Report) {
        self.iterations += report.iterations;
        self.evaluations += report.evaluations;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two Gaussian blobs per class in `d` dimensions, with some overlap.
    fn blobs(n_per: usize, k: usize, d: usize, seed: u64) -> (Vec<f32>, Vec<usize>) {
        let mut rng = SplitMix64(seed);
        let mut uniform = || rng.unit() as f32;
        let mut x = Vec::new();
        let mut y = Vec::new();
        for class in 0..k {
            for _ in 0..n_per {
                for j in 0..d {
                    let centre = if j % k == class { 1.5 } else { 0.0 };
                    // Sum of uniforms: roughly normal, unit-ish spread.
                    let noise: f32 = (0..4).map(|_| uniform() - 0.5).sum::<f32>() * 1.7;
                    x.push(centre + noise);
                }
                y.push(class);
            }
        }
        (x, y)
    }

    #[test]
    fn the_gradient_matches_finite_differences() {
        let (k, d) = (3, 5);
        let (x, y) = blobs(4, k, d, 1);
        let f = Features { x: &x, d };
        let mut rng = SplitMix64(7);
        let theta: Vec<f32> = (0..k * d + k)
            .map(|_| (rng.unit() as f32 - 0.5) * 0.4)
            .collect();
        let mut z = vec![0f32; f.n() * k];
        let mut grad = vec![0f32; theta.len()];
        objective(&theta, &mut grad, f, &y, k, 0.3, &mut z);
        let mut scratch = vec![0f32; theta.len()];
        for i in 0..theta.len() {
            let h = 1e-2f32;
            let (mut up, mut down) = (theta.clone(), theta.clone());
            up[i] += h;
            down[i] -= h;
            let fu = objective(&up, &mut scratch, f, &y, k, 0.3, &mut z);
            let fd = objective(&down, &mut scratch, f, &y, k, 0.3, &mut z);
            let numeric = (fu - fd) / (2.0 * f64::from(h));
            assert!(
                (numeric - f64::from(grad[i])).abs() < 2e-3,
                "parameter {i}: analytic {} numeric {numeric}",
                grad[i]
            );
        }
    }

    #[test]
    fn a_fit_converges_and_separates_the_classes() {
        let (k, d) = (4, 16);
        let (x, y) = blobs(30, k, d, 2);
        let f = Features { x: &x, d };
        let (model, report) = fit(f, &y, k, 1.0, Options::default());
        assert!(report.converged, "{report:?}");
        let right = model
            .predict(f)
            .iter()
            .zip(&y)
            .filter(|(a, b)| a == b)
            .count();
        assert!(
            right as f64 >= 0.9 * y.len() as f64,
            "{right} of {}",
            y.len()
        );
    }

    #[test]
    fn cross_validation_is_deterministic_and_picks_from_the_grid() {
        let (k, d) = (3, 12);
        let (x, y) = blobs(25, k, d, 3);
        let f = Features { x: &x, d };
        let a = fit_cv(f, &y, k, &CvOptions::default());
        let b = fit_cv(f, &y, k, &CvOptions::default());
        assert_eq!(a, b);
        assert!(default_grid().contains(&a.c));
        assert_eq!(a.scores.len(), 11);
        let best = a.scores.iter().map(|s| s.1).fold(0.0, f64::max);
        assert!(best > 0.8, "{:?}", a.scores);
    }

    #[test]
    fn folds_are_stratified() {
        let y: Vec<usize> = (0..50).map(|i| usize::from(i >= 40)).collect();
        let folds = stratified_folds(&y, 2, 5, 0);
        for fold in 0..5 {
            let ones = (0..50).filter(|&i| folds[i] == fold && y[i] == 1).count();
            assert_eq!(ones, 2, "fold {fold}");
        }
    }

    #[test]
    fn centring_changes_no_score() {
        let (k, d) = (3, 6);
        let (x, _) = blobs(5, k, d, 4);
        let f = Features { x: &x, d };
        let centred = Centred::new(f);
        let mut rng = SplitMix64(9);
        let theta: Vec<f32> = (0..k * d + k).map(|_| rng.unit() as f32 - 0.5).collect();
        let on_centred = Linear::from_params(&theta, k, d).logits(centred.features());
        let restored = centred.restore(&theta, k).logits(f);
        for (a, b) in on_centred.iter().zip(&restored) {
            assert!((a - b).abs() < 1e-4, "{a} against {b}");
        }
    }

    /// The objective of `model` (on uncentred rows) at scikit-learn's `c`.
    fn value(model: &Linear, f: Features<'_>, y: &[usize], c: f64) -> f64 {
        let mut theta = model.w.clone();
        theta.extend_from_slice(&model.b);
        let mut grad = vec![0f32; theta.len()];
        let mut z = vec![0f32; f.n() * model.k];
        let strength = penalty(c, f.n()) as f32;
        objective(&theta, &mut grad, f, y, model.k, strength, &mut z)
    }

    #[test]
    fn the_warm_path_reaches_what_cold_tight_fits_reach() {
        let (k, d) = (4, 24);
        let (x, y) = blobs(20, k, d, 5);
        let f = Features { x: &x, d };
        let options = CvOptions::default();
        let tight = Options {
            gradient_tolerance: 1e-6,
            value_tolerance: 0.0,
            max_iterations: 5000,
            ..Options::default()
        };
        let mut seen = 0;
        along_grid(f, &y, k, &options, &mut |g, model, report| {
            let c = options.grid[g];
            assert!(report.converged, "C={c}: {report:?}");
            let (reference, _) = fit(f, &y, k, c, tight);
            let (path, best) = (value(model, f, &y, c), value(&reference, f, &y, c));
            // The objective is `penalty`-strongly convex in the weights (the data curve it in
            // the biases), so a gradient below the tolerance in every entry bounds the gap:
            // f - f* <= |g|^2 / (2 penalty).
            let entries = (k * d) as f64;
            let bound =
                entries * options.solver.gradient_tolerance.powi(2) / (2.0 * penalty(c, f.n()));
            assert!(
                path - best <= bound,
                "C={c}: the path's objective {path} against {best} (bound {bound:e})"
            );
            seen += 1;
        });
        assert_eq!(seen, options.grid.len());
    }

    #[test]
    fn a_grid_that_repeats_or_turns_back_still_converges() {
        let (k, d) = (3, 8);
        let (x, y) = blobs(10, k, d, 6);
        let f = Features { x: &x, d };
        for grid in [vec![1.0, 1.0, 1.0], vec![0.1, 1.0, 0.1, 10.0, 0.01]] {
            let options = CvOptions {
                grid: grid.clone(),
                ..CvOptions::default()
            };
            let mut fits = 0;
            along_grid(f, &y, k, &options, &mut |g, model, report| {
                assert!(report.converged, "{grid:?}[{g}]: {report:?}");
                assert!(model.w.iter().chain(&model.b).all(|v| v.is_finite()));
                fits += 1;
            });
            assert_eq!(fits, grid.len());
        }
    }
}
