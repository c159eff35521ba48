//! Small building blocks shared by the architectures: a convolution followed by BatchNorm.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::prelude::*;

/// A bias-free convolution and its BatchNorm; the activation is left to the caller because the
/// architectures differ in it (ReLU, ReLU6, none before a residual add).
#[derive(Module, Debug)]
pub struct ConvBn {
    pub conv: Conv2d,
    pub bn: BatchNorm,
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
        }
    }
}

impl ConvBn {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.bn.forward(self.conv.forward(x))
    }
}

/// Global average pooling to `[batch, channels]`.
pub fn global_avg_pool(x: Tensor<4>) -> Tensor<2> {
    let [b, c, _, _] = x.dims();
    x.mean_dim(3).mean_dim(2).reshape([b, c])
}
