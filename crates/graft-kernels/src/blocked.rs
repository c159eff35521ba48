//! Activations in blocks of 16 channels, `[image][block][pixel][16]` (ONNX Runtime's NCHWc,
//! XNNPACK's channels-last in blocks), carried through a run of inference layers that have
//! kernels for it: a stem (`blocked_stem.rs`, from planes), dense convolutions up to 3x3 at
//! any stride (`blocked_direct.rs`; 1x1 ones through `blocked_pointwise.rs`; 3x3 stride-1 ones
//! on enough tiles by Winograd, `blocked_winograd.rs`), depthwise ones
//! (`interleaved.rs`) and max pooling. EfficientNet and ResNet are exactly these, so their
//! inference passes run from the stem to the last group without converting activations to
//! planes and back: one conversion, at the end. Other layers (a 5x5 dense convolution, a
//! grouped one) go through planes and graft's NCHW kernels.
//!
//! Channel counts that are not a multiple of 16 are padded with channels that stay zero (their
//! weights and bias are zero).

use burn::prelude::*;
use burn::tensor::DType;
use burn_backend::ops::ConvOptions;
use burn_flex::Flex;
use rayon::prelude::*;

use crate::activation::join_slice;
use crate::blocked_direct::Packed;
use crate::epilogue::Epilogue;
use crate::flex::{contiguous, is_depthwise, tensor, values};
use crate::forward::Prepared;
use crate::grad::Geometry;
use crate::isa::Isa;
pub use crate::outputs::Lines;

/// Channels a block holds: one AVX-512 vector.
pub const LANES: usize = 16;

/// Blocks that hold `channels` channels.
pub fn blocks(channels: usize) -> usize {
    channels.div_ceil(LANES)
}

/// A layer's bias over whole blocks of its `cout` output channels: zero where there is none
/// and in the padded channels, which then stay zero.
pub(crate) fn padded_bias(bias: Option<&[f32]>, cout: usize) -> Vec<f32> {
    let mut padded = vec![0.0; blocks(cout) * LANES];
    if let Some(b) = bias {
        padded[..cout].copy_from_slice(&b[..cout]);
    }
    padded
}

/// A batch of activations `[batch, channels, h, w]` held in blocks of 16 channels.
#[derive(Debug)]
pub struct Blocked {
    data: Lines,
    batch: usize,
    channels: usize,
    size: [usize; 2],
}

impl Blocked {
    /// `x` in blocks, or `x` back when it is not a plain f32 tensor of the CPU inference
    /// device (an autodiff tensor keeps its graph; other backends have their own kernels).
    // The error is the caller's own tensor handed back (boxing it would allocate on every call).
    #[allow(clippy::result_large_err)]
    pub fn from_tensor(x: Tensor<4>) -> Result<Blocked, Tensor<4>> {
        if x.dtype() != DType::F32 || x.is_autodiff() {
            return Err(x);
        }
        let [batch, channels, h, w] = x.dims();
        match x.clone().try_into_primitive::<Flex>() {
            Ok(p) => {
                drop(x);
                let p = contiguous(p);
                let data = to_blocks(values(&p), batch, channels, h * w);
                crate::outputs::recycle(p);
                Ok(Blocked {
                    data,
                    batch,
                    channels,
                    size: [h, w],
                })
            }
            Err(_) => Err(x),
        }
    }

    /// Back to a `[batch, channels, h, w]` tensor.
    pub fn into_tensor(self) -> Tensor<4> {
        self.to_tensor()
    }

    /// A `[batch, channels, h, w]` tensor of the same values.
    pub fn to_tensor(&self) -> Tensor<4> {
        let [h, w] = self.size;
        let planes = from_blocks(&self.data, self.batch, self.channels, h * w);
        let shape = burn_backend::Shape::from([self.batch, self.channels, h, w]);
        Tensor::from_primitive::<Flex>(tensor(planes, shape))
    }

    pub fn dims(&self) -> [usize; 4] {
        [self.batch, self.channels, self.size[0], self.size[1]]
    }

