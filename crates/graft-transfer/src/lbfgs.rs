//! Limited-memory BFGS (Nocedal, "Updating quasi-Newton matrices with limited storage", Math.
//! Comp. 1980; the two-loop recursion of Nocedal & Wright, Numerical Optimization, alg. 7.4)
//! with a backtracking Armijo line search: enough for the smooth convex objectives graft
//! minimises full-batch (a linear head on cached features).
//!
//! Two additions for a regularisation path (the same objective at a sequence of penalties):
//! a diagonal estimate of the inverse Hessian to start from, in place of the usual multiple of
//! the identity (Nocedal & Wright, section 7.2, "preconditioning"), and the correction pairs
//! carried from one penalty to the next ([`Curvature::add_penalty`]).

use std::collections::VecDeque;
use std::ops::Range;

use graft_kernels::Isa;

/// When to stop.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Options {
    /// Correction pairs kept.
    pub memory: usize,
    pub max_iterations: usize,
    /// Converged when the largest gradient entry is below this (scikit-learn's `tol`)...
    pub gradient_tolerance: f64,
    /// ...or when a step lowers the value by less than this, relative: about where an f32
    /// objective's rounding hides the decrease, past which a line search only backtracks.
    pub value_tolerance: f64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            memory: 10,
            max_iterations: 500,
            gradient_tolerance: 1e-4,
            value_tolerance: 1e-7,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Report {
    pub iterations: usize,
    pub evaluations: usize,
    pub value: f64,
    pub converged: bool,
}

/// Independent partial sums of a reduction: a float sum is one dependency chain the compiler
/// may not reorder, so one accumulator runs at one add per latency (4 cycles); eight in turn
/// let it vectorise. The two-loop recursion's dot products over every parameter were 19% of
/// the cross-validated head's time with one.
const LANES: usize = 8;

/// `sum a[i] * b[i]` in f64, over [`LANES`] partial sums.
#[inline(always)]
fn dot<A: Copy + Into<f64>, B: Copy + Into<f64>>(a: &[A], b: &[B]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f64; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| (*x).into() * (*y).into())
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += x[l].into() * y[l].into();
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// `sum y[i]^2 h[i]` in f64.
#[inline(always)]
fn weighted_square(y: &[f32], h: &[f32]) -> f64 {
    y.iter()
        .zip(h)
        .map(|(y, h)| f64::from(*y) * f64::from(*y) * f64::from(*h))
        .sum()
}

#[inline(always)]
fn max_abs(a: &[f32]) -> f64 {
    a.iter().fold(0.0, |m, v| m.max(f64::from(v.abs())))
}

/// One step `s`, the change of the gradient along it `y`, and `s . y`.
type Pair = (Vec<f32>, Vec<f32>, f64);

/// What the last steps taught of the objective's curvature: the correction pairs, oldest
/// first. Start from [`Curvature::default`] for a new problem.
#[derive(Clone, Debug, Default)]
pub struct Curvature {
    pairs: VecDeque<Pair>,
}

impl Curvature {
    /// The objective gained `delta / 2 * |x[range]|^2` since these pairs were taken: each
    /// gradient change gains `delta * s` on `range`, exactly, so the pairs stay true of the
    /// new objective. Pairs that lose their positive curvature are dropped.
    pub fn add_penalty(&mut self, delta: f32, range: Range<usize>) {
        let pairs = &mut self.pairs;
        Isa::detect().run(
            #[inline(always)]
            || {
                pairs.retain_mut(|(s, y, sy)| {
                    let (Some(ys), Some(ss)) = (y.get_mut(range.clone()), s.get(range.clone()))
                    else {
                        return false;
                    };
                    ys.iter_mut().zip(ss).for_each(|(y, s)| *y += delta * s);
                    *sy = dot(s, y);
                    *sy > 1e-12
                })
            },
        );
    }
}

