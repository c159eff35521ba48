//! `conv2d` as a burn autodiff op over burn-flex. The forward pass is graft's
//! ([`crate::forward`]: Winograd F(4x4, 3x3) for 3x3 stride-1 dense convolutions, im2col and
//! gemm for the other dense ones; [`crate::depthwise`] and [`crate::pointwise`] for depthwise and 1x1), the backward pass
//! [`crate::grad`] and [`crate::winograd`]. `tests/conv2d.rs` holds values and gradients to
//! burn's to 1e-4.

use burn::tensor::module::conv2d as burn_conv2d;
use burn::tensor::{DType, Tensor};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, NodeGuard, Ops, OpsKind};
use burn_autodiff::{Autodiff, NodeId};
use burn_backend::ops::{ConvOptions, FloatTensorOps};
use burn_backend::{Shape, TensorMetadata};
use burn_flex::{Flex, FlexTensor};

use crate::forward::Prepared;
use rayon::prelude::*;
use std::sync::Arc;

use crate::epilogue::Epilogue;
use crate::flex::{contiguous, geometry_of, tensor, values};
use crate::grad::{self, Geometry};
use crate::matmul::{Mat, matmul_into};
use crate::scratch;

type Ad = Autodiff<Flex>;

/// The im2col matrix of one chunk of images is kept under this many floats (32 MiB): large
/// enough for long, efficient matrix products, small enough not to double a step's memory.
pub(crate) const COLS_BUDGET: usize = 8 << 20;

/// burn's `conv2d`; on the burn-flex autodiff device, dense (`groups == 1`) and depthwise
/// convolutions get graft's backward pass. Everything else goes to burn unchanged.
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    if x.dtype() != DType::F32 || !supported(&weight.dims(), &options) {
        return burn_conv2d(x, weight, bias, options);
    }
    if !x.is_autodiff() {
        return inference(x, weight, bias, options, Epilogue::Bias, None);
    }
    let primitives = (
        x.clone().try_into_primitive::<Ad>(),
        weight.clone().try_into_primitive::<Ad>(),
        bias.clone()
            .map(|b| b.try_into_primitive::<Ad>())
            .transpose(),
    );
    // Only a trainable weight's gradient reads the forward pass's transformed input.
    let keep = weight.is_require_grad();
    match primitives {
        (Ok(x), Ok(weight), Ok(bias)) => {
            Tensor::from_primitive::<Ad>(forward(x, weight, bias, options, keep))
        }
        // Another autodiff backend (a GPU build) or checkpointing strategy: burn's own op.
        _ => burn_conv2d(x, weight, bias, options),
    }
}

/// `relu(conv2d(x, weight, bias, options))`; for inference on burn-flex the ReLU is applied as
/// the convolution writes its output (no pass of its own).
pub fn conv2d_relu(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    fused(x, weight, bias, options, Epilogue::BiasRelu, None)
}

/// `relu6(conv2d(x, weight, bias, options))` (MobileNet and EfficientNet-Lite's convolution +
/// activation), fused the same way.
pub fn conv2d_relu6(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    fused(x, weight, bias, options, Epilogue::BiasRelu6, None)
}

/// A convolution and its activation: fused into graft's inference kernel when it applies (with
/// what `prepared` keeps of the weights, if given), else the convolution followed by the
/// activation op (which has its own backward pass).
fn fused(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
    epilogue: Epilogue,
    prepared: Option<&Prepared>,
) -> Tensor<4> {
    if x.dtype() != DType::F32 || !supported(&weight.dims(), &options) || x.is_autodiff() {
        return activate(conv2d(x, weight, bias, options), epilogue);
    }
    inference(x, weight, bias, options, epilogue, prepared)
}

/// `epilogue(conv2d(x, weight, bias, options))` for a layer whose weights stay the same from
/// call to call, keeping in `prepared` what can be derived from them once (see [`Prepared`]);
/// on the autodiff device it is [`conv2d`] and the activation, and `prepared` is not used.
pub fn conv2d_prepared(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
    epilogue: Epilogue,
    prepared: &Prepared,
) -> Tensor<4> {
    fused(x, weight, bias, options, epilogue, Some(prepared))
}

/// `epilogue`'s activation as its own op, after a convolution that did not fuse it.
fn activate(y: Tensor<4>, epilogue: Epilogue) -> Tensor<4> {
    match epilogue {
        Epilogue::Bias => y,
        Epilogue::BiasRelu => crate::relu(y),
        Epilogue::BiasRelu6 => crate::relu6(y),
    }
}

