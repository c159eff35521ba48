//! The forward pass of a 1x1, stride-1 convolution directly in NCHW: per image, the output
//! `[out, h*w]` is the weight `[out, in]` times the input `[in, h*w]`, a matrix product over
//! the tensor as it lies.
//!
//! burn-flex 0.22 converts the whole batch to channels-last on one thread, multiplies, and
//! converts back. Here each image is its own product, split into bands of output channels that
//! are spread over the threads, each taken a block of columns at a time so that the bias and activation are applied while the block is in cache.

use rayon::prelude::*;

use crate::epilogue::Epilogue;
use crate::grad::Geometry;
use crate::isa::Isa;
use crate::matmul::{Mat, matmul_into};

/// Output channels per task: enough tasks for both threads at batch 1 on the wide layers, few
/// enough that re-packing the input per band costs little (1/64 of the product).
const BAND_ROWS: usize = 64;

/// Output columns (pixels) per product: a `[out, COLUMNS]` block stays in the core's cache
/// for the epilogue.
const COLUMNS: usize = 1024;

/// `y = epilogue(w x + bias)` for `x` `[batch, in, h, w]` and `w` `[out, in, 1, 1]`, the
/// epilogue with `isa`'s vectors (the products are gemm's, which dispatches by itself).
///
/// Panics if the slices are shorter than `g` says (a caller's error, not the data's).
pub fn forward(
    g: &Geometry,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    epilogue: Epilogue,
    isa: Isa,
) -> Vec<f32> {
    let (cin, cout, hw) = (g.in_channels, g.out_channels, g.out_len());
    assert!(
        g.is_pointwise(),
        "pointwise: a 1x1, stride-1, unpadded convolution"
    );
    assert!(x.len() >= g.batch * cin * hw, "pointwise: x too short");
    assert!(w.len() >= cout * cin, "pointwise: w too short");
    let mut out = crate::outputs::take(g.batch * cout * hw);
    if out.is_empty() {
        return out;
    }
    out.par_chunks_mut(cout * hw)
        .enumerate()
        .for_each(|(n, image)| {
            let x = &x[n * cin * hw..][..cin * hw];
            product(image, hw, w, x, cin, bias, epilogue, isa);
        });
    out
}

/// `dst = epilogue(w cols + bias)` for one image: `w` `[out, k]`, `cols` `[k, n]`, `dst`
/// `[out, n]` with `dst_stride` floats between its rows (a band of output rows inside NCHW
/// planes has the plane's length), in bands of [`BAND_ROWS`] output channels over the threads,
/// [`COLUMNS`] columns at a time. `dst` holds as many output channels as fit in it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn product(
    dst: &mut [f32],
    dst_stride: usize,
    w: &[f32],
    cols: &[f32],
    k: usize,
    bias: Option<&[f32]>,
    epilogue: Epilogue,
    isa: Isa,
) {
    let n = cols.len() / k.max(1);
    if n == 0 || dst.len() < n {
        return;
    }
    assert!(n <= dst_stride, "product: rows of dst overlap");
    // Bands of output channels are a fixed size, not sized to the batch: an image's values must
    // not depend on which images share its batch (gemm's blocking follows the product's shape),
    // so that a resumed run extracts the same features as an uninterrupted one.
    let cout = (dst.len() - n) / dst_stride + 1;
    // At least two bands, so that one image keeps both threads busy (ResNet's 64-channel stem
    // at batch 1 ran on one: 3.5-4.5 ms against ORT's 1.4).
    let band = BAND_ROWS.min(cout.div_ceil(2).next_multiple_of(8));
    dst.par_chunks_mut(band * dst_stride)
        .enumerate()
        .for_each(|(b, dst)| {
            let c0 = b * band;
            let rows = band.min(cout - c0);
            let lhs = Mat::rows(&w[c0 * k..][..rows * k], rows, k);
            for col in (0..n).step_by(COLUMNS) {
                let width = COLUMNS.min(n - col);
                let rhs = Mat {
                    data: &cols[col..],
                    rows: k,
                    cols: width,
                    row_stride: n,
                    col_stride: 1,
                };
                matmul_into(&mut dst[col..], dst_stride, lhs, rhs, false);
                isa.run(
                    #[inline(always)]
                    || {
                        for r in 0..rows {
                            let b = bias.map_or(0.0, |b| b[c0 + r]);
                            epilogue.finish(&mut dst[r * dst_stride + col..][..width], b);
                        }
                    },
                );
            }
        });
}
