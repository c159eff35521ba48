//! ReLU and ReLU6 (`min(max(x, 0), 6)`, MobileNet and EfficientNet-Lite's activation) on
//! burn-flex, on both threads. burn-flex 0.22 runs its element-wise activations on one thread,
//! and builds relu6 from `clamp_min` + `clamp_max` (a comparison and a masked fill each, both
//! ways) on the autodiff device: 15% of an EfficientNet-Lite0 training step. Here the inference
//! device clamps in place (the tensor is uniquely owned right after a convolution), and the
//! autodiff device gets one op with a one-pass backward.

use burn::tensor::activation::{relu as burn_relu, relu6 as burn_relu6};
use burn::tensor::{DType, Tensor, TensorData};
use burn_autodiff::Autodiff;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_backend::TensorMetadata;
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

use crate::epilogue::Epilogue;
use crate::flex::{contiguous, in_place, values};

/// Elements per rayon task: large enough that scheduling costs nothing.
const CHUNK: usize = 1 << 16;

/// burn's `relu6`: NaN propagates, and the gradient is PyTorch's `hardtanh_backward` (`dy` where
/// `0 < x < 6`, else 0).
pub fn relu6<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    clamp(x, 6.0, burn_relu6)
}

/// burn's `relu`: NaN propagates, and the gradient is PyTorch's `threshold_backward` (`dy` where
/// `x > 0`, else 0).
pub fn relu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    clamp(x, f32::INFINITY, burn_relu)
}

/// `relu(x + shortcut)`, a residual block's join (ResNet). On the burn-flex inference device the
/// sum is formed in `x`'s buffer as the ReLU is applied (one pass, no new tensor; burn-flex's add
/// allocates its output and runs on one thread), and a shortcut nobody else holds gives its
/// buffer to a later layer's output (see `outputs.rs`); elsewhere, or when `x` is shared,
/// strided or shaped unlike `shortcut`, it is `relu(x + shortcut)` as written.
pub fn add_relu<const D: usize>(x: Tensor<D>, shortcut: Tensor<D>) -> Tensor<D> {
    join(x, shortcut, Epilogue::BiasRelu)
}

/// `x + shortcut`, an inverted residual block's join (EfficientNet-Lite), as [`add_relu`] forms
/// it but with no activation.
pub fn add<const D: usize>(x: Tensor<D>, shortcut: Tensor<D>) -> Tensor<D> {
    join(x, shortcut, Epilogue::Bias)
}

fn join<const D: usize>(x: Tensor<D>, shortcut: Tensor<D>, epilogue: Epilogue) -> Tensor<D> {
    let as_written = |x: Tensor<D>, shortcut| match epilogue {
        Epilogue::Bias => x + shortcut,
        Epilogue::BiasRelu => relu(x + shortcut),
        Epilogue::BiasRelu6 => relu6(x + shortcut),
    };
    if x.dtype() != DType::F32 || shortcut.dtype() != DType::F32 || x.is_autodiff() {
        return as_written(x, shortcut);
    }
    let (Ok(p), Ok(s)) = (
        x.clone().try_into_primitive::<Flex>(),
        shortcut.clone().try_into_primitive::<Flex>(),
    ) else {
        return as_written(x, shortcut);
    };
    if p.shape() != s.shape() {
        return as_written(x, shortcut);
    }
    // Only the primitive may hold x's data for the sum to be formed in it.
    drop(x);
    let s = contiguous(s);
    match in_place(p, |v| join_slice(v, values(&s), epilogue)) {
        Ok(y) => {
            drop(shortcut);
            crate::outputs::recycle(s);
            Tensor::from_primitive::<Flex>(y)
        }
        Err(p) => as_written(Tensor::from_primitive::<Flex>(p), shortcut),
    }
}

/// `v = epilogue(v + s)` element by element, on both threads with `Isa`'s vectors.
pub(crate) fn join_slice(v: &mut [f32], s: &[f32], epilogue: Epilogue) {
    let isa = crate::Isa::detect();
    v.par_chunks_mut(CHUNK)
        .zip(s.par_chunks(CHUNK))
        .for_each(|(v, s)| {
            isa.run(
                #[inline(always)]
                || {
                    for (v, s) in v.iter_mut().zip(s) {
                        *v = epilogue.apply(*v + s);
                    }
                },
            )
        });
}

