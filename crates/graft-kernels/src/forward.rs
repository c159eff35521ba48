//! The forward pass of a convolution on burn-flex. Depthwise and 1x1 layers go to their direct
//! kernels (`depthwise.rs`, `pointwise.rs`), stems (few input channels) to theirs (`stem.rs`),
//! 3x3 stride-1 ones to Winograd (`winograd.rs`) when the batch has enough tiles to pay for the
//! filter transform, else one im2col product per image
//! banded over output channels; the other dense (`groups == 1`) ones are im2col over a block of
//! output positions, then one matrix product `W [out, patch] x cols [patch, positions]` per block.
//!
//! burn-flex 0.22 converts the whole input to channels-last on one thread, multiplies per image
//! in tiles of at most 512 positions (ResNet's last stages have 196 and 49, where gemm runs at
//! half speed), and scatters each tile back to NCHW one element at a time. Here a block is
//! several small images (one long product, gemm's efficient shape) or a band of rows of a large
//! one (patches that stay in cache), and each output run is copied back to NCHW contiguously,
//! with the bias added on the way. `tests/conv2d.rs` holds it to burn's conv2d.

use burn_backend::ops::{ConvOptions, ModuleOps};
use burn_backend::{Shape, TensorMetadata};
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;
use std::ops::Range;
use std::sync::OnceLock;

use crate::epilogue::Epilogue;
use crate::flex::{contiguous, geometry_of, tensor, values};
use crate::grad::{self, Geometry};
use crate::scratch;

/// burn-flex's `conv2d` with graft's dense forward pass (f32, `groups == 1`); other convolutions
/// go to burn-flex unchanged (and ReLU, if asked for, follows in place).
pub(crate) fn conv2d(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    options: ConvOptions<2>,
    epilogue: Epilogue,
    prepared: Option<&Prepared>,
) -> FlexTensor {
    convolve(x, weight, bias, options, epilogue, false, prepared).0
}

/// What an inference-mode layer can keep of its weights between calls, derived on first use:
/// Winograd's transformed filters (4x the 3x3 weights), which otherwise are transformed again
/// on every call, and the weights laid out for the blocked kernels (`blocked.rs`). Only a
/// convolution that always runs with the same weights may be given one (the holder keeps it
/// with the weights it was derived from, as `graft-models`' `ConvBn` keeps its folded layer in
/// a [`crate::Memo`]).
#[derive(Debug, Default)]
pub struct Prepared {
    winograd: OnceLock<Vec<f32>>,
    blocked: OnceLock<crate::blocked_direct::Packed>,
    blocked_winograd: OnceLock<crate::blocked_winograd::Packed>,
    depthwise: OnceLock<(crate::depthwise::BlockedFilters, Vec<f32>)>,
    stem: OnceLock<crate::blocked_stem::Packed>,
}

impl Prepared {
    /// A dense layer's weights laid out for the blocked kernels, made by `make` on first use.
    pub(crate) fn blocked(
        &self,
        make: impl FnOnce() -> crate::blocked_direct::Packed,
    ) -> &crate::blocked_direct::Packed {
        self.blocked.get_or_init(make)
    }

    /// A 3x3 layer's transformed weights laid out for the blocked Winograd kernel, made by
    /// `make` on first use.
    pub(crate) fn blocked_winograd(
        &self,
        make: impl FnOnce() -> crate::blocked_winograd::Packed,
    ) -> &crate::blocked_winograd::Packed {
        self.blocked_winograd.get_or_init(make)
    }

    /// A stem's weights laid out for the blocked stem kernel, made by `make` on first use.
    pub(crate) fn stem(
        &self,
        make: impl FnOnce() -> crate::blocked_stem::Packed,
    ) -> &crate::blocked_stem::Packed {
        self.stem.get_or_init(make)
    }

    /// A depthwise layer's filters laid out for the blocked kernels and its bias padded to
    /// whole blocks, made by `make` on first use.
    pub(crate) fn depthwise(
        &self,
        make: impl FnOnce() -> (crate::depthwise::BlockedFilters, Vec<f32>),
    ) -> (&crate::depthwise::BlockedFilters, &[f32]) {
        let (w, b) = self.depthwise.get_or_init(make);
        (w, b)
    }
}

/// As [`conv2d`] (with the bias, no epilogue) for a training forward pass: a Winograd
/// convolution also returns its transformed input when `keep` is set, for the weight gradient
/// (see [`crate::winograd::conv2d`]).
pub(crate) fn conv2d_keeping(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    options: ConvOptions<2>,
    keep: bool,
) -> (FlexTensor, Option<Vec<f32>>) {
    convolve(x, weight, bias, options, Epilogue::Bias, keep, None)
}

