//! 2-D max pooling on burn-flex. burn-flex 0.22 computes every max pool with its argmax indices
//! (which only a backward pass needs): 5% of a ResNet-18 forward pass; and with them, its
//! training pool and the scatter of its backward cost ~160 ms a ResNet-18 step at batch 16 (14%).
//! Here the forward pass keeps no indices (a running maximum over the kernel's rows and
//! columns); the backward pass finds each window's maximum again by comparing the input with the
//! output, which it keeps.

use burn::tensor::module::max_pool2d as burn_max_pool2d;
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{DType, Tensor, TensorData};
use burn_autodiff::Autodiff;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_backend::Shape;
use burn_backend::TensorMetadata;
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;
use std::ops::Range;

use crate::flex::{contiguous, values};
use crate::grad::Geometry;

/// burn's `max_pool2d` (stride, `(begin, end)` padding per axis, no dilation, floor mode); on
/// the burn-flex device and its autodiff device graft's kernels, elsewhere burn's. NaN
/// propagates, as in PyTorch; the gradient goes to the first maximum of each window (row-major).
pub fn max_pool2d(
    x: Tensor<4>,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [(usize, usize); 2],
) -> Tensor<4> {
    let burns = |x| {
        let o = MaxPoolOptions::new(kernel)
            .with_stride(stride)
            .with_padding_pairs(padding);
        burn_max_pool2d(x, o)
    };
    if x.dtype() != DType::F32 {
        return burns(x);
    }
    if x.is_autodiff() {
        return match x.clone().try_into_primitive::<Autodiff<Flex>>() {
            Ok(p) => Tensor::from_primitive::<Autodiff<Flex>>(tracked(p, kernel, stride, padding)),
            Err(_) => burns(x),
        };
    }
    match x.clone().try_into_primitive::<Flex>() {
        Ok(p) => {
            let p = contiguous(p);
            let g = geometry(&p, kernel, stride, padding);
            Tensor::from_primitive::<Flex>(pool(&g, &p))
        }
        Err(_) => burns(x),
    }
}

fn geometry(
    x: &FlexTensor,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [(usize, usize); 2],
) -> Geometry {
    let s = x.shape();
    Geometry::new(
        [s[0], s[1], s[2], s[3]],
        s[1],
        kernel,
        stride,
        padding,
        [1, 1],
    )
}

fn pool(g: &Geometry, x: &FlexTensor) -> FlexTensor {
    let y = max_pool_planes(g, values(x));
    let shape = Shape::new([g.batch, g.in_channels, g.out_size[0], g.out_size[1]]);
    FlexTensor::from_data(TensorData::new(y, shape))
}

type AdTensor = burn_backend::tensor::FloatTensor<Autodiff<Flex>>;

fn tracked(
    x: AdTensor,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [(usize, usize); 2],
) -> AdTensor {
    let prepared = MaxPool
        .prepare::<NoCheckpointing>([x.node()])
        .compute_bound()
        .stateful();
    let x = contiguous(x.into_primitive());
    let g = geometry(&x, kernel, stride, padding);
    let y = pool(&g, &x);
    match prepared {
        // The state is the input and the output themselves (shared, not copied).
        OpsKind::Tracked(prep) => prep.finish((x, y.clone(), g), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    }
}

#[derive(Debug)]
struct MaxPool;

impl Backward<Flex, 1> for MaxPool {
    type State = (FlexTensor, FlexTensor, Geometry);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let Some(node) = node else { return };
        let (x, y, g) = ops.state;
        let dx = max_pool_grad(&g, values(&x), values(&y), values(&dy));
        grads.register::<Flex>(
            node.id,
            FlexTensor::from_data(TensorData::new(dx, x.shape())),
        );
    }
}

/// The input gradient of a max pool: each output's gradient goes to the first position of its
/// window (row-major) that holds the window's maximum `y` (NaN matching NaN).
fn max_pool_grad(g: &Geometry, x: &[f32], y: &[f32], dy: &[f32]) -> Vec<f32> {
    let [ih_len, iw_len] = g.in_size;
    let [oh_len, ow_len] = g.out_size;
    let [kh, kw] = g.kernel;
    let mut dx = vec![0.0f32; x.len()];
    dx.par_chunks_mut(g.in_len().max(1))
        .zip(x.par_chunks(g.in_len().max(1)))
        .zip(
            y.par_chunks(g.out_len().max(1))
                .zip(dy.par_chunks(g.out_len().max(1))),
        )
        .for_each(|((dx, x), (y, dy))| {
            for oh in 0..oh_len {
                let top = (oh * g.stride[0]) as isize - g.padding[0] as isize;
                let rows = top.max(0) as usize..((top + kh as isize).max(0) as usize).min(ih_len);
                for ow in 0..ow_len {
                    let left = (ow * g.stride[1]) as isize - g.padding[1] as isize;
                    let cols =
                        left.max(0) as usize..((left + kw as isize).max(0) as usize).min(iw_len);
                    let (m, d) = (y[oh * ow_len + ow], dy[oh * ow_len + ow]);
                    if let Some(i) = first_max(x, iw_len, rows.clone(), cols, m) {
                        dx[i] += d;
                    }
                }
            }
        });
    dx
}