/// `min(max(x, 0), hi)` with graft's kernels on burn-flex, `burns` (the same function) elsewhere.
fn clamp<const D: usize>(x: Tensor<D>, hi: f32, burns: fn(Tensor<D>) -> Tensor<D>) -> Tensor<D> {
    if x.dtype() != DType::F32 {
        return burns(x);
    }
    if !x.is_autodiff() {
        return match x.clone().try_into_primitive::<Flex>() {
            Ok(p) => {
                // Only the primitive may hold the data for it to be clamped in place.
                drop(x);
                match in_place(p, |v| clamp_slice(v, hi)) {
                    Ok(y) => Tensor::from_primitive::<Flex>(y),
                    // Shared or strided: burn's op copies as needed.
                    Err(p) => burns(Tensor::from_primitive::<Flex>(p)),
                }
            }
            Err(_) => burns(x),
        };
    }
    match x.clone().try_into_primitive::<Autodiff<Flex>>() {
        Ok(p) => {
            // As above: with `x` gone, a fresh output (BatchNorm's, which its backward pass
            // does not keep) is clamped where it lies.
            drop(x);
            Tensor::from_primitive::<Autodiff<Flex>>(tracked(p, hi))
        }
        Err(_) => burns(x),
    }
}

/// A convolution's epilogue applied after burn-flex's own convolution (the bias is already
/// added): in place when uniquely owned and contiguous (a fresh convolution output), else a copy.
pub(crate) fn epilogue_primitive(x: FlexTensor, epilogue: Epilogue) -> FlexTensor {
    let hi = match epilogue {
        Epilogue::Bias => return x,
        Epilogue::BiasRelu => f32::INFINITY,
        Epilogue::BiasRelu6 => 6.0,
    };
    clamped(x, hi)
}

/// `min(max(x, 0), hi)` in place when `x` is uniquely owned (a fresh convolution or BatchNorm
/// output), else into a copy.
fn clamped(x: FlexTensor, hi: f32) -> FlexTensor {
    in_place(contiguous(x), |v| clamp_slice(v, hi)).unwrap_or_else(|x| {
        // Shared (a training pass keeps the layer before's output for its backward pass):
        // written once into the new buffer (rayon's collect fills it in place), not copied
        // and then clamped there, two passes over it.
        let out: Vec<f32> = values(&x)
            .par_iter()
            .with_min_len(CHUNK)
            .map(|&v| clamp_one(v, hi))
            .collect();
        FlexTensor::from_data(TensorData::new(out, x.shape()))
    })
}

fn clamp_slice(values: &mut [f32], hi: f32) {
    let isa = crate::Isa::detect();
    values.par_chunks_mut(CHUNK).for_each(|c| {
        isa.run(
            #[inline(always)]
            || {
                for v in c {
                    *v = clamp_one(*v, hi);
                }
            },
        )
    });
}

/// `min(max(v, 0), hi)`; NaN fails both comparisons and is kept, as in PyTorch.
#[inline(always)]
fn clamp_one(v: f32, hi: f32) -> f32 {
    if v > hi {
        hi
    } else if v > 0.0 || v.is_nan() {
        v
    } else {
        0.0
    }
}

type AdTensor = burn_backend::tensor::FloatTensor<Autodiff<Flex>>;

fn tracked(x: AdTensor, hi: f32) -> AdTensor {
    let forward = |x: FlexTensor| clamped(x, hi);
    match Clamp
        .prepare::<NoCheckpointing>([x.node()])
        .compute_bound()
        .stateful()
    {
        // The state is the output itself (shared, not copied): `0 < y < hi` exactly where
        // `0 < x < hi`, and the next layer keeps `y` alive anyway.
        OpsKind::Tracked(prep) => {
            let y = forward(x.into_primitive());
            prep.finish((y.clone(), hi), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(x.into_primitive())),
    }
}

#[derive(Debug)]
struct Clamp;

impl Backward<Flex, 1> for Clamp {
    type State = (FlexTensor, f32);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let (y, hi) = ops.state;
        let Some(node) = node else { return };
        // relu's upper bound is open: an infinite output still passes its gradient.
        let unbounded = hi.is_infinite();
        // Selects, not branches, under the CPU's vectors: as a branch a pixel, this was the
        // hottest loop outside the matrix products in a Lite0 training step.
        let isa = crate::Isa::detect();
        let mask = |dx: &mut [f32]| {
            dx.par_chunks_mut(CHUNK)
                .zip(values(&y).par_chunks(CHUNK))
                .for_each(|(d, y)| {
                    isa.run(
                        #[inline(always)]
                        || {
                            for (d, &y) in d.iter_mut().zip(y) {
                                // `&` and `|`: short-circuit operators became branches.
                                let passes = (y > 0.0) & ((y < hi) | unbounded);
                                *d = if passes { *d } else { 0.0 };
                            }
                        },
                    )
                });
        };
        // dy is usually the only reference to its gradient: masked where it lies.
        let mut dy = dy;
        let dx = match dy.try_storage_mut::<f32>() {
            Some(values) => {
                mask(values);
                dy
            }
            None => {
                let mut dx = values(&dy).to_vec();
                mask(&mut dx);
                FlexTensor::from_data(TensorData::new(dx, dy.shape()))
            }
        };
        grads.register::<Flex>(node.id, dx);
    }
}