/// Minimises `f` from `x` (left at the minimiser). `f(x, grad)` returns the value at `x` and
/// writes the gradient into `grad`.
///
/// `scale`, when given, is a positive estimate of the inverse Hessian's diagonal: the first
/// direction is `-scale * grad` at a full step, and later ones start from it scaled to the
/// last pair instead of from a multiple of the identity. `curvature` is read and left holding
/// the last pairs.
///
/// The recursion's and the line search's loops over every parameter run with the CPU's widest
/// vectors ([`Isa`]): built for the baseline (two f64 a vector) they were 14% of the
/// cross-validated head's time (`perf`), against 77% for the objective's products.
pub fn minimize(
    x: &mut [f32],
    f: &mut dyn FnMut(&[f32], &mut [f32]) -> f64,
    scale: Option<&[f32]>,
    curvature: &mut Curvature,
    options: Options,
) -> Report {
    Isa::detect().run(
        #[inline(always)]
        || minimize_here(x, f, scale, &mut curvature.pairs, options),
    )
}

/// [`minimize`], compiled into its caller's instruction set.
#[inline(always)]
fn minimize_here(
    x: &mut [f32],
    f: &mut dyn FnMut(&[f32], &mut [f32]) -> f64,
    scale: Option<&[f32]>,
    pairs: &mut VecDeque<Pair>,
    options: Options,
) -> Report {
    let n = x.len();
    let mut grad = vec![0f32; n];
    let mut value = f(x, &mut grad);
    let mut report = Report {
        evaluations: 1,
        value,
        ..Report::default()
    };
    while pairs.len() > options.memory {
        pairs.pop_front();
    }
    let (mut trial, mut trial_grad) = (vec![0f32; n], vec![0f32; n]);
    let mut direction = vec![0f32; n];
    let mut stalled = 0;
    while report.iterations < options.max_iterations {
        if max_abs(&grad) < options.gradient_tolerance {
            report.converged = true;
            break;
        }
        two_loop(&grad, pairs, scale, &mut direction);
        let mut slope = dot(&grad, &direction);
        if slope >= 0.0 {
            // Not a descent direction (lost curvature): restart from the diagonal alone.
            pairs.clear();
            two_loop(&grad, pairs, scale, &mut direction);
            slope = dot(&grad, &direction);
        }
        // The first step without a curvature estimate has nothing to scale it: keep it short.
        let mut step = if pairs.is_empty() && scale.is_none() {
            (1.0 / max_abs(&grad)).min(1.0)
        } else {
            1.0
        };
        let mut accepted = false;
        let before = value;
        for _ in 0..30 {
            for ((t, xi), d) in trial.iter_mut().zip(x.iter()).zip(&direction) {
                *t = xi + (step * f64::from(*d)) as f32;
            }
            let v = f(&trial, &mut trial_grad);
            report.evaluations += 1;
            if v <= value + 1e-4 * step * slope {
                accepted = true;
                let s: Vec<f32> = trial.iter().zip(x.iter()).map(|(a, b)| a - b).collect();
                let y: Vec<f32> = trial_grad.iter().zip(&grad).map(|(a, b)| a - b).collect();
                let sy = dot(&s, &y);
                if sy > 1e-12 {
                    if pairs.len() >= options.memory {
                        pairs.pop_front();
                    }
                    pairs.push_back((s, y, sy));
                }
                x.copy_from_slice(&trial);
                grad.copy_from_slice(&trial_grad);
                value = v;
                break;
            }
            step *= 0.5;
        }
        report.iterations += 1;
        // Three small steps in a row, not one: a single short step happens far from the end.
        if before - value <= options.value_tolerance * before.abs().max(1.0) {
            stalled += 1;
        } else {
            stalled = 0;
        }
        if !accepted || stalled == 3 {
            // No (visible) decrease along the best direction available: as close as f32 gets.
            report.converged = true;
            break;
        }
    }
    report.value = value;
    report
}

/// `q += a v`.
#[inline(always)]
fn add_scaled(q: &mut [f64], a: f64, v: &[f32]) {
    q.iter_mut()
        .zip(v)
        .for_each(|(q, v)| *q += a * f64::from(*v));
}