/// The forward pass alone, on the plain burn-flex device (graft's dense kernel; see
/// [`crate::forward`]); any other device gets burn's op.
fn inference(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
    epilogue: Epilogue,
    prepared: Option<&Prepared>,
) -> Tensor<4> {
    let primitives = (
        x.clone().try_into_primitive::<Flex>(),
        weight.clone().try_into_primitive::<Flex>(),
        bias.clone()
            .map(|b| b.try_into_primitive::<Flex>())
            .transpose(),
    );
    match primitives {
        (Ok(xp), Ok(w), Ok(b)) => {
            // Only the primitive holds the input now, so the kernel may recycle its buffer.
            drop((x, weight, bias));
            let y = crate::forward::conv2d(xp, w, b, options, epilogue, prepared);
            Tensor::from_primitive::<Flex>(y)
        }
        _ => activate(burn_conv2d(x, weight, bias, options), epilogue),
    }
}

/// Dense, or depthwise with one filter per channel.
fn supported(weight: &[usize; 4], options: &ConvOptions<2>) -> bool {
    let [out, per_group, ..] = *weight;
    options.groups == 1 || (per_group == 1 && out == options.groups)
}

type AdTensor = burn_backend::tensor::FloatTensor<Ad>;

fn forward(
    x: AdTensor,
    weight: AdTensor,
    bias: Option<AdTensor>,
    options: ConvOptions<2>,
    keep: bool,
) -> AdTensor {
    match bias {
        None => {
            let guards = [x.node(), weight.node()];
            record(ConvNoBias, guards, x, weight, None, options, keep)
        }
        Some(bias) => {
            let guards = [x.node(), weight.node(), bias.node()];
            let bias = Some(bias.into_primitive());
            record(ConvWithBias, guards, x, weight, bias, options, keep)
        }
    }
}

/// Runs the forward convolution and records `op` (keeping x and the weight for its backward
/// pass, and with `keep` a Winograd convolution's transformed input) when any input is tracked.
/// `guards` are the inputs' nodes, taken before their primitives are moved out.
fn record<O: Backward<Flex, N, State = State>, const N: usize>(
    op: O,
    guards: [NodeGuard; N],
    x: AdTensor,
    weight: AdTensor,
    bias: Option<FlexTensor>,
    options: ConvOptions<2>,
    keep: bool,
) -> AdTensor {
    let run = |x: AdTensor, w: AdTensor, o: ConvOptions<2>, keep: bool| {
        let (x, w) = (x.into_primitive(), w.into_primitive());
        crate::forward::conv2d_keeping(x, w, bias, o, keep)
    };
    match op
        .prepare::<NoCheckpointing>(guards)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let (x_id, w_id) = (prep.checkpoint(&x), prep.checkpoint(&weight));
            let (y, kept) = run(x, weight, options.clone(), keep);
            let kept = kept.map(|v| Transformed(Arc::new(v)));
            prep.finish((x_id, w_id, options, kept), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(run(x, weight, options, false).0),
    }
}

/// A Winograd convolution's transformed input, kept from the forward pass for the weight
/// gradient (shared, as burn clones an op's state).
#[derive(Clone)]
struct Transformed(Arc<Vec<f32>>);

impl std::fmt::Debug for Transformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Transformed({} floats)", self.0.len())
    }
}

#[derive(Debug)]
struct ConvNoBias;
#[derive(Debug)]
struct ConvWithBias;

type State = (NodeId, NodeId, ConvOptions<2>, Option<Transformed>);

impl Backward<Flex, 2> for ConvNoBias {
    type State = State;

    fn backward(self, ops: Ops<State, 2>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [x, w] = ops.parents.map(|p| p.map(|node| node.id));
        let dy = grads.consume::<Flex>(&ops.node);
        backward(ops.state, dy, [x, w, None], grads, checkpointer);
    }
}

impl Backward<Flex, 3> for ConvWithBias {
    type State = State;

    fn backward(self, ops: Ops<State, 3>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let parents = ops.parents.map(|p| p.map(|node| node.id));
        let dy = grads.consume::<Flex>(&ops.node);
        backward(ops.state, dy, parents, grads, checkpointer);
    }
}