fn convolve(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    options: ConvOptions<2>,
    epilogue: Epilogue,
    keep: bool,
    prepared: Option<&Prepared>,
) -> (FlexTensor, Option<Vec<f32>>) {
    let g = geometry_of(&x.shape(), &weight.shape(), &options);
    let depthwise = crate::flex::is_depthwise(&g, &options);
    if (options.groups != 1 && !depthwise) || x.dtype() != burn::tensor::DType::F32 {
        let y = <Flex as ModuleOps<Flex>>::conv2d(x, weight, bias, options);
        return (crate::activation::epilogue_primitive(y, epilogue), None);
    }
    let (mut x, weight) = (contiguous(x), contiguous(weight));
    let bias = bias.map(contiguous);
    if depthwise && !keep {
        let (ws, b) = (values(&weight), bias.as_ref().map(values));
        let isa = crate::Isa::detect();
        // A depthwise input nobody else holds takes its own output (see `forward_in_place`).
        if let Some(xs) = x.try_storage_mut::<f32>()
            && crate::depthwise::forward_in_place(&g, xs, ws, b, epilogue, isa)
        {
            return (x, None);
        }
    }
    let (xs, ws, b) = (values(&x), values(&weight), bias.as_ref().map(values));
    let isa = crate::Isa::detect();
    let (y, kept) = if depthwise {
        (
            crate::depthwise::forward(&g, xs, ws, b, epilogue, isa),
            None,
        )
    } else if crate::stem::applies(&g) && !(keep && crate::winograd::applies(&g)) {
        (crate::stem::forward(&g, xs, ws, b, epilogue, isa), None)
    } else if g.is_pointwise() {
        (
            crate::pointwise::forward(&g, xs, ws, b, epilogue, isa),
            None,
        )
    } else if per_image(&g) {
        (per_image_products(&g, xs, ws, b, epilogue, isa), None)
    } else if crate::winograd::applies(&g) {
        let (k_len, c_len) = (g.out_channels, g.in_channels);
        let u = prepared
            .map(|p| {
                p.winograd
                    .get_or_init(|| crate::winograd::transformed(ws, k_len, c_len))
                    .as_slice()
            })
            .filter(|u| crate::winograd::fits(u, k_len, c_len));
        let w = crate::winograd::Filters::Plain(ws);
        crate::winograd::conv2d(&g, xs, w, u, b, epilogue, keep)
    } else {
        (dense(&g, xs, ws, b, epilogue, isa), None)
    };
    // An inference layer's input is garbage now: its buffer takes a later layer's output.
    crate::outputs::recycle(x);
    let shape = Shape::new([g.batch, g.out_channels, g.out_size[0], g.out_size[1]]);
    (tensor(y, shape), kept)
}

/// Winograd's filter transform (4x the weights, written and read back) costs as much as a few
/// tiles' products save; below this many tiles in the batch (ResNet's 7x7 maps at batch 1-3:
/// 4 tiles an image) each image's im2col product is faster (layer4 of ResNet-18 at batch 1:
/// 1.7 ms against 6.2, `examples/conv_forward.rs 1`). The 14x14 maps at batch 1 have 16 tiles,
/// whose per-position products are 16 columns wide, `gemm`'s narrowest micro-kernel: im2col was
/// faster for them too (whole pass at batch 1, `bench/ab.sh`: ResNet-18 0.935, ResNet-50 0.901;
/// 64 instead of 17, which also sends the 28x28 maps' 49 tiles to im2col, changed nothing).
const WINOGRAD_MIN_TILES: usize = 17;

/// Output positions an image needs for [`per_image_products`] to multiply it alone: a product
/// this wide runs gemm at full speed, and the images then run on separate threads with no
/// gathering of outputs (ResNet's 7x7/2 stem at batch 32: 208 ms -> see BENCHMARKS.md).
/// Narrower maps are gathered several images to a product by [`dense`].
const BY_IMAGE_MIN_LEN: usize = 784;

/// Whether `g` goes to [`per_image_products`]: a 3x3 layer with too few tiles for Winograd, or
/// a large enough map of any other dense layer (a stem, a strided 3x3 or 1x1).
fn per_image(g: &Geometry) -> bool {
    if crate::winograd::applies(g) {
        crate::winograd::tiles(g) < WINOGRAD_MIN_TILES
    } else {
        g.out_len() >= BY_IMAGE_MIN_LEN
    }
}