/// `direction = -H grad`, H the inverse Hessian estimate from `pairs` on top of `H0`: `scale`
/// (times `s.y / y.scale.y` of the last pair) or, without it, `s.y / y.y` of the last pair.
#[inline(always)]
fn two_loop(grad: &[f32], pairs: &VecDeque<Pair>, scale: Option<&[f32]>, direction: &mut [f32]) {
    let mut q: Vec<f64> = grad.iter().map(|g| f64::from(*g)).collect();
    let mut alphas = Vec::with_capacity(pairs.len());
    for (s, y, sy) in pairs.iter().rev() {
        let a = dot(s, &q) / sy;
        add_scaled(&mut q, -a, y);
        alphas.push(a);
    }
    match (scale, pairs.back()) {
        (Some(h), last) => {
            let gamma = last.map_or(1.0, |(_, y, sy)| sy / weighted_square(y, h));
            q.iter_mut()
                .zip(h)
                .for_each(|(q, h)| *q *= gamma * f64::from(*h));
        }
        (None, Some((_, y, sy))) => {
            let gamma = sy / dot(y, y);
            q.iter_mut().for_each(|q| *q *= gamma);
        }
        (None, None) => {}
    }
    for ((s, y, sy), a) in pairs.iter().zip(alphas.iter().rev()) {
        let b = dot(y, &q) / sy;
        add_scaled(&mut q, a - b, s);
    }
    direction
        .iter_mut()
        .zip(&q)
        .for_each(|(d, q)| *d = -(*q as f32));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_minimum_of_an_ill_conditioned_quadratic() {
        let scales = [1.0f32, 10.0, 100.0, 1000.0];
        let mut x = vec![1.0f32; 4];
        let report = minimize(
            &mut x,
            &mut |x, g| {
                let mut v = 0.0;
                for i in 0..4 {
                    let d = x[i] - i as f32;
                    v += 0.5 * f64::from(scales[i] * d * d);
                    g[i] = scales[i] * d;
                }
                v
            },
            None,
            &mut Curvature::default(),
            Options::default(),
        );
        assert!(report.converged, "{report:?}");
        for (i, v) in x.iter().enumerate() {
            assert!((v - i as f32).abs() < 1e-4, "{x:?}");
        }
    }

    /// `f(x) = sum a_i (x_i - i)^2 / 2`, its minimiser `x_i = i`.
    fn quadratic(a: &[f32]) -> impl FnMut(&[f32], &mut [f32]) -> f64 + '_ {
        move |x, g| {
            let mut v = 0.0;
            for i in 0..a.len() {
                let d = x[i] - i as f32;
                v += 0.5 * f64::from(a[i] * d * d);
                g[i] = a[i] * d;
            }
            v
        }
    }

    #[test]
    fn the_exact_inverse_diagonal_takes_the_newton_step() {
        let a = [1.0f32, 10.0, 100.0, 1000.0];
        let inverse: Vec<f32> = a.iter().map(|a| 1.0 / a).collect();
        let mut x = vec![5.0f32; 4];
        let report = minimize(
            &mut x,
            &mut quadratic(&a),
            Some(&inverse),
            &mut Curvature::default(),
            Options::default(),
        );
        assert!(report.converged, "{report:?}");
        assert!(report.iterations <= 2, "{report:?}");
        for (i, v) in x.iter().enumerate() {
            assert!((v - i as f32).abs() < 1e-4, "{x:?}");
        }
    }

    #[test]
    fn carried_pairs_describe_the_penalised_objective() {
        let a = [1.0f32, 3.0, 30.0, 300.0];
        let mut x = vec![-2.0f32; 4];
        let mut curvature = Curvature::default();
        minimize(
            &mut x,
            &mut quadratic(&a),
            None,
            &mut curvature,
            Options::default(),
        );
        assert!(!curvature.pairs.is_empty());
        // Adding 0.5 * |x[1..3]|^2 makes the Hessian diag(1, 3.5, 30.5, 300).
        curvature.add_penalty(0.5, 1..3);
        let hessian = [1.0f32, 3.5, 30.5, 300.0];
        for (s, y, sy) in &curvature.pairs {
            for i in 0..4 {
                let expected = hessian[i] * s[i];
                assert!(
                    (y[i] - expected).abs() <= 1e-3 * expected.abs().max(1e-3),
                    "entry {i}: y {} against H s {expected}",
                    y[i]
                );
            }
            assert!((sy - dot(s, y)).abs() <= 1e-9 * sy.abs());
        }
    }
}