/// The backward pass of both ops: `parents` are the node ids of x, the weight and the bias,
/// `None` where that input is untracked (or absent) and needs no gradient.
fn backward(
    (x, w, options, kept): State,
    dy: FlexTensor,
    parents: [Option<NodeId>; 3],
    grads: &mut Gradients,
    checkpointer: &mut Checkpointer,
) {
    let x = checkpointer.retrieve_node_output::<FlexTensor>(x);
    let w = checkpointer.retrieve_node_output::<FlexTensor>(w);
    let [want_x, want_w, want_bias] = parents.map(|p| p.is_some());
    let wanted = Wanted {
        x: want_x,
        w: want_w,
        bias: want_bias,
    };
    let kept = kept.as_ref().map(|k| k.0.as_slice());
    let computed = gradients(x, w, dy, &options, wanted, kept);
    for (id, g) in parents
        .into_iter()
        .zip([computed.x, computed.w, computed.bias])
    {
        if let (Some(id), Some(g)) = (id, g) {
            grads.register::<Flex>(id, g);
        }
    }
}

/// Which gradients the graph asks for (an untracked input, such as the image or a cached frozen
/// activation, needs none).
#[derive(Clone, Copy)]
struct Wanted {
    x: bool,
    w: bool,
    bias: bool,
}

struct Computed {
    x: Option<FlexTensor>,
    w: Option<FlexTensor>,
    bias: Option<FlexTensor>,
}

fn gradients(
    x: FlexTensor,
    w: FlexTensor,
    dy: FlexTensor,
    options: &ConvOptions<2>,
    wanted: Wanted,
    kept: Option<&[f32]>,
) -> Computed {
    let (x, w, dy) = (contiguous(x), contiguous(w), contiguous(dy));
    let g = geometry_of(&x.shape(), &w.shape(), options);
    debug_assert_eq!(g.out_size, [dy.shape()[2], dy.shape()[3]]);
    let bias = wanted.bias.then(|| {
        tensor(
            grad::bias_grad(&g, values(&dy)),
            Shape::new([g.out_channels]),
        )
    });
    let (dx, dw) = if options.groups == 1 {
        dense(&g, &x, &w, &dy, options, wanted, kept)
    } else {
        depthwise(&g, &x, &w, &dy, wanted)
    };
    Computed { x: dx, w: dw, bias }
}

/// Feature maps up to this many positions take the channels-last depthwise kernels (short rows,
/// many channels); larger ones the NCHW kernels, which need no layout change. Measured on
/// EfficientNet-Lite0: channels-last is 2-5x faster at 7x7 and 14x14, slower from 28x28 up.
const CHANNELS_LAST_MAX_POSITIONS: usize = 16 * 16;

/// Depthwise gradients (see [`grad::depthwise_weight_grad`]).
fn depthwise(
    g: &Geometry,
    x: &FlexTensor,
    w: &FlexTensor,
    dy: &FlexTensor,
    wanted: Wanted,
) -> (Option<FlexTensor>, Option<FlexTensor>) {
    let [kh, kw] = g.kernel;
    if g.in_len() > CHANNELS_LAST_MAX_POSITIONS {
        let (xs, dys) = (values(x), values(dy));
        let dx = wanted.x.then(|| {
            tensor(
                grad::depthwise_input_grad_nchw(g, values(w), dys),
                x.shape(),
            )
        });
        let dw = wanted
            .w
            .then(|| tensor(grad::depthwise_weight_grad_nchw(g, xs, dys), w.shape()));
        return (dx, dw);
    }
    let nhwc = |t: &FlexTensor| contiguous(t.permute(&[0, 2, 3, 1]));
    let dy = nhwc(dy);
    let dx = wanted.x.then(|| {
        let taps = contiguous(
            w.reshape(Shape::new([g.in_channels, kh * kw]))
                .transpose(0, 1),
        );
        let dx = grad::depthwise_input_grad(g, values(&taps), values(&dy));
        let shape = Shape::new([g.batch, g.in_size[0], g.in_size[1], g.in_channels]);
        contiguous(tensor(dx, shape).permute(&[0, 3, 1, 2]))
    });
    let dw = wanted.w.then(|| {
        let dw = grad::depthwise_weight_grad(g, values(&nhwc(x)), values(&dy));
        let dw = tensor(dw, Shape::new([kh * kw, g.in_channels])).transpose(0, 1);
        contiguous(dw).reshape(w.shape())
    });
    (dx, dw)
}