    /// Global average pooling, `[batch, channels]`, from the blocks: the same values as
    /// [`crate::global_avg_pool`] of [`Blocked::to_tensor`] (each channel's pixels summed in
    /// order, then divided by their count), without the conversion to planes, which took
    /// about 1% of a Lite0 batch-1 pass (its 1280-channel 7x7 output, 36 µs).
    pub fn global_avg_pool(&self) -> Tensor<2> {
        let (c, pixels) = (self.channels, self.pixels());
        let image = blocks(c) * pixels * LANES;
        let mut out = vec![0.0f32; self.batch * c];
        out.par_chunks_mut(c.max(1))
            .zip(self.data.par_chunks(image.max(1)))
            .for_each(|(means, image)| {
                for (b, block) in image.chunks_exact((pixels * LANES).max(1)).enumerate() {
                    let mut sums = [0.0f32; LANES];
                    for px in block.chunks_exact(LANES) {
                        sums.iter_mut().zip(px).for_each(|(s, v)| *s += v);
                    }
                    for (m, s) in means.iter_mut().skip(b * LANES).zip(sums) {
                        *m = s / pixels as f32;
                    }
                }
            });
        let shape = burn_backend::Shape::from([self.batch, c]);
        Tensor::from_primitive::<Flex>(tensor(out, shape))
    }

    fn pixels(&self) -> usize {
        self.size[0] * self.size[1]
    }

    /// Convolution `g`'s output, `data` in blocks.
    fn output_of(g: &Geometry, data: Lines) -> Blocked {
        Blocked {
            data,
            batch: g.batch,
            channels: g.out_channels,
            size: g.out_size,
        }
    }
}

/// `epilogue(conv2d(x, weight, bias, options)) (+ skip)` in blocks, for a layer whose weights
/// stay the same from call to call (what is derived from them is kept in `prepared`): 1x1
/// stride-1 convolutions and depthwise ones with their own kernels; any other convolution
/// through planes and graft's NCHW kernels. `skip`, a residual added after the epilogue, must
/// have the output's shape.
///
/// Panics if the shapes disagree (a caller's error, as for burn's `conv2d`).
pub fn conv2d(
    x: &Blocked,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
    epilogue: Epilogue,
    prepared: &Prepared,
    skip: Option<&Blocked>,
) -> Blocked {
    let g = geometry(x.dims(), &weight, &options);
    let isa = Isa::detect();
    let dense = options.groups == 1;
    if dense && crate::blocked_winograd::worth(&g) {
        let packed = prepared.blocked_winograd(|| {
            let b = bias.clone().map(floats);
            let w = floats(weight.clone());
            crate::blocked_winograd::Packed::new(&w, b.as_deref(), g.out_channels, g.in_channels)
        });
        let skip = skip.map(|s| &s.data[..]);
        let y = crate::blocked_winograd::forward(&g, &x.data, packed, epilogue, skip, isa);
        return Blocked::output_of(&g, y);
    }
    if dense && (g.is_pointwise() || crate::blocked_direct::applies(&g)) {
        let packed = dense_packed(&g, &weight, &bias, prepared);
        let skip = skip.map(|s| &s.data[..]);
        let y = match strided_pointwise(&g) {
            // A strided 1x1 layer (ResNet's shortcuts) reads every other pixel: gathered once,
            // they run as a 1x1 layer, whose tiles read their pixels as one run.
            Some(one) => {
                let gathered = gather(x, &g);
                crate::blocked_direct::forward(&one, &gathered, packed, epilogue, skip, isa)
            }
            None => crate::blocked_direct::forward(&g, &x.data, packed, epilogue, skip, isa),
        };
        return Blocked::output_of(&g, y);
    }
    // The other kernels apply the epilogue themselves: with a skip, after joining it.
    let own = if skip.is_some() {
        Epilogue::Bias
    } else {
        epilogue
    };
    let mut y = if is_depthwise(&g, &options) {
        let (w, b) = depthwise_filters(&g, &weight, &bias, prepared);
        let y = crate::depthwise::forward_blocked(&padded(&g), &x.data, w, Some(b), own, isa);
        Blocked::output_of(&g, y)
    } else {
        let t = x.to_tensor();
        let y = crate::conv2d_prepared(t, weight, bias, options, own, prepared);
        match Blocked::from_tensor(y) {
            Ok(y) => y,
            Err(_) => panic!("blocked conv2d: the NCHW kernel left the inference device"),
        }
    };
    if let Some(s) = skip {
        join_slice(&mut y.data, &s.data, epilogue);
    }
    y
}

