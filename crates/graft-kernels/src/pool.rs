//! 2-D max pooling for inference on burn-flex. burn-flex 0.22 computes every max pool with its
//! argmax indices (which only a backward pass needs): 5% of a ResNet-18 forward pass. Here one
//! pass per output row, a running maximum over the kernel's rows and columns, no indices.

use burn::tensor::module::max_pool2d as burn_max_pool2d;
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{DType, Tensor, TensorData};
use burn_backend::Shape;
use burn_backend::TensorMetadata;
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

use crate::autodiff::{contiguous, values};
use crate::grad::Geometry;

/// burn's `max_pool2d` (stride, `(begin, end)` padding per axis, no dilation, floor mode); on
/// the plain burn-flex device graft's kernel, elsewhere (and on the autodiff device) burn's.
/// NaN propagates, as in PyTorch.
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
    if x.dtype() != DType::F32 || x.is_autodiff() {
        return burns(x);
    }
    match x.clone().try_into_primitive::<Flex>() {
        Ok(p) => Tensor::from_primitive::<Flex>(pool(contiguous(p), kernel, stride, padding)),
        Err(_) => burns(x),
    }
}

fn pool(
    x: FlexTensor,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [(usize, usize); 2],
) -> FlexTensor {
    let s = x.shape();
    let g = Geometry::new(
        [s[0], s[1], s[2], s[3]],
        s[1],
        kernel,
        stride,
        padding,
        [1, 1],
    );
    let y = max_pool_planes(&g, values(&x));
    let shape = Shape::new([g.batch, g.in_channels, g.out_size[0], g.out_size[1]]);
    FlexTensor::from_data(TensorData::new(y, shape))
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
