//! Small building blocks shared by the architectures: a convolution followed by BatchNorm (folded
//! into the convolution on the inference device), global average pooling.

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::MaxPool2d;
use burn::nn::{BatchNorm, BatchNormConfig, Linear, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::ops::ConvOptions;
use graft_kernels::blocked::Blocked;
use graft_kernels::{Epilogue, Memo, Prepared, Source};
use std::sync::Arc;

/// A bias-free convolution and its BatchNorm; the activation is left to the caller because the
/// architectures differ in it (ReLU, ReLU6, none before a residual add).
#[derive(Module, Debug)]
pub struct ConvBn {
    pub conv: Conv2d,
    pub bn: BatchNorm,
    /// [`ConvBn::folded`] and what the kernel derives from its weights, kept while the
    /// weights and statistics are the same tensors.
    #[module(skip)]
    pub fold: Memo<Folded>,
}

/// An inference-mode [`ConvBn`] as one convolution, with what graft-kernels keeps of its
/// weights between calls (Winograd's transformed filters).
#[derive(Clone, Debug)]
pub struct Folded {
    pub conv: Conv2d,
    pub prepared: Arc<Prepared>,
}

/// How a [`ConvBn`] is shaped; `groups == channels` makes it depthwise.
#[derive(Clone, Debug)]
pub struct ConvBnSpec {
    pub channels: [usize; 2],
    pub kernel: usize,
    pub stride: usize,
    pub groups: usize,
    pub padding: PaddingConfig2d,
    pub bn_eps: f64,
}

impl ConvBnSpec {
    /// PyTorch-style symmetric padding `k / 2`, the torchvision convention.
    pub fn torch(channels: [usize; 2], kernel: usize, stride: usize) -> Self {
        let p = kernel / 2;
        Self {
            channels,
            kernel,
            stride,
            groups: 1,
            padding: PaddingConfig2d::Explicit(p, p, p, p),
            bn_eps: 1e-5,
        }
    }

    pub fn init(&self, device: &Device) -> ConvBn {
        ConvBn {
            conv: Conv2dConfig::new(self.channels, [self.kernel, self.kernel])
                .with_stride([self.stride, self.stride])
                .with_groups(self.groups)
                .with_padding(self.padding.clone())
                .with_bias(false)
                .init(device),
            bn: BatchNormConfig::new(self.channels[1])
                .with_epsilon(self.bn_eps)
                .init(device),
            fold: Memo::default(),
        }
    }
}

impl ConvBn {
    /// Training (autodiff device): convolution then BatchNorm, which uses batch statistics when
    /// the layer trains. Inference: one convolution with BatchNorm folded into it, see
    /// [`ConvBn::folded`].
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if x.is_autodiff() {
            batch_norm(&self.bn, conv2d(&self.conv, x))
        } else {
            self.inference(x, Epilogue::Bias)
        }
    }

    /// `relu(self.forward(x))`; for inference the ReLU is applied as the convolution writes its
    /// output.
    pub fn forward_relu(&self, x: Tensor<4>) -> Tensor<4> {
        self.activated(x, Epilogue::BiasRelu, graft_kernels::relu)
    }

    /// `relu6(self.forward(x))`, MobileNet and EfficientNet-Lite's activation, fused the same
    /// way for inference.
    pub fn forward_relu6(&self, x: Tensor<4>) -> Tensor<4> {
        self.activated(x, Epilogue::BiasRelu6, graft_kernels::relu6)
    }

    /// Training: `activation(self.forward(x))` (BatchNorm on batch statistics comes between the
    /// two); inference: the folded convolution with the activation fused as `epilogue`.
    fn activated(
        &self,
        x: Tensor<4>,
        epilogue: Epilogue,
        activation: fn(Tensor<4>) -> Tensor<4>,
    ) -> Tensor<4> {
        if x.is_autodiff() {
            activation(self.forward(x))
        } else {
            self.inference(x, epilogue)
        }
    }

    /// The inference-mode layer (folded, `epilogue` fused) over activations held in blocks of
    /// 16 channels, with `skip` added to its output (a residual join); see
    /// [`graft_kernels::blocked`].
    pub fn forward_blocked(
        &self,
        x: &Blocked,
        epilogue: Epilogue,
        skip: Option<&Blocked>,
    ) -> Blocked {
        let l = self.blocked_layer(size_of(x), epilogue);
        graft_kernels::blocked::conv2d(x, l.weight, l.bias, l.options, epilogue, &l.prepared, skip)
    }

    /// The inference-mode layer (folded, `epilogue` fused) from planes into blocks of 16
    /// channels, for a network's stem (see [`graft_kernels::blocked::conv2d_from_planes`]);
    /// `x` back for any other layer or device.
    // The error is the caller's own tensor handed back (boxing it would allocate on every call).
    #[allow(clippy::result_large_err)]
    pub fn forward_into_blocks(
        &self,
        x: Tensor<4>,
        epilogue: Epilogue,
    ) -> Result<Blocked, Tensor<4>> {
        if x.is_autodiff() {
            return Err(x);
        }
        let Folded { conv, prepared } = self.folded_prepared();
        let options = options(&conv, &x);
        let bias = conv.bias.as_ref().map(|b| b.val());
        let weight = conv.weight.val();
        graft_kernels::blocked::conv2d_from_planes(x, weight, bias, options, epilogue, &prepared)
    }

    /// [`ConvBn::forward_blocked`] for an input nobody needs afterwards (a stride-1 depthwise
    /// layer writes over it).
    pub fn forward_blocked_owned(&self, x: Blocked, epilogue: Epilogue) -> Blocked {
        let l = self.blocked_layer(size_of(&x), epilogue);
        graft_kernels::blocked::conv2d_owned(x, l.weight, l.bias, l.options, epilogue, &l.prepared)
    }

    /// A 1x1 expansion (`self`) and the depthwise layer after it, `epilogue` fused into both,
    /// in one pass over bands of rows ([`graft_kernels::blocked::expand_depthwise`]) where
    /// that applies to `x`; `None` for the caller to run them one after the other.
    pub fn expand_depthwise_blocked(
        &self,
        depthwise: &ConvBn,
        x: &Blocked,
        epilogue: Epilogue,
    ) -> Option<Blocked> {
        // The cheap half of the kernel's own check first: most calls (other maps, batches of
        // several images) stop here without folding either layer again.
        if !graft_kernels::blocked::may_fuse(x.dims()) {
            return None;
        }
        let expand = self.blocked_layer(size_of(x), epilogue);
        let depthwise = depthwise.blocked_layer(size_of(x), epilogue);
        graft_kernels::blocked::expand_depthwise(x, &expand, &depthwise)
    }

    /// The folded layer with `epilogue`, as the blocked kernels take it: weight and bias, its
    /// options for a blocked input of map `[h, w]`, and what its kernels keep of its weights.
    fn blocked_layer(
        &self,
        [h, w]: [usize; 2],
        epilogue: Epilogue,
    ) -> graft_kernels::blocked::Layer {
        let Folded { conv, prepared } = self.folded_prepared();
        let pairs = padding_pairs(&conv.padding, conv.kernel_size, conv.stride, [h, w]);
        graft_kernels::blocked::Layer {
            weight: conv.weight.val(),
            bias: conv.bias.as_ref().map(|b| b.val()),
            options: ConvOptions::new_with_padding(conv.stride, pairs, conv.dilation, conv.groups),
            epilogue,
            prepared,
        }
    }

    /// The folded convolution with `epilogue`, its kernel keeping what it derives from the
    /// weights.
    fn inference(&self, x: Tensor<4>, epilogue: Epilogue) -> Tensor<4> {
        let Folded { conv, prepared } = self.folded_prepared();
        let options = options(&conv, &x);
        let bias = conv.bias.as_ref().map(|b| b.val());
        graft_kernels::conv2d_prepared(x, conv.weight.val(), bias, options, epilogue, &prepared)
    }

    /// The inference-mode layer as one convolution: BatchNorm on running statistics is the
    /// per-channel affine map `y = s x + (beta - s mean)` with `s = gamma / sqrt(var + eps)`,
    /// so it scales the convolution's output channels (its weights) and adds a bias. Saves a
    /// pass over every activation.
    pub fn folded(&self) -> Conv2d {
        self.folded_prepared().conv
    }

    /// [`ConvBn::folded`] with its kernel's kept values, derived again when a weight or
    /// statistic is replaced.
    pub fn folded_prepared(&self) -> Folded {
        let bn = &self.bn;
        let mut sources = vec![
            Source::of(self.conv.weight.val()),
            Source::of(bn.gamma.val()),
            Source::of(bn.beta.val()),
            Source::of(bn.running_mean.value()),
            Source::of(bn.running_var.value()),
        ];
        sources.extend(self.conv.bias.as_ref().map(|b| Source::of(b.val())));
        self.fold.get(sources, || Folded {
            conv: self.fold_now(),
            prepared: Arc::default(),
        })
    }

    fn fold_now(&self) -> Conv2d {
        let bn = &self.bn;
        let scale = bn.gamma.val() / (bn.running_var.value() + bn.epsilon).sqrt();
        let mut bias = bn.beta.val() - bn.running_mean.value() * scale.clone();
        let [out, ..] = self.conv.weight.dims();
        let weight = self.conv.weight.val() * scale.clone().reshape([out, 1, 1, 1]);
        if let Some(b) = &self.conv.bias {
            bias = bias + b.val() * scale;
        }
        Conv2d {
            weight: Param::from_tensor(weight),
            bias: Some(Param::from_tensor(bias)),
            ..self.conv.clone()
        }
    }
}