/// The stride-1 1x1 layer over the pixels a strided, unpadded 1x1 layer `g` reads; `None`
/// for any other layer.
fn strided_pointwise(g: &Geometry) -> Option<Geometry> {
    let strided = g.kernel == [1, 1] && g.padding == [0, 0] && g.stride != [1, 1];
    (strided && g.dilation == [1, 1]).then_some(Geometry {
        in_size: g.out_size,
        stride: [1, 1],
        ..*g
    })
}

/// The input pixels a strided 1x1 layer `g` reads, blocked as its output is laid out.
fn gather(x: &Blocked, g: &Geometry) -> Lines {
    let ([oh, ow], w) = (g.out_size, g.in_size[1]);
    let (plane_in, plane_out) = (x.pixels() * LANES, oh * ow * LANES);
    let mut out = Lines::take(x.data.len() / plane_in.max(1) * plane_out);
    out.par_chunks_mut(plane_out.max(1))
        .zip(x.data.par_chunks(plane_in.max(1)))
        .for_each(|(dst, src)| {
            for (p, px) in dst.chunks_exact_mut(LANES).enumerate() {
                let (y, x) = (p / ow * g.stride[0], p % ow * g.stride[1]);
                px.copy_from_slice(&src[(y * w + x) * LANES..][..LANES]);
            }
        });
    out
}

impl Blocked {
    /// Max pooling (no dilation, floor mode) in blocks, `padding` as `(begin, end)` per axis:
    /// ResNet's 3x3/2 after its stem, which otherwise would convert to planes and back. NaN
    /// wins, as in PyTorch (and `pool.rs`).
    pub fn max_pool2d(
        &self,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [(usize, usize); 2],
    ) -> Blocked {
        let g = Geometry::new(self.dims(), self.channels, kernel, stride, padding, [1, 1]);
        let (plane_in, plane_out) = (self.pixels() * LANES, g.out_len() * LANES);
        let mut out = Lines::take(blocks(g.out_channels) * g.batch * plane_out);
        let isa = Isa::detect();
        out.par_chunks_mut(plane_out.max(1))
            .zip(self.data.par_chunks(plane_in.max(1)))
            .for_each(|(dst, src)| isa.dispatch(PoolPlane { g: &g, src, dst }));
        Blocked::output_of(&g, out)
    }
}

/// [`pool_plane`] as a [`pulp::WithSimd`] op, so that it is compiled for the CPU's vectors: a
/// closure handed to [`Isa::run`] was compiled on its own, as SSE code (see [`Isa::run`]).
struct PoolPlane<'a> {
    g: &'a Geometry,
    src: &'a [f32],
    dst: &'a mut [f32],
}

impl pulp::WithSimd for PoolPlane<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        pool_plane(self.g, self.src, self.dst)
    }
}

/// One block's plane of [`Blocked::max_pool2d`]: each output pixel's 16 lanes, the maximum of
/// the window's pixels inside the input, NaN winning.
#[inline(always)]
fn pool_plane(g: &Geometry, src: &[f32], dst: &mut [f32]) {
    let ([h, w], ow) = (g.in_size, g.out_size[1].max(1));
    // The taps of output position `o` along `axis` that fall inside the input, as the first
    // input index and how many (the window less what lies in the padding).
    let window = |axis: usize, o: usize, len: usize| {
        let start = o * g.stride[axis];
        let first = start.max(g.padding[axis]);
        let end = (start + g.kernel[axis]).min(len + g.padding[axis]);
        (first - g.padding[axis], end.saturating_sub(first))
    };
    for (p, px) in dst.chunks_exact_mut(LANES).enumerate() {
        let ((iy, rows), (ix, cols)) = (window(0, p / ow, h), window(1, p % ow, w));
        let mut m = [f32::NEG_INFINITY; LANES];
        for y in iy..iy + rows {
            for v in src[(y * w + ix) * LANES..][..cols * LANES].chunks_exact(LANES) {
                for (m, &v) in m.iter_mut().zip(v) {
                    *m = if v > *m || v.is_nan() { v } else { *m };
                }
            }
        }
        px.copy_from_slice(&m);
    }
}

