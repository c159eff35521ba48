//! EfficientNet-Lite0/1/2.
//!
//! Paper: Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks"
//! (ICML 2019); the Lite variants are from the TensorFlow TPU repository's `efficientnet/lite`
//! (no squeeze-excitation, ReLU6, fixed stem and head). Reference implementation and key names:
//! `efficientnet_pytorch` (lukemelas) as packaged in `efficientnet-lite-pytorch`, whose
//! checkpoints were converted from TensorFlow. Because of that origin the network must run with
//! TensorFlow 'SAME' padding (extra row/column at the bottom/right for stride 2) and BatchNorm
//! eps 1e-3; the PROVENANCE.md beside the weights (`shared/weights/`, next to the checkout)
//! measures what goes wrong otherwise.

/// The widest activation of a forward pass from the image, in multiples of the image's size:
/// the first expansion, 96 channels at half resolution: 96 / (3 * 4) (CPU inference runs the batch in chunks sized by it; see `network::micro_batch`).
pub const WIDEST_ACTIVATION: usize = 8;

use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use std::ops::Range;

use crate::layers::{Activations, ConvBn, ConvBnSpec, forward_groups_blocked, global_avg_pool};
use graft_kernels::Epilogue;
use graft_kernels::blocked::Blocked;
use graft_weights::KeyMap;

/// One stage of MBConv blocks: (kernel, stride of its first block, expand ratio, output
/// channels, number of blocks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage {
    pub kernel: usize,
    pub stride: usize,
    pub expand: usize,
    pub out: usize,
    pub repeats: usize,
}