/// `linear.forward(x)`, a few rows of an inference pass through graft's matrix-vector kernel
/// (see [`graft_kernels::linear`]).
pub fn linear(linear: &Linear, x: Tensor<2>) -> Tensor<2> {
    let bias = linear.bias.as_ref().map(|b| b.val());
    graft_kernels::linear::linear(x, linear.weight.val(), bias)
}

/// [`conv2d_relu`] for a layer whose weights stay the same from call to call: an inference pass
/// keeps what its kernel derives from the weights in `kept` (Winograd's transformed filters,
/// about a tenth of VGG-16's batch-1 pass when made on every call) while the weight and bias
/// are the same tensors. On the autodiff device it is [`conv2d_relu`].
pub fn conv2d_relu_kept(conv: &Conv2d, kept: &Memo<Arc<Prepared>>, x: Tensor<4>) -> Tensor<4> {
    if x.is_autodiff() {
        return conv2d_relu(conv, x);
    }
    let (weight, bias) = (conv.weight.val(), conv.bias.as_ref().map(|b| b.val()));
    let mut sources = vec![Source::of(weight.clone())];
    sources.extend(bias.clone().map(Source::of));
    let prepared = kept.get(sources, Arc::default);
    let options = options(conv, &x);
    graft_kernels::conv2d_prepared(x, weight, bias, options, Epilogue::BiasRelu, &prepared)
}

