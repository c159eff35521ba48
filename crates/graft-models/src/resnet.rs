//! ResNet-18 and ResNet-50.
//!
//! Paper: He et al., "Deep Residual Learning for Image Recognition" (CVPR 2016). Reference
//! implementation and key names: torchvision `models/resnet.py` (v1.5: the bottleneck's stride
//! sits on its 3x3 conv).

/// The widest activation of a forward pass from the image, in multiples of the image's size:
/// the stem, 64 channels at half resolution (and ResNet-50's 256 at a quarter): 64 / (3 * 4), rounded up (CPU inference runs the batch in chunks sized by it; see `network::micro_batch`).
pub const WIDEST_ACTIVATION: usize = 6;

use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use graft_kernels::blocked::Blocked;
use graft_kernels::{Epilogue, add_relu};
use std::ops::Range;

use crate::layers::{
    Activations, ConvBn, ConvBnSpec, forward_groups_blocked, global_avg_pool, max_pool2d,
    max_pool2d_blocked,
};
use graft_weights::KeyMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// Two 3x3 convs (ResNet-18/34).
    Basic,
    /// 1x1 -> 3x3 -> 1x1 with 4x expansion (ResNet-50/101/152).
    Bottleneck,
}

impl BlockKind {
    fn expansion(self) -> usize {
        match self {
            Self::Basic => 1,
            Self::Bottleneck => 4,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ResNetConfig {
    pub block: BlockKind,
    pub layers: [usize; 4],
    /// Stem width and the base width of each of the four layers (64 and 64..512 in torchvision).
    pub stem: usize,
    pub widths: [usize; 4],
    pub num_classes: usize,
}

impl ResNetConfig {
    pub fn resnet18() -> Self {
        Self {
            block: BlockKind::Basic,
            layers: [2, 2, 2, 2],
            stem: 64,
            widths: [64, 128, 256, 512],
            num_classes: 1000,
        }
    }

    pub fn resnet50() -> Self {
        Self {
            block: BlockKind::Bottleneck,
            layers: [3, 4, 6, 3],
            ..Self::resnet18()
        }
    }

    pub fn with_num_classes(mut self, n: usize) -> Self {
        self.num_classes = n;
        self
    }

    pub fn init(&self, device: &Device) -> ResNet {
        let mut cin = self.stem;
        let mut layers = Vec::new();
        for (i, (&n, &width)) in self.layers.iter().zip(&self.widths).enumerate() {
            let stride = if i == 0 { 1 } else { 2 };
            let blocks = (0..n)
                .map(|j| {
                    let b = residual_block(
                        self.block,
                        cin,
                        width,
                        if j == 0 { stride } else { 1 },
                        device,
                    );
                    cin = width * self.block.expansion();
                    b
                })
                .collect();
            layers.push(ResLayer { blocks });
        }
        ResNet {
            stem: ConvBnSpec::torch([3, self.stem], 7, 2).init(device),
            pool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            layers,
            fc: LinearConfig::new(cin, self.num_classes).init(device),
        }
    }

    /// torchvision names -> this module's names (`layer3.1.bn2` -> `layers.2.blocks.1.conv2.bn`).
    pub fn key_map(&self) -> KeyMap {
        let mut pairs = vec![
            (r"^conv1\.".to_string(), "stem.conv.".to_string()),
            (r"^bn1\.".to_string(), "stem.bn.".to_string()),
        ];
        for k in 1..=4 {
            let to = format!("layers.{}.blocks.$1", k - 1);
            pairs.push((
                format!(r"^layer{k}\.(\d+)\.conv(\d)\."),
                format!("{to}.conv$2.conv."),
            ));
            pairs.push((
                format!(r"^layer{k}\.(\d+)\.bn(\d)\."),
                format!("{to}.conv$2.bn."),
            ));
            pairs.push((
                format!(r"^layer{k}\.(\d+)\.downsample\.0\."),
                format!("{to}.downsample.conv."),
            ));
            pairs.push((
                format!(r"^layer{k}\.(\d+)\.downsample\.1\."),
                format!("{to}.downsample.bn."),
            ));
        }
        KeyMap::from_pairs(pairs)
    }
}

fn residual_block(
    kind: BlockKind,
    cin: usize,
    width: usize,
    stride: usize,
    d: &Device,
) -> ResBlock {
    let cout = width * kind.expansion();
    let downsample =
        (stride != 1 || cin != cout).then(|| ConvBnSpec::torch([cin, cout], 1, stride).init(d));
    match kind {
        BlockKind::Basic => ResBlock {
            conv1: ConvBnSpec::torch([cin, width], 3, stride).init(d),
            conv2: ConvBnSpec::torch([width, width], 3, 1).init(d),
            conv3: None,
            downsample,
        },
        BlockKind::Bottleneck => ResBlock {
            conv1: ConvBnSpec::torch([cin, width], 1, 1).init(d),
            conv2: ConvBnSpec::torch([width, width], 3, stride).init(d),
            conv3: Some(ConvBnSpec::torch([width, cout], 1, 1).init(d)),
            downsample,
        },
    }
}

pub(crate) fn group_names(layers: usize) -> Vec<String> {
    std::iter::once("stem".to_string())
        .chain((1..=layers).map(|i| format!("layer{i}")))
        .collect()
}

#[derive(Module, Debug)]
pub struct ResBlock {
    pub conv1: ConvBn,
    pub conv2: ConvBn,
    /// Present in bottleneck blocks only.
    pub conv3: Option<ConvBn>,
    pub downsample: Option<ConvBn>,
}

impl ResBlock {
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let x = self.conv1.forward_relu(input.clone());
        let x = match &self.conv3 {
            Some(conv3) => conv3.forward(self.conv2.forward_relu(x)),
            None => self.conv2.forward(x),
        };
        let shortcut = match &self.downsample {
            Some(d) => d.forward(input),
            None => input,
        };
        add_relu(x, shortcut)
    }

    /// [`ResBlock::forward`] for inference over activations in blocks of 16 channels: the
    /// shortcut joins as the last convolution writes its output, before the ReLU.
    pub fn forward_blocked(&self, input: Blocked) -> Blocked {
        let relu = Epilogue::BiasRelu;
        let x = self.conv1.forward_blocked(&input, relu, None);
        let (x, last) = match &self.conv3 {
            Some(conv3) => (self.conv2.forward_blocked(&x, relu, None), conv3),
            None => (x, &self.conv2),
        };
        let shortcut = self
            .downsample
            .as_ref()
            .map(|d| d.forward_blocked(&input, Epilogue::Bias, None));
        last.forward_blocked(&x, relu, Some(shortcut.as_ref().unwrap_or(&input)))
    }
}

#[derive(Module, Debug)]
pub struct ResLayer {
    pub blocks: Vec<ResBlock>,
}

#[derive(Module, Debug)]
pub struct ResNet {
    pub stem: ConvBn,
    pub pool: MaxPool2d,
    pub layers: Vec<ResLayer>,
    pub fc: Linear,
}

impl ResNet {
    /// Backbone groups: `stem` (conv, bn, relu, max-pool) and `layer1..layer4`.
    pub fn group_names(&self) -> Vec<String> {
        group_names(self.layers.len())
    }

    pub fn forward_group(&self, g: usize, x: Tensor<4>) -> Tensor<4> {
        self.forward_groups(g..g + 1, x)
    }

    /// Runs groups `range` in order. An inference pass keeps the activations in blocks of 16
    /// channels from the stem's output to the end of the range, converting only there.
    pub fn forward_groups(&self, range: Range<usize>, x: Tensor<4>) -> Tensor<4> {
        self.activations(range, x).into_tensor()
    }

    /// [`Self::embed`] of [`Self::forward_groups`] (`range` ending at the last group), pooled
    /// from the blocks an inference pass keeps.
    pub fn embed_groups(&self, range: Range<usize>, x: Tensor<4>) -> Tensor<2> {
        self.activations(range, x).global_avg_pool()
    }

    // The stem's error is its own output in planes (boxing it would allocate on every call).
    #[allow(clippy::result_large_err)]
    fn activations(&self, range: Range<usize>, x: Tensor<4>) -> Activations {
        // The stem writes its output in blocks (or, off the inference device, planes).
        let stem = |x| match self.stem.forward_into_blocks(x, Epilogue::BiasRelu) {
            Ok(x) => match max_pool2d_blocked(&self.pool, &x) {
                Some(y) => Ok(y),
                None => Blocked::from_tensor(max_pool2d(&self.pool, x.into_tensor())),
            },
            Err(x) => Blocked::from_tensor(max_pool2d(&self.pool, self.stem.forward_relu(x))),
        };
        let blocked = |g, x| self.blocks(g).iter().fold(x, |x, b| b.forward_blocked(x));
        let planes = |g, x| self.blocks(g).iter().fold(x, |x, b| b.forward(x));
        forward_groups_blocked(range, x, stem, blocked, planes)
    }

    /// The residual blocks of layer `g` (1-based, as its group index).
    fn blocks(&self, g: usize) -> &[ResBlock] {
        &self.layers[g - 1].blocks
    }

    pub fn group_num_params(&self, g: usize) -> usize {
        match g {
            0 => self.stem.num_params(),
            _ => self.layers[g - 1].num_params(),
        }
    }

    pub fn embed(&self, x: Tensor<4>) -> Tensor<2> {
        global_avg_pool(x)
    }

    pub fn classify(&self, e: Tensor<2>) -> Tensor<2> {
        crate::layers::linear(&self.fc, e)
    }
}
