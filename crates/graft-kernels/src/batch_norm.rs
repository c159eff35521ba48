//! BatchNorm with batch statistics (training mode) as one autodiff op over burn-flex: the
//! statistics in two passes over each channel's planes, the output in one, and the backward in
//! two (per-channel sums of `dy` and `dy * x`, then `dx`). burn 0.22's default `batch_norm_train`
//! and its backward are composed of ~20 element-wise ops and channel-major layout copies on
//! burn-flex (a quarter of an EfficientNet-Lite0 training step). Same formulas as burn's and
//! PyTorch's: biased variance for the normalisation (and the returned `variance`),
//! `dx = gamma / std * (dy - mean(dy) - x_hat * mean(dy * x_hat))`.

use burn::tensor::module::batch_norm_train as burn_batch_norm_train;
use burn::tensor::{DType, Tensor, TensorData};
use burn_autodiff::Autodiff;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_backend::{Shape, TensorMetadata};
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

use crate::flex::{contiguous, in_place, values};

type Ad = Autodiff<Flex>;
type AdTensor = burn_backend::tensor::FloatTensor<Ad>;

/// The normalised output and the batch's per-channel mean and biased variance (what the running
/// statistics are updated with; detached).
pub struct BatchNormTrain {
    pub output: Tensor<4>,
    pub mean: Tensor<1>,
    pub variance: Tensor<1>,
}

/// burn's `batch_norm_train` for `[batch, channels, h, w]` input; graft's fused op on the
/// burn-flex autodiff device, burn's elsewhere.
pub fn batch_norm_train(
    x: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> BatchNormTrain {
    let burns = |x, gamma, beta| {
        let r = burn_batch_norm_train(x, gamma, beta, epsilon);
        BatchNormTrain {
            output: r.output,
            mean: r.mean.detach(),
            variance: r.variance.detach(),
        }
    };
    if x.dtype() != DType::F32 || !x.is_autodiff() {
        return burns(x, gamma, beta);
    }
    let device = x.device();
    let primitives = (
        x.clone().try_into_primitive::<Ad>(),
        gamma.clone().try_into_primitive::<Ad>(),
        beta.clone().try_into_primitive::<Ad>(),
    );
    let (Ok(xp), Ok(gp), Ok(bp)) = primitives else {
        return burns(x, gamma, beta);
    };
    let (output, stats) = tracked(xp, gp, bp, epsilon);
    let channels = stats.mean.len();
    let vector = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [channels]), &device);
    BatchNormTrain {
        output: Tensor::from_primitive::<Ad>(output),
        mean: vector(stats.mean),
        variance: vector(stats.variance),
    }
}

struct Stats {
    mean: Vec<f32>,
    variance: Vec<f32>,
}

fn tracked(x: AdTensor, gamma: AdTensor, beta: AdTensor, epsilon: f64) -> (AdTensor, Stats) {
    let guards = [x.node(), gamma.node(), beta.node()];
    let (x, gamma, beta) = (
        contiguous(x.into_primitive()),
        contiguous(gamma.into_primitive()),
        contiguous(beta.into_primitive()),
    );
    let stats = statistics(&x);
    let inv_std: Vec<f32> = stats
        .variance
        .iter()
        .map(|v| (1.0 / (f64::from(*v) + epsilon).sqrt()) as f32)
        .collect();
    let y = normalize(&x, &stats.mean, &inv_std, values(&gamma), values(&beta));
    let out = match BatchNormOp
        .prepare::<NoCheckpointing>(guards)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let state = State {
                x,
                gamma: values(&gamma).to_vec(),
                mean: stats.mean.clone(),
                inv_std,
            };
            prep.finish(state, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    (out, stats)
}

/// `[batch, channels, len]` view of an NCHW tensor's shape.
fn dims(x: &FlexTensor) -> (usize, usize, usize) {
    let s = x.shape();
    (s[0], s[1], s.num_elements() / (s[0] * s[1]).max(1))
}

/// Per-channel mean and biased variance, two passes (no cancellation for large means).
fn statistics(x: &FlexTensor) -> Stats {
    let (n, c, len) = dims(x);
    let xs = values(x);
    let count = (n * len).max(1) as f64;
    let plane = |b: usize, ch: usize| &xs[(b * c + ch) * len..][..len];
    let (mean, variance) = (0..c)
        .into_par_iter()
        .map(|ch| {
            let sum: f64 = (0..n)
                .map(|b| f64::from(lane_sum(plane(b, ch), |v| v)))
                .sum();
            let mean = (sum / count) as f32;
            let squares: f64 = (0..n)
                .map(|b| f64::from(lane_sum(plane(b, ch), |v| (v - mean) * (v - mean))))
                .sum();
            (mean, (squares / count) as f32)
        })
        .unzip();
    Stats { mean, variance }
}

fn normalize(
    x: &FlexTensor,
    mean: &[f32],
    inv_std: &[f32],
    gamma: &[f32],
    beta: &[f32],
) -> FlexTensor {
    let (_, c, len) = dims(x);
    let mut y = crate::outputs::take(x.shape().num_elements());
    y.par_chunks_mut(len.max(1))
        .zip(values(x).par_chunks(len.max(1)))
        .enumerate()
        .for_each(|(i, (dst, src))| {
            let ch = i % c;
            let scale = gamma[ch] * inv_std[ch];
            let shift = beta[ch] - mean[ch] * scale;
            for (d, s) in dst.iter_mut().zip(src) {
                *d = s * scale + shift;
            }
        });
    FlexTensor::from_data(TensorData::new(y, x.shape()))
}

/// A sum of `f(v)` over `values` in eight independent lanes, so it vectorises.
fn lane_sum(values: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0.0f32; 8];
    let split = values.len() / 8 * 8;
    for chunk in values[..split].chunks_exact(8) {
        for i in 0..8 {
            lanes[i] += f(chunk[i]);
        }
    }
    lanes.iter().sum::<f32>() + values[split..].iter().map(|v| f(*v)).sum::<f32>()
}