const fn stage(kernel: usize, stride: usize, expand: usize, out: usize, repeats: usize) -> Stage {
    Stage {
        kernel,
        stride,
        expand,
        out,
        repeats,
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct EfficientNetLiteConfig {
    pub stem: usize,
    pub head: usize,
    pub stages: Vec<Stage>,
    pub num_classes: usize,
    pub dropout: f64,
}

impl EfficientNetLiteConfig {
    fn with_stages(stages: Vec<Stage>, dropout: f64) -> Self {
        Self {
            stem: 32,
            head: 1280,
            stages,
            num_classes: 1000,
            dropout,
        }
    }

    pub fn lite0() -> Self {
        Self::with_stages(
            vec![
                stage(3, 1, 1, 16, 1),
                stage(3, 2, 6, 24, 2),
                stage(5, 2, 6, 40, 2),
                stage(3, 2, 6, 80, 3),
                stage(5, 1, 6, 112, 3),
                stage(5, 2, 6, 192, 4),
                stage(3, 1, 6, 320, 1),
            ],
            0.2,
        )
    }

    pub fn lite1() -> Self {
        Self::with_stages(
            vec![
                stage(3, 1, 1, 16, 1),
                stage(3, 2, 6, 24, 3),
                stage(5, 2, 6, 40, 3),
                stage(3, 2, 6, 80, 4),
                stage(5, 1, 6, 112, 4),
                stage(5, 2, 6, 192, 5),
                stage(3, 1, 6, 320, 1),
            ],
            0.2,
        )
    }

    pub fn lite2() -> Self {
        Self::with_stages(
            vec![
                stage(3, 1, 1, 16, 1),
                stage(3, 2, 6, 24, 3),
                stage(5, 2, 6, 48, 3),
                stage(3, 2, 6, 88, 4),
                stage(5, 1, 6, 120, 4),
                stage(5, 2, 6, 208, 5),
                stage(3, 1, 6, 352, 1),
            ],
            0.3,
        )
    }

    pub fn with_num_classes(mut self, n: usize) -> Self {
        self.num_classes = n;
        self
    }

    pub fn init(&self, device: &Device) -> EfficientNetLite {
        let mut blocks = Vec::new();
        let mut stage_lengths = Vec::new();
        let mut cin = self.stem;
        for s in &self.stages {
            for i in 0..s.repeats {
                let stride = if i == 0 { s.stride } else { 1 };
                blocks.push(mbconv(cin, s.out, s.kernel, stride, s.expand, device));
                cin = s.out;
            }
            stage_lengths.push(s.repeats);
        }
        EfficientNetLite {
            stem: same([3, self.stem], 3, 2, 1).init(device),
            blocks,
            head: same([cin, self.head], 1, 1, 1).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
            classifier: LinearConfig::new(self.head, self.num_classes).init(device),
            stage_lengths,
        }
    }

    /// efficientnet_pytorch names -> this module's names. Block-level patterns come first so
    /// that the model-level `_bn0`/`_bn1` patterns only see what is left.
    pub fn key_map() -> KeyMap {
        KeyMap::new(&[
            (r"^_blocks\.(\d+)\._expand_conv\.", "blocks.$1.expand.conv."),
            (r"^_blocks\.(\d+)\._bn0\.", "blocks.$1.expand.bn."),
            (
                r"^_blocks\.(\d+)\._depthwise_conv\.",
                "blocks.$1.depthwise.conv.",
            ),
            (r"^_blocks\.(\d+)\._bn1\.", "blocks.$1.depthwise.bn."),
            (
                r"^_blocks\.(\d+)\._project_conv\.",
                "blocks.$1.project.conv.",
            ),
            (r"^_blocks\.(\d+)\._bn2\.", "blocks.$1.project.bn."),
            (r"^_conv_stem\.", "stem.conv."),
            (r"^_bn0\.", "stem.bn."),
            (r"^_conv_head\.", "head.conv."),
            (r"^_bn1\.", "head.bn."),
            (r"^_fc\.", "classifier."),
        ])
    }
}

/// `stem`, `stage1..stageN`, `top` (the 1x1 head conv before pooling).
pub(crate) fn group_names(stages: usize) -> Vec<String> {
    std::iter::once("stem".to_string())
        .chain((1..=stages).map(|i| format!("stage{i}")))
        .chain(std::iter::once("top".to_string()))
        .collect()
}

fn same(channels: [usize; 2], kernel: usize, stride: usize, groups: usize) -> ConvBnSpec {
    ConvBnSpec {
        channels,
        kernel,
        stride,
        groups,
        padding: PaddingConfig2d::Same,
        bn_eps: 1e-3,
    }
}

fn mbconv(cin: usize, cout: usize, k: usize, stride: usize, expand: usize, d: &Device) -> MbConv {
    let mid = cin * expand;
    MbConv {
        expand: (expand != 1).then(|| same([cin, mid], 1, 1, 1).init(d)),
        depthwise: same([mid, mid], k, stride, mid).init(d),
        project: same([mid, cout], 1, 1, 1).init(d),
        residual: stride == 1 && cin == cout,
    }
}

/// Inverted residual block without squeeze-excitation (the Lite variant).
#[derive(Module, Debug)]
pub struct MbConv {
    pub expand: Option<ConvBn>,
    pub depthwise: ConvBn,
    pub project: ConvBn,
    pub residual: bool,
}

impl MbConv {
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        // Only a residual block keeps its input: otherwise the first layer may recycle it.
        let skip = self.residual.then(|| input.clone());
        let mut x = input;
        if let Some(expand) = &self.expand {
            x = expand.forward_relu6(x);
        }
        x = self.project.forward(self.depthwise.forward_relu6(x));
        match skip {
            Some(skip) => graft_kernels::add(x, skip),
            None => x,
        }
    }

    /// [`MbConv::forward`] for inference over activations in blocks of 16 channels: the
    /// expanded activations never go back to planes, and the residual is added as the
    /// projection writes its output.
    pub fn forward_blocked(&self, input: Blocked) -> Blocked {
        let relu6 = Epilogue::BiasRelu6;
        if let Some(expand) = &self.expand
            && let Some(x) = expand.expand_depthwise_blocked(&self.depthwise, &input, relu6)
        {
            let skip = self.residual.then_some(&input);
            return self.project.forward_blocked(&x, Epilogue::Bias, skip);
        }
        let (x, skip) = match (&self.expand, self.residual) {
            (Some(expand), true) => (expand.forward_blocked(&input, relu6, None), Some(input)),
            (Some(expand), false) => (expand.forward_blocked_owned(input, relu6), None),
            (None, true) => {
                let x = self.depthwise.forward_blocked(&input, relu6, None);
                return self
                    .project
                    .forward_blocked(&x, Epilogue::Bias, Some(&input));
            }
            (None, false) => (input, None),
        };
        let x = self.depthwise.forward_blocked_owned(x, relu6);
        self.project
            .forward_blocked(&x, Epilogue::Bias, skip.as_ref())
    }
}

#[derive(Module, Debug)]
pub struct EfficientNetLite {
    pub stem: ConvBn,
    pub blocks: Vec<MbConv>,
    pub head: ConvBn,
    pub dropout: Dropout,
    pub classifier: Linear,
    #[module(skip)]
    pub stage_lengths: Vec<usize>,
}

impl EfficientNetLite {
    /// Backbone groups in forward order: `stem`, `stage1..stageN`, `top` (the 1x1 head conv).
    pub fn group_names(&self) -> Vec<String> {
        group_names(self.stage_lengths.len())
    }

    /// Runs backbone group `g` (an index into [`Self::group_names`]).
    pub fn forward_group(&self, g: usize, x: Tensor<4>) -> Tensor<4> {
        if g == 0 {
            return self.stem.forward_relu6(x);
        }
        // Inference runs the group in blocks of channels, converting only at its ends.
        match Blocked::from_tensor(x) {
            Ok(x) => self.forward_group_blocked(g, x).into_tensor(),
            Err(x) if g <= self.stage_lengths.len() => {
                self.stage(g).iter().fold(x, |x, b| b.forward(x))
            }
            Err(x) => self.head.forward_relu6(x),
        }
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
        let stem = |x| match self.stem.forward_into_blocks(x, Epilogue::BiasRelu6) {
            Ok(x) => Ok(x),
            Err(x) => Blocked::from_tensor(self.stem.forward_relu6(x)),
        };
        let blocked = |g, x| self.forward_group_blocked(g, x);
        let planes = |g, x| self.forward_group(g, x);
        forward_groups_blocked(range, x, stem, blocked, planes)
    }

    /// Group `g` (a stage or the head convolution, not the stem) over blocked activations.
    fn forward_group_blocked(&self, g: usize, x: Blocked) -> Blocked {
        if g <= self.stage_lengths.len() {
            self.stage(g).iter().fold(x, |x, b| b.forward_blocked(x))
        } else {
            self.head.forward_blocked_owned(x, Epilogue::BiasRelu6)
        }
    }

    /// The blocks of stage `g` (1-based, as its group index).
    fn stage(&self, g: usize) -> &[MbConv] {
        let start: usize = self.stage_lengths[..g - 1].iter().sum();
        &self.blocks[start..start + self.stage_lengths[g - 1]]
    }

    /// Parameters of group `g` (for reports of what a strategy trains).
    pub fn group_num_params(&self, g: usize) -> usize {
        let n_stages = self.stage_lengths.len();
        if g == 0 {
            self.stem.num_params()
        } else if g <= n_stages {
            self.stage(g).iter().map(Module::num_params).sum()
        } else {
            self.head.num_params()
        }
    }

    /// The classifier's input: global average pool of the last group's output.
    pub fn embed(&self, x: Tensor<4>) -> Tensor<2> {
        global_avg_pool(x)
    }

    pub fn classify(&self, embedding: Tensor<2>) -> Tensor<2> {
        crate::layers::linear(&self.classifier, self.dropout.forward(embedding))
    }
}