/// Dense convolution gradients.
///
/// Weight: for 3x3 stride-1 convolutions, Winograd's transforms run backwards
/// ([`crate::winograd::weight_grad`]); for 1x1 stride-1 ones a product per image over the NCHW
/// planes ([`pointwise_weight_grad`]); otherwise `dW = dY x im2row(x)` ([`weight_grad_rows`]),
/// with `dY` as `[out, positions]` and the patches as `[positions, (kh, kw, in)]` rows (both
/// row-major, gemm's fast layout).
///
/// Input: for stride 1 it is a forward convolution of `dY` with the flipped, transposed kernel
/// (graft's forward kernels); otherwise `col2im(W^T x dY)`.
fn dense(
    g: &Geometry,
    x: &FlexTensor,
    w: &FlexTensor,
    dy: &FlexTensor,
    options: &ConvOptions<2>,
    wanted: Wanted,
    kept: Option<&[f32]>,
) -> (Option<FlexTensor>, Option<FlexTensor>) {
    let dw = wanted.w.then(|| {
        if crate::winograd::applies(g) {
            let dw = crate::winograd::weight_grad(g, values(x), values(dy), kept);
            tensor(dw, w.shape())
        } else if g.is_pointwise() {
            pointwise_weight_grad(g, values(x), values(dy))
        } else {
            let x_nhwc = contiguous(x.permute(&[0, 2, 3, 1]));
            weight_grad_rows(g, values(&x_nhwc), values(dy))
        }
    });
    let dx = wanted.x.then(|| input_grad(g, x, w, dy, options));
    (dx, dw)
}

/// The input gradient of a dense convolution (see [`dense`]).
fn input_grad(
    g: &Geometry,
    x: &FlexTensor,
    w: &FlexTensor,
    dy: &FlexTensor,
    options: &ConvOptions<2>,
) -> FlexTensor {
    if let Some(padding) = flipped_padding(g, options) {
        let o = ConvOptions::new_with_padding([1, 1], padding, options.dilation, 1);
        let [kh, kw] = g.kernel;
        let kernel_shape = Shape::new([g.in_channels, g.out_channels, kh, kw]);
        let gd = geometry_of(&dy.shape(), &kernel_shape, &o);
        if crate::winograd::applies(&gd) {
            // Winograd reads the kernel flipped and transposed where it lies.
            let filters = crate::winograd::Filters::FlippedTransposed(values(w));
            let (dx, _) = crate::winograd::conv2d(
                &gd,
                values(dy),
                filters,
                None,
                None,
                Epilogue::Bias,
                false,
            );
            return tensor(dx, x.shape());
        }
        let kernel = Flex::float_swap_dims(Flex::float_flip(w.clone(), &[2, 3]), 0, 1);
        return crate::forward::conv2d(dy.clone(), kernel, None, o, Epilogue::Bias, None);
    }
    // Strided: dx = col2im(W^T x dY), a chunk of images at a time. The product runs by bands
    // of input channels in parallel (one single-threaded product each, into reused buffers),
    // each band adding its rows into its own channels' planes.
    let (k_len, c_len, taps) = (g.out_channels, g.in_channels, g.taps());
    let mut dx = vec![0.0f32; x.shape().num_elements()];
    let per_image = (g.patch_len() * g.out_len()).max(1);
    let chunk = (COLS_BUDGET / per_image).clamp(1, g.batch.max(1));
    let bands = (2 * rayon::current_num_threads()).clamp(1, c_len.max(1));
    let per_band = c_len.div_ceil(bands).max(1);
    let (ws, dys) = (values(w), values(dy));
    let image_len = c_len * g.in_len();
    for start in (0..g.batch).step_by(chunk) {
        let images = start..(start + chunk).min(g.batch);
        let width = images.len() * g.out_len();
        let mut dy_c = scratch::take(k_len * width);
        grad::channels_major(g, dys, images.clone(), &mut dy_c);
        let dx_c = &mut dx[images.start * image_len..images.end * image_len];
        let mut by_band: Vec<Vec<(usize, usize, &mut [f32])>> =
            (0..c_len.div_ceil(per_band)).map(|_| Vec::new()).collect();
        for (index, plane) in dx_c.chunks_mut(g.in_len().max(1)).enumerate() {
            let (n, c) = (index / c_len, index % c_len);
            by_band[c / per_band].push((n, c, plane));
        }
        let dy_m = Mat::rows(&dy_c, k_len, width);
        by_band
            .into_par_iter()
            .enumerate()
            .for_each(|(band, planes)| {
                let first = band * per_band;
                let rows = per_band.min(c_len - first) * taps;
                // Rows (c, tap) of W^T: column c * taps + tap of W as [out, patch].
                let lhs = Mat {
                    data: &ws[first * taps..],
                    rows,
                    cols: k_len,
                    row_stride: 1,
                    col_stride: g.patch_len(),
                };
                let mut cols = scratch::take(rows * width);
                matmul_into(&mut cols, width, lhs, dy_m, false);
                for (n, c, plane) in planes {
                    let cols_c = &cols[(c - first) * taps * width..][..taps * width];
                    grad::col2im_plane(g, cols_c, n, plane);
                }
                scratch::keep(cols);
            });
        scratch::keep(dy_c);
    }
    tensor(dx, x.shape())
}