/// `conv.forward(x)` through [`graft_kernels::conv2d`]: the same forward pass, and on the
/// autodiff CPU device graft's faster backward pass (see graft-kernels).
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    apply(graft_kernels::conv2d, conv, x)
}

/// `relu(conv.forward(x))` through [`graft_kernels::conv2d_relu`] (ReLU fused into the
/// inference kernel's output).
pub fn conv2d_relu(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    apply(graft_kernels::conv2d_relu, conv, x)
}

type ConvFn = fn(Tensor<4>, Tensor<4>, Option<Tensor<1>>, ConvOptions<2>) -> Tensor<4>;

/// Calls a graft-kernels convolution with `conv`'s weights and the options its padding gives.
fn apply(kernel: ConvFn, conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let options = options(conv, &x);
    let bias = conv.bias.as_ref().map(|b| b.val());
    kernel(x, conv.weight.val(), bias, options)
}

/// The options `conv`'s padding gives for the input `x`.
fn options(conv: &Conv2d, x: &Tensor<4>) -> ConvOptions<2> {
    let [_, _, h, w] = x.dims();
    let pairs = padding_pairs(&conv.padding, conv.kernel_size, conv.stride, [h, w]);
    ConvOptions::new_with_padding(conv.stride, pairs, conv.dilation, conv.groups)
}

/// `pool.forward(x)` through graft-kernels' max pool (burn-flex computes the argmax indices of
/// every window, and its training pool and backward scatter are slow; see graft-kernels).
pub fn max_pool2d(pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    if pool.dilation != [1, 1] || pool.ceil_mode {
        return pool.forward(x);
    }
    let [_, _, h, w] = x.dims();
    let pairs = padding_pairs(&pool.padding, pool.kernel_size, pool.stride, [h, w]);
    graft_kernels::max_pool2d(x, pool.kernel_size, pool.stride, pairs)
}

