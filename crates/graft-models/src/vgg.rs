//! VGG-16 and VGG-16-BN.
//!
//! Paper: Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
//! Recognition" (ICLR 2015). Reference implementation and key names: torchvision
//! `models/vgg.py` (`features.N` in one flat `nn.Sequential`, `classifier.{0,3,6}`).
//! Here the flat sequence is split into its five conv blocks so that they can be frozen by name;
//! the key map restores torchvision's flat indices.

/// The widest activation of a forward pass from the image, in multiples of the image's size:
/// the first block, 64 channels at full resolution: 64 / 3, rounded up (CPU inference runs the batch in chunks sized by it; see `network::micro_batch`).
pub const WIDEST_ACTIVATION: usize = 22;

/// A VGG inference pass holds 4x the activations of the others (`network.rs`'
/// `ACTIVATION_BUDGET`, 8M floats). At that budget the widest activation allowed 2 images a
/// micro-batch, one per worker, and the 14x14 layers ran each image's 16 Winograd tiles alone
/// (under the Winograd minimum: im2col products 196 columns wide). At 32M floats (10 images,
/// parts of 5): VGG-16 at batch 32 in 0.808 and 0.849 of the time (4 and 3 pairs; 16M: 0.894),
/// peak RSS 740 -> 1003-1052 MiB, where ONNX Runtime's is 2484. Larger budgets (12M, 16M) were
/// level or slower for ResNet-50 and EfficientNet-Lite0; ResNet-18 gained only at ONNX
/// Runtime's peak RSS (BENCHMARKS.md, ninth round). With ResNet's pass in blocks (tenth round),
/// 16M was slower for both ResNets.
pub const ACTIVATION_BUDGET: usize = 32 << 20;

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d,
};
use burn::prelude::*;
use burn::tensor::module::adaptive_avg_pool2d;
use graft_kernels::{Memo, Prepared, relu};
use std::sync::Arc;

use graft_weights::KeyMap;

#[derive(Clone, Debug, PartialEq)]
pub struct VggConfig {
    /// Output channels of each conv, block by block (VGG-16: 2, 2, 3, 3, 3 convs).
    pub blocks: Vec<Vec<usize>>,
    pub batch_norm: bool,
    pub hidden: usize,
    pub num_classes: usize,
    pub dropout: f64,
}

impl VggConfig {
    pub fn vgg16(batch_norm: bool) -> Self {
        Self {
            blocks: vec![
                vec![64; 2],
                vec![128; 2],
                vec![256; 3],
                vec![512; 3],
                vec![512; 3],
            ],
            batch_norm,
            hidden: 4096,
            num_classes: 1000,
            dropout: 0.5,
        }
    }

    pub fn with_num_classes(mut self, n: usize) -> Self {
        self.num_classes = n;
        self
    }

    pub fn init(&self, device: &Device) -> Vgg {
        let mut cin = 3;
        let blocks = self
            .blocks
            .iter()
            .map(|widths| VggBlock {
                convs: widths
                    .iter()
                    .map(|&cout| {
                        let conv = VggConv {
                            conv: Conv2dConfig::new([cin, cout], [3, 3])
                                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                                .init(device),
                            bn: self
                                .batch_norm
                                .then(|| BatchNormConfig::new(cout).init(device)),
                            kept: Memo::default(),
                        };
                        cin = cout;
                        conv
                    })
                    .collect(),
                pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            })
            .collect();
        Vgg {
            blocks,
            fc1: LinearConfig::new(cin * 49, self.hidden).init(device),
            fc2: LinearConfig::new(self.hidden, self.hidden).init(device),
            fc3: LinearConfig::new(self.hidden, self.num_classes).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }

    /// torchvision's flat `features.N` indices -> `blocks.B.convs.C`. Each conv occupies
    /// conv [+ bn] + relu slots and each block ends with a max-pool slot.
    pub fn key_map(&self) -> KeyMap {
        let mut pairs = Vec::new();
        let mut idx = 0;
        for (b, widths) in self.blocks.iter().enumerate() {
            for c in 0..widths.len() {
                pairs.push((
                    format!(r"^features\.{idx}\."),
                    format!("blocks.{b}.convs.{c}.conv."),
                ));
                idx += 1;
                if self.batch_norm {
                    pairs.push((
                        format!(r"^features\.{idx}\."),
                        format!("blocks.{b}.convs.{c}.bn."),
                    ));
                    idx += 1;
                }
                idx += 1; // ReLU
            }
            idx += 1; // MaxPool
        }
        for (torch, ours) in [("0", "fc1"), ("3", "fc2"), ("6", "fc3")] {
            pairs.push((format!(r"^classifier\.{torch}\."), format!("{ours}.")));
        }
        KeyMap::from_pairs(pairs)
    }
}

/// `block1..blockN`, each its convs and the max-pool that ends it.
pub(crate) fn group_names(blocks: usize) -> Vec<String> {
    (1..=blocks).map(|i| format!("block{i}")).collect()
}

#[derive(Module, Debug)]
pub struct VggConv {
    pub conv: Conv2d,
    pub bn: Option<BatchNorm>,
    /// What the inference kernel derives from the weights, kept while they are the same
    /// tensors (see [`crate::layers::conv2d_relu_kept`]).
    #[module(skip)]
    pub kept: Memo<Arc<Prepared>>,
}

#[derive(Module, Debug)]
pub struct VggBlock {
    pub convs: Vec<VggConv>,
    pub pool: MaxPool2d,
}

impl VggBlock {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.convs.iter().fold(x, |x, c| match &c.bn {
            Some(bn) => relu(crate::layers::batch_norm(
                bn,
                crate::layers::conv2d(&c.conv, x),
            )),
            None => crate::layers::conv2d_relu_kept(&c.conv, &c.kept, x),
        });
        crate::layers::max_pool2d(&self.pool, x)
    }
}

#[derive(Module, Debug)]
pub struct Vgg {
    pub blocks: Vec<VggBlock>,
    pub fc1: Linear,
    pub fc2: Linear,
    pub fc3: Linear,
    pub dropout: Dropout,
}

impl Vgg {
    pub fn group_names(&self) -> Vec<String> {
        (1..=self.blocks.len())
            .map(|i| format!("block{i}"))
            .collect()
    }

    pub fn forward_group(&self, g: usize, x: Tensor<4>) -> Tensor<4> {
        self.blocks[g].forward(x)
    }

    pub fn group_num_params(&self, g: usize) -> usize {
        self.blocks[g].num_params()
    }

    /// The classifier's input: adaptive average pool to 7x7, flattened in NCHW order as torch does.
    pub fn embed(&self, x: Tensor<4>) -> Tensor<2> {
        let [b, c, _, _] = x.dims();
        adaptive_avg_pool2d(x, [7, 7]).reshape([b, c * 49])
    }

    pub fn classify(&self, e: Tensor<2>) -> Tensor<2> {
        let linear = crate::layers::linear;
        let x = self.dropout.forward(relu(linear(&self.fc1, e)));
        let x = self.dropout.forward(relu(linear(&self.fc2, x)));
        linear(&self.fc3, x)
    }
}
