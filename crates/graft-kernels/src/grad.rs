//! Convolution kernels over plain `f32` slices in NCHW order: im2col for the dense forward pass,
//! im2row / col2im for dense gradients (the matrix products are left to the caller's gemm), and direct loops for
//! depthwise ones. No tensors here, so every kernel is tested against the definition of the
//! convolution in `tests/grad.rs`.

use rayon::prelude::*;
use std::ops::Range;

/// Shapes and hyper-parameters of one 2-D convolution. `padding` is the padding at the start of
/// each axis; the end padding is implied by `out_size`, so asymmetric ("same") padding needs
/// nothing more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub batch: usize,
    pub in_channels: usize,
    pub in_size: [usize; 2],
    pub out_channels: usize,
    pub out_size: [usize; 2],
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
}

/// Output positions `o` along one axis whose input position `o * stride + offset` lies inside
/// `0..in_len`, as a range (the positions outside read padding).
fn valid(out_len: usize, in_len: usize, stride: usize, offset: isize) -> (usize, usize) {
    let lo = if offset < 0 {
        ((-offset) as usize).div_ceil(stride)
    } else {
        0
    };
    let room = in_len as isize - offset;
    let hi = if room <= 0 {
        0
    } else {
        (room as usize).div_ceil(stride).min(out_len)
    };
    (lo.min(hi), hi)
}

impl Geometry {
    /// The geometry of a window op over `x_shape` (`[batch, in, h, w]`) with `(begin, end)`
    /// padding per axis; the output size is PyTorch's, `(in + pads - reach) / stride + 1`.
    pub fn new(
        x_shape: [usize; 4],
        out_channels: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [(usize, usize); 2],
        dilation: [usize; 2],
    ) -> Self {
        let [batch, in_channels, h, w] = x_shape;
        let out = |axis: usize, size: usize| {
            let (begin, end) = padding[axis];
            let reach = dilation[axis] * kernel[axis].saturating_sub(1) + 1;
            (size + begin + end).saturating_sub(reach) / stride[axis] + 1
        };
        Geometry {
            batch,
            in_channels,
            in_size: [h, w],
            out_channels,
            out_size: [out(0, h), out(1, w)],
            kernel,
            stride,
            padding: padding.map(|(begin, _)| begin),
            dilation,
        }
    }

    pub fn in_len(&self) -> usize {
        self.in_size[0] * self.in_size[1]
    }

    pub fn out_len(&self) -> usize {
        self.out_size[0] * self.out_size[1]
    }

    pub fn taps(&self) -> usize {
        self.kernel[0] * self.kernel[1]
    }

    /// A 1x1 convolution with stride 1 and no padding: its patches are the input's pixels.
    pub fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1]
            && self.stride == [1, 1]
            && self.padding == [0, 0]
            && self.in_size == self.out_size
    }

    /// Rows of the im2col matrix: one per (input channel, kernel row, kernel column).
    pub fn patch_len(&self) -> usize {
        self.in_channels * self.taps()
    }

    /// Offset of kernel tap `k` along `axis`: the input position is `o * stride + offset`.
    fn offset(&self, axis: usize, k: usize) -> isize {
        (k * self.dilation[axis]) as isize - self.padding[axis] as isize
    }

    /// Valid output range along `axis` for kernel tap `k`.
    fn valid(&self, axis: usize, k: usize) -> (usize, usize) {
        valid(
            self.out_size[axis],
            self.in_size[axis],
            self.stride[axis],
            self.offset(axis, k),
        )
    }

    /// The work of kernel tap `tap` (`ki * kw + kj`) on one plane: for every output row whose
    /// reads at that tap are not all padding, the output positions `oh * ow + w_lo..oh * ow +
    /// w_hi` that read the input, and the flat input position the first of them reads (the
    /// others follow at `stride[1]`).
    pub(crate) fn tap_rows(&self, tap: usize) -> impl Iterator<Item = (Range<usize>, usize)> + '_ {
        let (ki, kj) = (tap / self.kernel[1], tap % self.kernel[1]);
        let ((h_lo, h_hi), (w_lo, w_hi)) = (self.valid(0, ki), self.valid(1, kj));
        let rows = if w_lo < w_hi { h_lo..h_hi } else { 0..0 };
        let [ow_len, iw_len] = [self.out_size[1], self.in_size[1]];
        rows.map(move |oh| {
            let first = self.input_pos(0, oh, ki) * iw_len + self.input_pos(1, w_lo, kj);
            (oh * ow_len + w_lo..oh * ow_len + w_hi, first)
        })
    }

    /// Input row (or column) read by output row `o` at tap `k`; only called inside `valid`.
    fn input_pos(&self, axis: usize, o: usize, k: usize) -> usize {
        ((o * self.stride[axis]) as isize + self.offset(axis, k)) as usize
    }

    /// Flat input position (`ih * w + iw`) read by output `(oh, ow)` at tap `(ki, kj)`, if it is
    /// not padding.
    fn input_at(&self, oh: usize, ow: usize, ki: usize, kj: usize) -> Option<usize> {
        let ih = (oh * self.stride[0]) as isize + self.offset(0, ki);
        let iw = (ow * self.stride[1]) as isize + self.offset(1, kj);
        let inside = |i: isize, len: usize| i >= 0 && (i as usize) < len;
        (inside(ih, self.in_size[0]) && inside(iw, self.in_size[1]))
            .then(|| ih as usize * self.in_size[1] + iw as usize)
    }

    /// The output position along `axis` that reads input position `i` at tap `k`, if any.
    fn output_at(&self, axis: usize, i: usize, k: usize) -> Option<usize> {
        let scaled = i as isize - self.offset(axis, k);
        let s = self.stride[axis] as isize;
        (scaled >= 0 && scaled % s == 0)
            .then(|| (scaled / s) as usize)
            .filter(|&o| o < self.out_size[axis])
    }
}