/// Groups `range` of a network whose inference pass keeps its activations in blocks of 16
/// channels from the stem's output to the end of the range. `stem` runs group 0 (when in the
/// range) into blocks or, off the inference device, gives back its output in planes; then each
/// group runs by `blocked` or, in planes, by `planes`. The caller converts at the end
/// ([`Activations`]).
pub fn forward_groups_blocked(
    range: std::ops::Range<usize>,
    x: Tensor<4>,
    stem: impl FnOnce(Tensor<4>) -> Result<Blocked, Tensor<4>>,
    blocked: impl Fn(usize, Blocked) -> Blocked,
    planes: impl Fn(usize, Tensor<4>) -> Tensor<4>,
) -> Activations {
    let mut groups = range;
    if groups.is_empty() {
        return Activations::Planes(x);
    }
    let x = if groups.start == 0 {
        groups.start = 1;
        stem(x)
    } else {
        Blocked::from_tensor(x)
    };
    match x {
        Ok(x) => Activations::Blocked(groups.fold(x, |x, g| blocked(g, x))),
        Err(x) => Activations::Planes(groups.fold(x, |x, g| planes(g, x))),
    }
}

/// A pass's activations where [`forward_groups_blocked`] left them: in blocks of 16 channels
/// (an inference pass on the CPU) or in planes.
pub enum Activations {
    Blocked(Blocked),
    Planes(Tensor<4>),
}

impl Activations {
    /// `[batch, channels, h, w]`.
    pub fn into_tensor(self) -> Tensor<4> {
        match self {
            Self::Blocked(x) => x.into_tensor(),
            Self::Planes(x) => x,
        }
    }

    /// [`global_avg_pool`], from the blocks where they are.
    pub fn global_avg_pool(self) -> Tensor<2> {
        match self {
            Self::Blocked(x) => x.global_avg_pool(),
            Self::Planes(x) => global_avg_pool(x),
        }
    }
}

/// [`max_pool2d`] over activations in blocks of 16 channels; `None` for a pool the blocked
/// kernel does not cover (dilated, ceil mode).
pub fn max_pool2d_blocked(pool: &MaxPool2d, x: &Blocked) -> Option<Blocked> {
    if pool.dilation != [1, 1] || pool.ceil_mode {
        return None;
    }
    let [_, _, h, w] = x.dims();
    let pairs = padding_pairs(&pool.padding, pool.kernel_size, pool.stride, [h, w]);
    Some(x.max_pool2d(pool.kernel_size, pool.stride, pairs))
}

/// `(begin, end)` padding per axis, as burn's layers compute it for a `[h, w]` input.
pub fn padding_pairs(
    padding: &PaddingConfig2d,
    kernel: [usize; 2],
    stride: [usize; 2],
    size: [usize; 2],
) -> [(usize, usize); 2] {
    match padding {
        PaddingConfig2d::Valid => [(0, 0); 2],
        PaddingConfig2d::Same => [0, 1].map(|a| same_padding(kernel[a], stride[a], size[a])),
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(*top, *bottom), (*left, *right)],
    }
}

/// `bn.forward(x)`. A layer that trains on the CPU autodiff device gets graft's fused
/// batch-statistics kernel (see graft-kernels), and its running statistics are updated exactly as
/// burn's `BatchNorm` does (`running = (1 - momentum) running + momentum batch`, biased
/// variance).
pub fn batch_norm(bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    if !(x.device().is_autodiff() && bn.training.is_enabled()) {
        return bn.forward(x);
    }
    let device = x.device();
    let batch = graft_kernels::batch_norm_train(x, bn.gamma.val(), bn.beta.val(), bn.epsilon);
    let m = bn.momentum;
    let blend = |running: Tensor<1>, now: Tensor<1>| {
        let running = running.to_device(&device).mul_scalar(1.0 - m);
        running.add(now.mul_scalar(m)).detach()
    };
    bn.running_mean
        .update(blend(bn.running_mean.value_sync(), batch.mean));
    bn.running_var
        .update(blend(bn.running_var.value_sync(), batch.variance));
    batch.output
}

/// burn's "same" padding (private in burn-nn): the output is `ceil(size / stride)`, the odd pixel
/// of padding at the end.
fn same_padding(kernel: usize, stride: usize, size: usize) -> (usize, usize) {
    let out = size.div_ceil(stride);
    let total = (out.saturating_sub(1) * stride + kernel).saturating_sub(size);
    (total / 2, total - total / 2)
}

/// Global average pooling to `[batch, channels]` (see [`graft_kernels::global_avg_pool`]).
pub fn global_avg_pool(x: Tensor<4>) -> Tensor<2> {
    graft_kernels::global_avg_pool(x)
}

/// A blocked activation's map, `[h, w]`.
fn size_of(x: &Blocked) -> [usize; 2] {
    let [_, _, h, w] = x.dims();
    [h, w]
}
