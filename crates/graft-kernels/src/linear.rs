//! A fully connected layer for a few rows: an ImageNet classifier (1280 or 2048 by 1000) at
//! batch 1, where the product is a matrix-vector one and the time is reading the weights once.
//!
//! burn-flex hands it to `gemm`, which packs the weights on every call: EfficientNet-Lite0's
//! 5 MB classifier took 0.30 ms at batch 1 on 2 threads (ResNet-50's 8 MB, 0.57 ms), about
//! 17 GB/s. Here each task streams a contiguous band of the weight's rows (`[in, out]`, burn's
//! `Linear` layout) into its own partial sums, in cache, and the bands' sums are added at the
//! end: the weights are read once, in order, on every thread.

use burn::tensor::{DType, Tensor};
use burn_backend::Shape;
use burn_flex::Flex;
use rayon::prelude::*;

use crate::flex::{contiguous, values};
use crate::isa::Isa;

/// Rows at most that take this path; more, and `gemm`'s packed product reuses each weight
/// enough to be the faster.
pub const MAX_ROWS: usize = 4;
/// Weight rows a task streams at least (with 1000 outputs, 256 KiB: a few tasks a thread).
const BAND_ROWS: usize = 64;

/// `x w + bias` for `x` `[rows, in]` and `w` `[in, out]` (burn's `Linear`), through
/// [`forward`] for up to [`MAX_ROWS`] rows of `f32` inference tensors; burn's own product
/// for anything else.
pub fn linear(x: Tensor<2>, w: Tensor<2>, bias: Option<Tensor<1>>) -> Tensor<2> {
    let burns = |x: Tensor<2>, w: Tensor<2>, bias: Option<Tensor<1>>| {
        let y = x.matmul(w);
        match bias {
            Some(b) => y + b.unsqueeze_dim(0),
            None => y,
        }
    };
    let ([rows, k], [kw, n]) = (x.dims(), w.dims());
    let plain = |t: DType, ad: bool| t == DType::F32 && !ad;
    let small = rows <= MAX_ROWS && k == kw;
    let all_plain = plain(x.dtype(), x.is_autodiff())
        && plain(w.dtype(), w.is_autodiff())
        && bias
            .as_ref()
            .is_none_or(|b| plain(b.dtype(), b.is_autodiff()) && b.dims() == [n]);
    if !small || !all_plain {
        return burns(x, w, bias);
    }
    let flex = |t: Tensor<2>| t.try_into_primitive::<Flex>().ok().map(contiguous);
    let b = match &bias {
        Some(b) => match b.clone().try_into_primitive::<Flex>() {
            Ok(p) => Some(contiguous(p)),
            Err(_) => return burns(x, w, bias),
        },
        None => None,
    };
    // A weight held as a strided view stays with `gemm`, which reads it in place: a
    // contiguous copy would cost more than the product.
    let wp = w.clone().try_into_primitive::<Flex>().ok();
    let (Some(xp), Some(wp)) = (
        flex(x.clone()),
        wp.filter(|w| w.as_slice::<f32>().is_some()),
    ) else {
        return burns(x, w, bias);
    };
    let bias_values = b.as_ref().map(values);
    let y = forward(
        values(&xp),
        rows,
        values(&wp),
        k,
        n,
        bias_values,
        Isa::detect(),
    );
    Tensor::from_primitive::<Flex>(crate::flex::tensor(y, Shape::from([rows, n])))
}

/// `x w + bias` over slices: `x` `[rows, k]`, `w` `[k, n]`, `bias` `[n]`; `[rows, n]` out.
///
/// Panics if a slice is shorter than the shapes say (a caller's error).
pub fn forward(
    x: &[f32],
    rows: usize,
    w: &[f32],
    k: usize,
    n: usize,
    bias: Option<&[f32]>,
    isa: Isa,
) -> Vec<f32> {
    assert!(x.len() >= rows * k, "linear: x too short");
    assert!(w.len() >= k * n, "linear: w too short");
    assert!(bias.is_none_or(|b| b.len() >= n), "linear: bias too short");
    if n == 0 {
        // No outputs (and no weight rows to split into bands of `n` floats).
        return Vec::new();
    }
    let band = BAND_ROWS.max(k.div_ceil(4 * rayon::current_num_threads().max(1)));
    let partials: Vec<Vec<f32>> = (0..k.div_ceil(band))
        .into_par_iter()
        .map(|i| {
            let (i0, i1) = (i * band, ((i + 1) * band).min(k));
            let mut acc = vec![0.0f32; rows * n];
            isa.dispatch(Accumulate {
                x,
                k,
                band: &w[i0 * n..i1 * n],
                n,
                i0,
                acc: &mut acc,
            });
            acc
        })
        .collect();
    let mut y = match bias {
        Some(b) => (0..rows).flat_map(|_| b[..n].iter().copied()).collect(),
        None => vec![0.0f32; rows * n],
    };
    for p in &partials {
        isa.run(|| y.iter_mut().zip(p).for_each(|(y, p)| *y += p));
    }
    y
}

/// [`accumulate`] as a [`pulp::WithSimd`] op, so that it is compiled for the CPU's vectors: a
/// closure handed to [`Isa::run`] was compiled on its own, as SSE code (4 lanes on AVX-512
/// machines too), because it was not inlined into the op.
struct Accumulate<'a> {
    x: &'a [f32],
    k: usize,
    band: &'a [f32],
    n: usize,
    i0: usize,
    acc: &'a mut [f32],
}

impl pulp::WithSimd for Accumulate<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        accumulate(self.x, self.k, self.band, self.n, self.i0, self.acc)
    }
}

/// `acc[r] += x[r][i0 + i] * band[i]` over the band's rows, four at a time (one pass over the
/// sums for four weight rows: the sums' loads and stores, not the weights', would bound it).
#[inline(always)]
fn accumulate(x: &[f32], k: usize, band: &[f32], n: usize, i0: usize, acc: &mut [f32]) {
    let mut quads = band.chunks_exact(4 * n);
    for (j, quad) in quads.by_ref().enumerate() {
        let (w0, rest) = quad.split_at(n);
        let (w1, rest) = rest.split_at(n);
        let (w2, w3) = rest.split_at(n);
        for (r, acc) in acc.chunks_exact_mut(n).enumerate() {
            let a = &x[r * k + i0 + 4 * j..][..4];
            let (w0, w1, w2, w3) = (&w0[..n], &w1[..n], &w2[..n], &w3[..n]);
            let acc = &mut acc[..n];
            for c in 0..n {
                acc[c] += (a[0] * w0[c] + a[1] * w1[c]) + (a[2] * w2[c] + a[3] * w3[c]);
            }
        }
    }
    let rest = quads.remainder();
    let done = band.len() / n - rest.len() / n;
    for (j, row) in rest.chunks_exact(n).enumerate() {
        for (r, acc) in acc.chunks_exact_mut(n).enumerate() {
            let a = x[r * k + i0 + done + j];
            for (s, &u) in acc.iter_mut().zip(row) {
                *s += a * u;
            }
        }
    }
}