/// `sum(d[i] * (x[i] - mean))` in eight independent lanes.
fn centred_dot(d: &[f32], x: &[f32], mean: f32) -> f32 {
    let mut lanes = [0.0f32; 8];
    let split = d.len() / 8 * 8;
    for (dc, xc) in d[..split].chunks_exact(8).zip(x[..split].chunks_exact(8)) {
        for i in 0..8 {
            lanes[i] += dc[i] * (xc[i] - mean);
        }
    }
    let tail: f32 = d[split..]
        .iter()
        .zip(&x[split..])
        .map(|(a, b)| a * (b - mean))
        .sum();
    lanes.iter().sum::<f32>() + tail
}

#[derive(Debug)]
struct BatchNormOp;

#[derive(Clone, Debug)]
struct State {
    x: FlexTensor,
    gamma: Vec<f32>,
    mean: Vec<f32>,
    inv_std: Vec<f32>,
}

impl Backward<Flex, 3> for BatchNormOp {
    type State = State;

    fn backward(self, ops: Ops<State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node, gamma_node, beta_node] = ops.parents.map(|p| p.map(|node| node.id));
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let s = ops.state;
        let (n, c, len) = dims(&s.x);
        let (xs, dys) = (values(&s.x), values(&dy));
        let at = |b: usize, ch: usize| (b * c + ch) * len;
        // Per channel: sum(dy) and sum(dy * x_hat) = inv_std * sum(dy * (x - mean)); centring
        // before the product keeps the digits a large mean would cancel.
        let (sum_dy, sum_dy_xhat): (Vec<f32>, Vec<f32>) = (0..c)
            .into_par_iter()
            .map(|ch| {
                let mean = s.mean[ch];
                let (mut dy_sum, mut dy_xc) = (0.0f64, 0.0f64);
                for b in 0..n {
                    let (x, d) = (&xs[at(b, ch)..][..len], &dys[at(b, ch)..][..len]);
                    dy_sum += f64::from(lane_sum(d, |v| v));
                    dy_xc += f64::from(centred_dot(d, x, mean));
                }
                (dy_sum as f32, (dy_xc * f64::from(s.inv_std[ch])) as f32)
            })
            .unzip();
        let vector = |v: Vec<f32>| FlexTensor::from_data(TensorData::new(v, Shape::new([c])));
        if let Some(id) = x_node {
            let count = (n * len).max(1) as f32;
            // `dx` over `dy` where it lies: each element reads only its own `dy`. A fresh
            // buffer for it was a `memset` of 2% of an EfficientNet-Lite0 training step.
            let dx_over_dy = |ds: &mut [f32]| {
                ds.par_chunks_mut(len.max(1))
                    .enumerate()
                    .for_each(|(i, dst)| {
                        let ch = i % c;
                        let x = &xs[i * len..][..len];
                        let (mean, inv_std) = (s.mean[ch], s.inv_std[ch]);
                        let scale = s.gamma[ch] * inv_std;
                        let (mean_dy, mean_dy_xhat) = (sum_dy[ch] / count, sum_dy_xhat[ch] / count);
                        for (o, x) in dst.iter_mut().zip(x) {
                            let x_hat = (x - mean) * inv_std;
                            *o = scale * (*o - mean_dy - x_hat * mean_dy_xhat);
                        }
                    });
            };
            let dx = in_place(dy, dx_over_dy).unwrap_or_else(|shared| {
                let mut v = values(&shared).to_vec();
                dx_over_dy(&mut v);
                FlexTensor::from_data(TensorData::new(v, shared.shape()))
            });
            grads.register::<Flex>(id, dx);
        }
        crate::outputs::recycle(s.x);
        if let Some(id) = gamma_node {
            grads.register::<Flex>(id, vector(sum_dy_xhat));
        }
        if let Some(id) = beta_node {
            grads.register::<Flex>(id, vector(sum_dy));
        }
    }
}