/// `epilogue(conv2d(x, weight, bias, options))` from planes straight into blocks, for a
/// network's stem (a dense convolution with a few input channels, `blocked_stem.rs`); `x`
/// back, untouched, for any other layer or a tensor [`Blocked::from_tensor`] would not take.
// The error is the caller's own tensor handed back (boxing it would allocate on every call).
#[allow(clippy::result_large_err)]
pub fn conv2d_from_planes(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
    epilogue: Epilogue,
    prepared: &Prepared,
) -> Result<Blocked, Tensor<4>> {
    let g = geometry(x.dims(), &weight, &options);
    let plain = x.dtype() == DType::F32 && !x.is_autodiff() && options.groups == 1;
    if !plain || !crate::blocked_stem::applies(&g) {
        return Err(x);
    }
    let p = match x.clone().try_into_primitive::<Flex>() {
        Ok(p) => contiguous(p),
        Err(_) => return Err(x),
    };
    drop(x);
    let packed = prepared.stem(|| {
        let b = bias.map(floats);
        crate::blocked_stem::Packed::new(&g, &floats(weight), b.as_deref())
    });
    let y = crate::blocked_stem::forward(&g, values(&p), packed, epilogue, Isa::detect());
    crate::outputs::recycle(p);
    Ok(Blocked::output_of(&g, y))
}

/// As [`conv2d`] (without a skip), for an input nobody needs afterwards: a stride-1 depthwise
/// layer writes its output over it.
pub fn conv2d_owned(
    mut x: Blocked,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
    epilogue: Epilogue,
    prepared: &Prepared,
) -> Blocked {
    let g = geometry(x.dims(), &weight, &options);
    if is_depthwise(&g, &options) {
        let (w, b) = depthwise_filters(&g, &weight, &bias, prepared);
        let isa = Isa::detect();
        if crate::depthwise::forward_blocked_in_place(
            &padded(&g),
            &mut x.data,
            w,
            Some(b),
            epilogue,
            isa,
        ) {
            return x;
        }
    }
    conv2d(&x, weight, bias, options, epilogue, prepared, None)
}

/// A convolution as [`conv2d`] takes it: folded weight and bias, options, epilogue, and what
/// is kept of its weights.
pub struct Layer {
    pub weight: Tensor<4>,
    pub bias: Option<Tensor<1>>,
    pub options: ConvOptions<2>,
    pub epilogue: Epilogue,
    pub prepared: std::sync::Arc<Prepared>,
}

/// Whether [`expand_depthwise`] may take a pair on input `dims` (`[batch, channels, h, w]`):
/// its checks that need no weights.
pub fn may_fuse(dims: [usize; 4]) -> bool {
    crate::blocked_fused::may_apply(dims[0], dims[3])
}

/// A 1x1 expansion then a depthwise layer, `depthwise(expand(x))`, run together in bands of
/// rows (`blocked_fused.rs`) where that applies: fewer images than workers (batch 1), on a
/// wide map. `None` elsewhere, for the caller to run the two layers one after the other; the
/// values are the same either way.
pub fn expand_depthwise(x: &Blocked, expand: &Layer, depthwise: &Layer) -> Option<Blocked> {
    let ge = geometry(x.dims(), &expand.weight, &expand.options);
    let pointwise = expand.options.groups == 1 && ge.is_pointwise();
    let dims = [ge.batch, ge.out_channels, ge.out_size[0], ge.out_size[1]];
    let gd = geometry(dims, &depthwise.weight, &depthwise.options);
    let padded = padded(&gd);
    let applies = pointwise
        && is_depthwise(&gd, &depthwise.options)
        && crate::blocked_fused::applies(&padded);
    if !applies {
        return None;
    }
    let packed = dense_packed(&ge, &expand.weight, &expand.bias, &expand.prepared);
    let (filters, bias) =
        depthwise_filters(&gd, &depthwise.weight, &depthwise.bias, &depthwise.prepared);
    let dw = crate::blocked_fused::Depthwise {
        g: &padded,
        filters,
        bias,
        epilogue: depthwise.epilogue,
    };
    let y = crate::blocked_fused::forward(&ge, &x.data, packed, expand.epilogue, dw, Isa::detect());
    Some(Blocked::output_of(&gd, y))
}