/// `dW = sum over images of dY_n x X_n^T` for a 1x1, stride-1, unpadded convolution, as
/// `[out, in, 1, 1]`: each image's `[out, positions]` and `[in, positions]` planes are read where
/// they lie (gemm packs the transposed operand as it packs any other). Copying the input
/// channels-last first, as [`weight_grad_rows`] needs, was a full pass over every 1x1 layer's
/// input; with the output gradient's copy, 3% of an EfficientNet-Lite0 training step. Images
/// are split evenly across threads, each summing its own in order.
fn pointwise_weight_grad(g: &Geometry, xs: &[f32], dys: &[f32]) -> FlexTensor {
    let (k_len, c_len, len) = (g.out_channels, g.in_channels, g.out_len());
    let per_thread = g.batch.div_ceil(rayon::current_num_threads().max(1));
    let dw = grad::sum_over_images(g.batch, per_thread, k_len * c_len, |images, part| {
        for (i, n) in images.enumerate() {
            let dy = Mat::rows(&dys[n * k_len * len..][..k_len * len], k_len, len);
            let x = Mat::rows(&xs[n * c_len * len..][..c_len * len], c_len, len);
            matmul_into(part, c_len, dy, x.t(), i > 0);
        }
    });
    tensor(dw, Shape::new([k_len, c_len, 1, 1]))
}

/// `dW = dY x im2row(x)` (`x` channels-last), as `[out, in, kh, kw]`. Chunks of images run in
/// parallel, each product on one thread: the product's output is small (`out x patch`) and its
/// inner dimension long (positions), which gemm does not split across threads.
fn weight_grad_rows(g: &Geometry, x_nhwc: &[f32], dys: &[f32]) -> FlexTensor {
    let (k_len, patch) = (g.out_channels, g.patch_len());
    let per_image = (patch * g.out_len()).max(1);
    // At least one chunk per thread (small maps would otherwise be one chunk on one thread).
    let per_thread = g.batch.div_ceil(rayon::current_num_threads().max(1));
    let chunk = (COLS_BUDGET / 2 / per_image).clamp(1, per_thread.max(1));
    let dw = grad::sum_over_images(g.batch, chunk, k_len * patch, |images, part| {
        let width = images.len() * g.out_len();
        let mut dy_c = scratch::take(k_len * width);
        grad::channels_major(g, dys, images.clone(), &mut dy_c);
        let lhs = Mat::rows(&dy_c, k_len, width);
        let mut rows = scratch::take(width * patch);
        grad::im2row(g, x_nhwc, images, &mut rows);
        matmul_into(part, patch, lhs, Mat::rows(&rows, width, patch), false);
        scratch::keep(rows);
        scratch::keep(dy_c);
    });
    // dw's columns are (kh, kw, in); the weight is [out, in, kh, kw].
    let [kh, kw] = g.kernel;
    let t = tensor(dw, Shape::new([k_len, kh, kw, g.in_channels]));
    contiguous(t.permute(&[0, 3, 1, 2]))
}

/// Padding that makes the input gradient of a stride-1 convolution a forward convolution of the
/// output gradient with the flipped kernel: `(k - 1) * dilation - padding` on each side (none
/// when the forward padding exceeds the kernel's reach, which no architecture here uses).
fn flipped_padding(g: &Geometry, options: &ConvOptions<2>) -> Option<[(usize, usize); 2]> {
    if options.stride != [1, 1] {
        return None;
    }
    let mut out = [(0, 0); 2];
    for (axis, pair) in out.iter_mut().enumerate() {
        let reach = (g.kernel[axis] - 1) * options.dilation[axis];
        let (begin, end) = options.padding[axis];
        *pair = (reach.checked_sub(begin)?, reach.checked_sub(end)?);
    }
    Some(out)
}