/// Each image on its own task: its patches a band of output rows at a time (kept under
/// [`BAND_BUDGET`]), each band multiplied straight into the image's NCHW planes, with the bias
/// and activation applied while the band is in cache ([`crate::pointwise::product`]). An
/// image's values do not depend on the rest of the batch.
fn per_image_products(
    g: &Geometry,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    epilogue: Epilogue,
    isa: crate::Isa,
) -> Vec<f32> {
    let (image_len, patch, ow_len) = (g.out_channels * g.out_len(), g.patch_len(), g.out_size[1]);
    let mut out = crate::outputs::take(g.batch * image_len);
    let bands = row_bands(g);
    out.par_chunks_mut(image_len.max(1))
        .enumerate()
        .for_each(|(n, image)| {
            for rows in &bands {
                let mut cols = scratch::take(patch * rows.len() * ow_len);
                grad::im2col(g, x, n..n + 1, rows.clone(), &mut cols);
                let dst = &mut image[rows.start * ow_len..];
                crate::pointwise::product(dst, g.out_len(), w, &cols, patch, bias, epilogue, isa);
                scratch::keep(cols);
            }
        });
    out
}

/// A band of one image's output rows is sized so that its patch matrix stays under this many
/// floats (4 MiB, within the shared cache), so the product reads it from cache...
const BAND_BUDGET: usize = 1 << 20;
/// ...but small maps (ResNet's last stages: 14x14, 7x7) are multiplied several images at a time,
/// for at least this many columns (gemm runs at half speed on 49 or 196), up to
const MIN_WIDTH: usize = 2048;
/// this many floats of patches (32 MiB).
const CHUNK_BUDGET: usize = 8 << 20;

/// One image's output rows in bands whose patches fit [`BAND_BUDGET`] (at least [`MIN_WIDTH`]
/// columns, so that a deep layer's long patches still make a product gemm runs well).
fn row_bands(g: &Geometry) -> Vec<Range<usize>> {
    let [oh_len, ow_len] = g.out_size;
    let row_len = (g.patch_len() * ow_len).max(1);
    let band = (BAND_BUDGET / row_len)
        .max(MIN_WIDTH.div_ceil(ow_len.max(1)))
        .min(CHUNK_BUDGET / row_len)
        .max(1);
    (0..oh_len)
        .step_by(band)
        .map(|r| r..(r + band).min(oh_len))
        .collect()
}

/// Which output positions each matrix product of [`dense`] covers, as (images, output rows):
/// several whole images when one image's patches fit in [`BAND_BUDGET`], else bands of rows of
/// one image.
fn blocks(g: &Geometry) -> Vec<(Range<usize>, Range<usize>)> {
    let oh_len = g.out_size[0];
    let per_image = g.patch_len() * g.out_len();
    if per_image <= BAND_BUDGET {
        let wanted = MIN_WIDTH.div_ceil(g.out_len().max(1));
        let chunk = wanted
            .min(CHUNK_BUDGET / per_image.max(1))
            .clamp(1, g.batch.max(1));
        let starts = (0..g.batch).step_by(chunk);
        return starts
            .map(|s| (s..(s + chunk).min(g.batch), 0..oh_len))
            .collect();
    }
    let bands = row_bands(g);
    (0..g.batch)
        .flat_map(|n| bands.iter().map(move |rows| (n..n + 1, rows.clone())))
        .collect()
}

/// Small maps: the patches of several images side by side, one product over them all (bands
/// of output channels over the threads, into a reused buffer), then each image's runs copied
/// home.
fn dense(
    g: &Geometry,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    epilogue: Epilogue,
    isa: crate::Isa,
) -> Vec<f32> {
    let image_len = g.out_channels * g.out_len();
    let ow_len = g.out_size[1];
    let mut out = crate::outputs::take(g.batch * image_len);
    for (images, rows) in blocks(g) {
        let band = rows.len() * ow_len;
        let width = images.len() * band;
        let mut cols = scratch::take(g.patch_len() * width);
        grad::im2col(g, x, images.clone(), rows.clone(), &mut cols);
        let mut y = scratch::take(g.out_channels * width);
        let patch = g.patch_len();
        crate::pointwise::product(&mut y, width, w, &cols, patch, bias, epilogue, isa);
        let dst = &mut out[images.start * image_len..images.end * image_len];
        // y is [out, images * band]; each (image, channel) run of positions goes home.
        dst.par_chunks_mut(g.out_len().max(1))
            .enumerate()
            .for_each(|(run, plane)| {
                let (n, c) = (run / g.out_channels, run % g.out_channels);
                let src = &y[c * width + n * band..][..band];
                plane[rows.start * ow_len..][..band].copy_from_slice(src);
            });
        scratch::keep(cols);
        scratch::keep(y);
    }
    out
}