/// The geometry of convolving a `[batch, channels, h, w]` input with `weight`.
fn geometry(x: [usize; 4], weight: &Tensor<4>, options: &ConvOptions<2>) -> Geometry {
    crate::flex::geometry_of(
        &burn_backend::Shape::from(x),
        &burn_backend::Shape::from(weight.dims()),
        options,
    )
}

/// The geometry with its channels rounded up to whole blocks.
fn padded(g: &Geometry) -> Geometry {
    let c = blocks(g.out_channels) * LANES;
    Geometry {
        in_channels: c,
        out_channels: c,
        ..*g
    }
}

/// A dense layer's weights laid out for the blocked direct and 1x1 kernels, made on first use
/// (the same for [`conv2d`] and [`expand_depthwise`], which share `prepared`).
fn dense_packed<'a>(
    g: &Geometry,
    weight: &Tensor<4>,
    bias: &Option<Tensor<1>>,
    prepared: &'a Prepared,
) -> &'a Packed {
    prepared.blocked(|| {
        let b = bias.clone().map(floats);
        let w = floats(weight.clone());
        Packed::new(&w, b.as_deref(), g.out_channels, g.in_channels, g.taps())
    })
}

/// Depthwise filters laid out for the blocked kernels and bias zero-padded to whole blocks, made
/// on first use.
fn depthwise_filters<'a>(
    g: &Geometry,
    weight: &Tensor<4>,
    bias: &Option<Tensor<1>>,
    prepared: &'a Prepared,
) -> (&'a crate::depthwise::BlockedFilters, &'a [f32]) {
    prepared.depthwise(|| {
        let w = floats(weight.clone());
        let w = crate::depthwise::BlockedFilters::new(&w, g.out_channels, g.taps());
        let mut b = bias.clone().map(floats).unwrap_or_default();
        b.resize(blocks(g.out_channels) * LANES, 0.0);
        (w, b)
    })
}

/// A weight tensor's values (f32: the only dtype [`Blocked::from_tensor`] lets through).
fn floats<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    match t.into_data().convert::<f32>().try_to_vec::<f32>() {
        Ok(v) => v,
        Err(e) => panic!("blocked conv2d: weights as f32: {e:?}"),
    }
}

/// NCHW `[batch, c, pixels]` to blocks `[batch, blocks(c), pixels, 16]`, zeros in padded lanes.
pub fn to_blocks(x: &[f32], batch: usize, c: usize, pixels: usize) -> Lines {
    let kb = blocks(c);
    let mut out = Lines::take(batch * kb * pixels * LANES);
    out.par_chunks_mut((pixels * LANES).max(1))
        .enumerate()
        .for_each(|(i, blk)| {
            let (n, b) = (i / kb, i % kb);
            let lanes = LANES.min(c - b * LANES);
            let plane = |l: usize| &x[(n * c + b * LANES + l) * pixels..][..pixels];
            // Pixel by pixel: 16 sequential reads and one sequential write. Lane by lane (one
            // strided write per plane) touched every line of the block 16 times: 24 ms of a
            // 350 ms Lite0 batch for the stem's output alone.
            let planes: Vec<&[f32]> = (0..lanes).map(plane).collect();
            for (p, px) in blk.chunks_exact_mut(LANES).enumerate() {
                let (real, padded) = px.split_at_mut(lanes);
                for (v, plane) in real.iter_mut().zip(&planes) {
                    *v = plane[p];
                }
                padded.fill(0.0);
            }
        });
    out
}

/// Blocks `[batch, blocks(c), pixels, 16]` back to NCHW `[batch, c, pixels]`.
pub fn from_blocks(x: &[f32], batch: usize, c: usize, pixels: usize) -> Vec<f32> {
    let kb = blocks(c);
    let mut out = crate::outputs::take(batch * c * pixels);
    out.par_chunks_mut(pixels.max(1))
        .enumerate()
        .for_each(|(i, plane)| {
            let (n, ch) = (i / c, i % c);
            let blk = &x[(n * kb + ch / LANES) * pixels * LANES..][..pixels * LANES];
            for (v, px) in plane.iter_mut().zip(blk.chunks_exact(LANES)) {
                *v = px[ch % LANES];
            }
        });
    out
}