/// Lays the patches of `images` (consecutive images of `x_nhwc`, the input in `[batch, h, w, in]`
/// order) out as rows: `cols` is `[images.len() * out_len, patch_len]`, one row per output
/// position, each row ordered (kernel row, kernel column, input channel), zeros where the patch
/// reads padding. Rows of channels-last patches are contiguous copies, and the weight gradient
/// `dY x cols` then multiplies two row-major matrices, the layout gemm runs fastest.
pub fn im2row(g: &Geometry, x_nhwc: &[f32], images: std::ops::Range<usize>, cols: &mut [f32]) {
    let cin = g.in_channels;
    assert_eq!(
        x_nhwc.len(),
        g.batch * cin * g.in_len(),
        "im2row: input length"
    );
    assert_eq!(
        cols.len(),
        images.len() * g.out_len() * g.patch_len(),
        "im2row: cols length"
    );
    let [ow_len, iw_len] = [g.out_size[1], g.in_size[1]];
    let row_block = ow_len * g.patch_len();
    let kw = g.kernel[1];
    // Outputs whose kw taps all read inside the row: with no dilation those taps are one
    // contiguous run of kw * cin input values (a single copy instead of kw short ones, which
    // for the 3-channel stem were most of the weight gradient's time).
    let (all_lo, all_hi) = (0..kw)
        .map(|kj| g.valid(1, kj))
        .fold((0, ow_len), |(lo, hi), (l, h)| (lo.max(l), hi.min(h)));
    let runs = g.dilation[1] == 1;
    cols.par_chunks_mut(row_block)
        .enumerate()
        .for_each(|(block, dst)| {
            let (image, oh) = (images.start + block / g.out_size[0], block % g.out_size[0]);
            let plane = &x_nhwc[image * g.in_len() * cin..][..g.in_len() * cin];
            for ki in 0..g.kernel[0] {
                let (h_lo, h_hi) = g.valid(0, ki);
                let inside = oh >= h_lo && oh < h_hi;
                let src_row =
                    inside.then(|| &plane[g.input_pos(0, oh, ki) * iw_len * cin..][..iw_len * cin]);
                let at = ki * kw * cin;
                for ow in 0..ow_len {
                    let d = &mut dst[ow * g.patch_len() + at..][..kw * cin];
                    let Some(src) = src_row else {
                        d.fill(0.0);
                        continue;
                    };
                    if runs && ow >= all_lo && ow < all_hi {
                        d.copy_from_slice(&src[g.input_pos(1, ow, 0) * cin..][..kw * cin]);
                        continue;
                    }
                    for (kj, d) in d.chunks_exact_mut(cin).enumerate() {
                        let (w_lo, w_hi) = g.valid(1, kj);
                        if ow >= w_lo && ow < w_hi {
                            d.copy_from_slice(&src[g.input_pos(1, ow, kj) * cin..][..cin]);
                        } else {
                            d.fill(0.0);
                        }
                    }
                }
            }
        });
}