/// The first position (row-major) of the window `rows` x `cols` of the plane `x` (rows of
/// `width`) that holds `m`, NaN matching NaN. A 3x3 window (ResNet's pool, away from the
/// edges) compares all nine places and takes the first match from a bit mask; the search that
/// stops at the match, branching on where the maximum happens to be, took 1.5x the time in
/// `perf` of a ResNet-18 training step (2.89% of it against 1.92%). Other windows are searched.
fn first_max(
    x: &[f32],
    width: usize,
    rows: Range<usize>,
    cols: Range<usize>,
    m: f32,
) -> Option<usize> {
    let eq = |v: f32| v == m || (m.is_nan() && v.is_nan());
    if rows.len() == 3 && cols.len() == 3 {
        let at = rows.start * width + cols.start;
        let (a, b, c) = (
            &x[at..][..3],
            &x[at + width..][..3],
            &x[at + 2 * width..][..3],
        );
        let hits = [a[0], a[1], a[2], b[0], b[1], b[2], c[0], c[1], c[2]]
            .iter()
            .enumerate()
            .fold(0u32, |h, (k, &v)| h | (u32::from(eq(v)) << k));
        let k = hits.trailing_zeros() as usize;
        return (hits != 0).then(|| at + k / 3 * width + k % 3);
    }
    rows.into_iter().find_map(|ih| {
        let row = &x[ih * width..];
        cols.clone()
            .find(|&iw| eq(row[iw]))
            .map(|iw| ih * width + iw)
    })
}

/// Max pooling of NCHW planes (`x` is `[batch * channels]` planes of `in_size`), tap by tap
/// (the maximum does not depend on the order, NaN included); windows that lie wholly in the
/// padding give `-inf`.
fn max_pool_planes(g: &Geometry, x: &[f32]) -> Vec<f32> {
    let planes = g.batch * g.in_channels;
    assert_eq!(x.len(), planes * g.in_len(), "max_pool: input length");
    let mut y = vec![f32::NEG_INFINITY; planes * g.out_len()];
    y.par_chunks_mut(g.out_len().max(1))
        .zip(x.par_chunks(g.in_len().max(1)))
        .for_each(|(out, plane)| {
            for tap in 0..g.taps() {
                for (positions, first) in g.tap_rows(tap) {
                    let (dst, src) = (&mut out[positions], &plane[first..]);
                    // Strides 1 and 2 (every pool here) as fixed-width chunks, which vectorise.
                    match g.stride[1] {
                        1 => max_into(dst, src.iter()),
                        2 => max_into(dst, src.chunks(2).map(|c| &c[0])),
                        s => max_into(dst, src.iter().step_by(s)),
                    }
                }
            }
        });
    y
}

/// `m = max(m, v)` along a row, NaN winning (as in PyTorch), in select form.
fn max_into<'a>(dst: &mut [f32], taps: impl Iterator<Item = &'a f32>) {
    for (m, v) in dst.iter_mut().zip(taps) {
        *m = if *v > *m || v.is_nan() { *v } else { *m };
    }
}
/// Planes summed per task.
const POOL_TASK: usize = 256;

/// Global average pooling, `[batch, channels, h, w]` to `[batch, channels]`: on the plain
/// burn-flex device each plane summed in one pass, in parallel (burn-flex 0.22 reduces one axis
/// at a time on one thread: 2.5 ms of a 190 ms Lite0 batch, where ONNX Runtime's `ReduceMean`
/// takes 0.4); elsewhere, and on the autodiff device, burn's `mean_dim`.
pub fn global_avg_pool(x: Tensor<4>) -> Tensor<2> {
    let [b, c, h, w] = x.dims();
    let burns = |x: Tensor<4>| x.mean_dim(3).mean_dim(2).reshape([b, c]);
    if x.dtype() != DType::F32 || x.is_autodiff() {
        return burns(x);
    }
    let Ok(p) = x.clone().try_into_primitive::<Flex>() else {
        return burns(x);
    };
    let p = contiguous(p);
    let (v, n) = (values(&p), h * w);
    let mut out = vec![0.0f32; b * c];
    out.par_chunks_mut(POOL_TASK)
        .enumerate()
        .for_each(|(i, o)| {
            for (j, o) in o.iter_mut().enumerate() {
                let plane = &v[(i * POOL_TASK + j) * n..][..n];
                *o = plane.iter().sum::<f32>() / n as f32;
            }
        });
    Tensor::from_primitive::<Flex>(crate::flex::tensor(out, Shape::from([b, c])))
}