/// The patches of output rows `rows` of `images` (consecutive images of `x`, the NCHW input) as
/// columns: `cols` is `[patch_len, images.len() * rows.len() * out_w]`, rows ordered (input
/// channel, kernel row, kernel column), zeros where a patch reads padding (Caffe's im2col). Each
/// row is a run of shifted input rows, contiguous copies at stride 1, and `W x cols` is then one
/// long row-major product whose columns are the output positions, image after image.
pub fn im2col(
    g: &Geometry,
    x: &[f32],
    images: std::ops::Range<usize>,
    rows: std::ops::Range<usize>,
    cols: &mut [f32],
) {
    let [ow_len, iw_len] = [g.out_size[1], g.in_size[1]];
    let band = rows.len() * ow_len;
    let width = images.len() * band;
    assert_eq!(
        x.len(),
        g.batch * g.in_channels * g.in_len(),
        "im2col: input length"
    );
    assert_eq!(cols.len(), g.patch_len() * width, "im2col: cols length");
    assert!(rows.end <= g.out_size[0], "im2col: rows past the output");
    cols.par_chunks_mut(width.max(1))
        .enumerate()
        .for_each(|(row_index, row)| {
            let (c, tap) = (row_index / g.taps(), row_index % g.taps());
            let (ki, kj) = (tap / g.kernel[1], tap % g.kernel[1]);
            let ((h_lo, h_hi), (w_lo, w_hi)) = (g.valid(0, ki), g.valid(1, kj));
            for (n, image) in images.clone().enumerate() {
                let plane = &x[(image * g.in_channels + c) * g.in_len()..][..g.in_len()];
                let dst_band = &mut row[n * band..][..band];
                for (oh, dst) in rows.clone().zip(dst_band.chunks_exact_mut(ow_len)) {
                    if oh < h_lo || oh >= h_hi || w_lo >= w_hi {
                        dst.fill(0.0);
                        continue;
                    }
                    let src = &plane[g.input_pos(0, oh, ki) * iw_len..][..iw_len];
                    let src = &src[g.input_pos(1, w_lo, kj)..];
                    dst[..w_lo].fill(0.0);
                    dst[w_hi..].fill(0.0);
                    let inner = &mut dst[w_lo..w_hi];
                    if g.stride[1] == 1 {
                        inner.copy_from_slice(&src[..inner.len()]);
                    } else {
                        for (d, s) in inner.iter_mut().zip(src.iter().step_by(g.stride[1])) {
                            *d = *s;
                        }
                    }
                }
            }
        });
}

/// The adjoint of im2col for one input plane: `cols` holds that channel's rows of the
/// `[patch_len, images * out_len]` patch matrix (one per tap, in kernel order), and every entry
/// of image `n`'s columns is added into the position of `plane` it was read from.
pub fn col2im_plane(g: &Geometry, cols: &[f32], n: usize, plane: &mut [f32]) {
    let width = cols.len() / g.taps().max(1);
    assert_eq!(cols.len(), g.taps() * width, "col2im: cols length");
    assert_eq!(plane.len(), g.in_len(), "col2im: plane length");
    for tap in 0..g.taps() {
        let row = &cols[tap * width + n * g.out_len()..][..g.out_len()];
        for (out, first) in g.tap_rows(tap) {
            add_scaled(&mut plane[first..], g.stride[1], &row[out], 1.0);
        }
    }
}

/// `dst[b*out_len + l][c] = dy[b][c][l]` for images `images`: the output gradient as the matrix
/// `[out_channels, images.len() * out_len]` the products below need.
pub fn channels_major(g: &Geometry, dy: &[f32], images: std::ops::Range<usize>, dst: &mut [f32]) {
    let width = images.len() * g.out_len();
    assert_eq!(dst.len(), g.out_channels * width, "channels_major: length");
    dst.par_chunks_mut(width).enumerate().for_each(|(c, row)| {
        for (n, image) in images.clone().enumerate() {
            let src = &dy[(image * g.out_channels + c) * g.out_len()..][..g.out_len()];
            row[n * g.out_len()..][..g.out_len()].copy_from_slice(src);
        }
    });
}

/// Depthwise convolution (one filter per channel, `in == out`), channels-last: from the input
/// `x` and output gradient `dy` (`[batch, h, w, channels]` and `[batch, oh, ow, channels]`) the
/// weight gradient `[kh * kw, channels]`. Every step is a multiply-add over a contiguous run of
/// channels, which vectorises whatever the spatial size (EfficientNet's last stages are 7x7).
pub fn depthwise_weight_grad(g: &Geometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let c = g.in_channels;
    assert_eq!(c, g.out_channels, "depthwise: in != out channels");
    assert_eq!(x.len(), g.batch * c * g.in_len(), "depthwise: x length");
    assert_eq!(dy.len(), g.batch * c * g.out_len(), "depthwise: dy length");
    sum_over_images(g.batch, 1, g.taps() * c, |images, acc| {
        for n in images {
            let image = &x[n * g.in_len() * c..][..g.in_len() * c];
            for oh in 0..g.out_size[0] {
                for ow in 0..g.out_size[1] {
                    let grad = &dy[((n * g.out_size[0] + oh) * g.out_size[1] + ow) * c..][..c];
                    for tap in 0..g.taps() {
                        let (ki, kj) = (tap / g.kernel[1], tap % g.kernel[1]);
                        let Some(pos) = g.input_at(oh, ow, ki, kj) else {
                            continue;
                        };
                        let src = &image[pos * c..][..c];
                        for ((a, d), s) in acc[tap * c..][..c].iter_mut().zip(grad).zip(src) {
                            *a += d * s;
                        }
                    }
                }
            }
        }
    })
}

/// A gradient summed over the batch: `add` sums each run of `chunk` consecutive images into a
/// part of `len` zeros, the runs in parallel, and the parts are added in run order
/// ([`sum_in_order`]), so the result does not depend on how rayon scheduled them.
pub(crate) fn sum_over_images(
    batch: usize,
    chunk: usize,
    len: usize,
    add: impl Fn(Range<usize>, &mut [f32]) + Sync,
) -> Vec<f32> {
    let chunk = chunk.max(1);
    let starts: Vec<usize> = (0..batch).step_by(chunk).collect();
    let parts = starts
        .into_par_iter()
        .map(|start| {
            let mut part = vec![0.0f32; len];
            add(start..(start + chunk).min(batch), &mut part);
            part
        })
        .collect();
    sum_in_order(parts, vec![0.0f32; len])
}

/// The element-wise sum of `parts` into `total`, in their order. A parallel fold or reduce
/// adds partial sums in an order that follows rayon's work stealing, and float addition is not
/// associative: the same step then gives different weights run to run (a resumed or repeated
/// run must be bit-identical).
pub(crate) fn sum_in_order(parts: Vec<Vec<f32>>, mut total: Vec<f32>) -> Vec<f32> {
    for part in parts {
        total.iter_mut().zip(part).for_each(|(t, p)| *t += p);
    }
    total
}

/// Depthwise convolution, channels-last: the input gradient `[batch, h, w, channels]` from the
/// weights `[kh * kw, channels]` and the output gradient `dy` `[batch, oh, ow, channels]`,
/// gathered per input row so rows are written by one thread each.
pub fn depthwise_input_grad(g: &Geometry, w: &[f32], dy: &[f32]) -> Vec<f32> {
    let c = g.in_channels;
    assert_eq!(c, g.out_channels, "depthwise: in != out channels");
    assert_eq!(w.len(), g.taps() * c, "depthwise: w length");
    assert_eq!(dy.len(), g.batch * c * g.out_len(), "depthwise: dy length");
    let [ih_len, iw_len] = g.in_size;
    let mut dx = vec![0.0f32; g.batch * c * g.in_len()];
    dx.par_chunks_mut(iw_len * c)
        .enumerate()
        .for_each(|(row, out)| {
            let (n, ih) = (row / ih_len, row % ih_len);
            for ki in 0..g.kernel[0] {
                let Some(oh) = g.output_at(0, ih, ki) else {
                    continue;
                };
                for iw in 0..iw_len {
                    let dst = &mut out[iw * c..][..c];
                    for kj in 0..g.kernel[1] {
                        let Some(ow) = g.output_at(1, iw, kj) else {
                            continue;
                        };
                        let grad = &dy[((n * g.out_size[0] + oh) * g.out_size[1] + ow) * c..][..c];
                        let weight = &w[(ki * g.kernel[1] + kj) * c..][..c];
                        for ((d, s), k) in dst.iter_mut().zip(grad).zip(weight) {
                            *d += s * k;
                        }
                    }
                }
            }
        });
    dx
}

/// Depthwise weight gradient in NCHW order (`x` `[batch, c, h, w]`, `dy` `[batch, c, oh, ow]`,
/// result `[c, kh * kw]`): one dot product per (image, tap, output row). Faster than the
/// channels-last kernel where rows are long (the early, large feature maps), since it needs no
/// layout change.
pub fn depthwise_weight_grad_nchw(g: &Geometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    assert_eq!(
        g.in_channels, g.out_channels,
        "depthwise: in != out channels"
    );
    assert_eq!(
        x.len(),
        g.batch * g.in_channels * g.in_len(),
        "depthwise: x length"
    );
    let mut dw = vec![0.0f32; g.in_channels * g.taps()];
    dw.par_chunks_mut(g.taps()).enumerate().for_each(|(c, dw)| {
        for n in 0..g.batch {
            let plane = &x[(n * g.in_channels + c) * g.in_len()..][..g.in_len()];
            let grad = &dy[(n * g.out_channels + c) * g.out_len()..][..g.out_len()];
            for (tap, acc) in dw.iter_mut().enumerate() {
                for (out, first) in g.tap_rows(tap) {
                    *acc += strided_dot(&grad[out], &plane[first..], g.stride[1]);
                }
            }
        }
    });
    dw
}

/// Depthwise input gradient in NCHW order (`w` `[c, kh * kw]`, `dy` `[batch, c, oh, ow]`),
/// scattered plane by plane; see [`depthwise_weight_grad_nchw`] for when it is used.
pub fn depthwise_input_grad_nchw(g: &Geometry, w: &[f32], dy: &[f32]) -> Vec<f32> {
    assert_eq!(
        g.in_channels, g.out_channels,
        "depthwise: in != out channels"
    );
    assert_eq!(w.len(), g.in_channels * g.taps(), "depthwise: w length");
    let mut dx = vec![0.0f32; g.batch * g.in_channels * g.in_len()];
    dx.par_chunks_mut(g.in_len())
        .enumerate()
        .for_each(|(plane_index, plane)| {
            let c = plane_index % g.in_channels;
            let grad = &dy[plane_index * g.out_len()..][..g.out_len()];
            for tap in 0..g.taps() {
                let weight = w[c * g.taps() + tap];
                for (out, first) in g.tap_rows(tap) {
                    add_scaled(&mut plane[first..], g.stride[1], &grad[out], weight);
                }
            }
        });
    dx
}

/// The bias gradient: `dy` summed over images and positions, per output channel.
pub fn bias_grad(g: &Geometry, dy: &[f32]) -> Vec<f32> {
    (0..g.out_channels)
        .into_par_iter()
        .map(|c| {
            (0..g.batch)
                .map(|n| {
                    let s = &dy[(n * g.out_channels + c) * g.out_len()..][..g.out_len()];
                    s.iter().sum::<f32>()
                })
                .sum()
        })
        .collect()
}

/// A dot product in eight independent lanes, so the compiler vectorises it (it may not reorder
/// one serial float sum).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let split = a.len() / 8 * 8;
    for (x, y) in a[..split].chunks_exact(8).zip(b[..split].chunks_exact(8)) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    let tail: f32 = a[split..].iter().zip(&b[split..]).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + tail
}

/// `dst[i * stride] += scale * src[i]`: one output row of a transposed (scatter) convolution.
fn add_scaled(dst: &mut [f32], stride: usize, src: &[f32], scale: f32) {
    if stride == 1 {
        for (d, s) in dst[..src.len()].iter_mut().zip(src) {
            *d += scale * *s;
        }
    } else {
        for (d, s) in dst.iter_mut().step_by(stride).zip(src) {
            *d += scale * *s;
        }
    }
}

/// `sum(a[i] * b[i * stride])`, vectorised for the unit stride.
fn strided_dot(a: &[f32], b: &[f32], stride: usize) -> f32 {
    if stride == 1 {
        dot(a, &b[..a.len()])
    } else {
        a.iter()
            .zip(b.iter().step_by(stride))
            .map(|(x, y)| x * y)
            .sum()
    }
}
