//! One type over all architectures: what the rest of graft (predict, evaluate, transfer) uses.

use std::path::Path;

use burn::prelude::*;
use burn::tensor::activation::softmax;
use rayon::prelude::*;

use crate::efficientnet_lite::{EfficientNetLite, EfficientNetLiteConfig};
use crate::resnet::{ResNet, ResNetConfig};
use crate::vgg::{Vgg, VggConfig};
use graft_weights::{KeyMap, LoadPolicy, LoadReport, WeightsError, load_weights};

/// An architecture and its hyper-parameters (no weights).
#[derive(Clone, Debug, PartialEq)]
pub enum Arch {
    EfficientNetLite(EfficientNetLiteConfig),
    Vgg(VggConfig),
    ResNet(ResNetConfig),
}

impl Arch {
    pub fn with_num_classes(self, n: usize) -> Self {
        match self {
            Self::EfficientNetLite(c) => Self::EfficientNetLite(c.with_num_classes(n)),
            Self::Vgg(c) => Self::Vgg(c.with_num_classes(n)),
            Self::ResNet(c) => Self::ResNet(c.with_num_classes(n)),
        }
    }

    pub fn num_classes(&self) -> usize {
        match self {
            Self::EfficientNetLite(c) => c.num_classes,
            Self::Vgg(c) => c.num_classes,
            Self::ResNet(c) => c.num_classes,
        }
    }

    /// The backbone's block groups in forward order, from the configuration alone.
    pub fn group_names(&self) -> Vec<String> {
        match self {
            Self::EfficientNetLite(c) => crate::efficientnet_lite::group_names(c.stages.len()),
            Self::Vgg(c) => crate::vgg::group_names(c.blocks.len()),
            Self::ResNet(c) => crate::resnet::group_names(c.layers.len()),
        }
    }

    pub fn key_map(&self) -> KeyMap {
        match self {
            Self::EfficientNetLite(_) => EfficientNetLiteConfig::key_map(),
            Self::Vgg(c) => c.key_map(),
            Self::ResNet(c) => c.key_map(),
        }
    }

    /// Module path prefixes of the classifier (what a new head replaces).
    pub fn classifier_prefixes(&self) -> &'static [&'static str] {
        match self {
            Self::EfficientNetLite(_) => &["classifier."],
            Self::Vgg(_) => &["fc1.", "fc2.", "fc3."],
            Self::ResNet(_) => &["fc."],
        }
    }

    /// Where a new classifier goes in the original checkpoint's names: the architecture's own
    /// classifier module (`_fc` of efficientnet_pytorch, torchvision's `classifier` and `fc`).
    pub fn classifier_name(&self) -> &'static str {
        match self {
            Self::EfficientNetLite(_) => "_fc",
            Self::Vgg(_) => "classifier",
            Self::ResNet(_) => "fc",
        }
    }

    /// A network with freshly initialised weights.
    pub fn init(&self, device: &Device) -> Network {
        match self {
            Self::EfficientNetLite(c) => Network::EfficientNetLite(c.init(device)),
            Self::Vgg(c) => Network::Vgg(c.init(device)),
            Self::ResNet(c) => Network::ResNet(c.init(device)),
        }
    }

    /// A network with weights from `path`, mapped through this architecture's key map.
    pub fn load(
        &self,
        path: &Path,
        policy: &LoadPolicy,
        model_name: &str,
        device: &Device,
    ) -> Result<(Network, LoadReport), WeightsError> {
        let map = self.key_map();
        match self {
            Self::EfficientNetLite(c) => {
                let mut m = c.init(device);
                let r = load_weights(&mut m, path, &map, policy, model_name)?;
                Ok((Network::EfficientNetLite(m), r))
            }
            Self::Vgg(c) => {
                let mut m = c.init(device);
                let r = load_weights(&mut m, path, &map, policy, model_name)?;
                Ok((Network::Vgg(m), r))
            }
            Self::ResNet(c) => {
                let mut m = c.init(device);
                let r = load_weights(&mut m, path, &map, policy, model_name)?;
                Ok((Network::ResNet(m), r))
            }
        }
    }
}

/// Few of these exist at once (one per loaded model), so the variants are not boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Network {
    EfficientNetLite(EfficientNetLite),
    Vgg(Vgg),
    ResNet(ResNet),
}

impl Network {
    /// The backbone's block groups in forward order; the classifier follows the last one.
    pub fn group_names(&self) -> Vec<String> {
        match self {
            Self::EfficientNetLite(m) => m.group_names(),
            Self::Vgg(m) => m.group_names(),
            Self::ResNet(m) => m.group_names(),
        }
    }

    pub fn forward_group(&self, g: usize, x: Tensor<4>) -> Tensor<4> {
        match self {
            Self::EfficientNetLite(m) => m.forward_group(g, x),
            Self::Vgg(m) => m.forward_group(g, x),
            Self::ResNet(m) => m.forward_group(g, x),
        }
    }

    /// Parameters of block group `g`.
    pub fn group_num_params(&self, g: usize) -> usize {
        match self {
            Self::EfficientNetLite(m) => m.group_num_params(g),
            Self::Vgg(m) => m.group_num_params(g),
            Self::ResNet(m) => m.group_num_params(g),
        }
    }

    /// Runs groups `range` (e.g. all of them, or only those above a freeze point).
    pub fn forward_groups(&self, range: std::ops::Range<usize>, x: Tensor<4>) -> Tensor<4> {
        self.micro_batched(x, |x| match self {
            Self::EfficientNetLite(m) => m.forward_groups(range.clone(), x),
            Self::ResNet(m) => m.forward_groups(range.clone(), x),
            Self::Vgg(_) => range.clone().fold(x, |x, g| self.forward_group(g, x)),
        })
    }

    /// [`Self::embed`] of [`Self::forward_groups`], for a `range` that ends at the last group:
    /// an inference pass pools the blocks it keeps its activations in, with no conversion.
    pub fn embed_groups(&self, range: std::ops::Range<usize>, x: Tensor<4>) -> Tensor<2> {
        self.micro_batched(x, |x| match self {
            Self::EfficientNetLite(m) => m.embed_groups(range.clone(), x),
            Self::ResNet(m) => m.embed_groups(range.clone(), x),
            Self::Vgg(m) => m.embed(range.clone().fold(x, |x, g| self.forward_group(g, x))),
        })
    }

    /// `run(x)`; a CPU inference pass runs on rayon's workers, in micro-batches.
    fn micro_batched<const D: usize>(
        &self,
        x: Tensor<4>,
        run: impl Fn(Tensor<4>) -> Tensor<D> + Sync + Send,
    ) -> Tensor<D> {
        let [batch, c, h, w] = x.dims();
        let images = micro_batch(
            self.activation_budget(),
            c * h * w,
            self.widest_activation(),
        );
        if !cpu_inference(&x) {
            return run(x);
        }
        graft_kernels::on_workers(|| {
            // Parts run side by side, one a worker: each part's layers then find the other
            // workers busy with their parts, not asleep to be woken for every layer. A part is
            // the micro-batch shared among the workers, so that all in flight hold what one
            // micro-batch held (at least one image each).
            let workers = rayon::current_num_threads().max(1);
            let part = images.div_ceil(workers).min(batch.div_ceil(workers)).max(1);
            if part >= batch {
                return run(x);
            }
            let parts: Vec<Tensor<4>> = x.split_with_sizes(part_sizes(batch, part, workers), 0);
            Tensor::cat(parts.into_par_iter().map(run).collect(), 0)
        })
    }

    /// The widest activation of a forward pass from the image, in multiples of the image's size
    /// (an architecture fact: see each architecture's `WIDEST_ACTIVATION`).
    fn widest_activation(&self) -> usize {
        match self {
            Self::EfficientNetLite(_) => crate::efficientnet_lite::WIDEST_ACTIVATION,
            Self::Vgg(_) => crate::vgg::WIDEST_ACTIVATION,
            Self::ResNet(_) => crate::resnet::WIDEST_ACTIVATION,
        }
    }

    /// Floats a micro-batch's widest activation may hold: [`ACTIVATION_BUDGET`] unless the
    /// architecture says otherwise.
    fn activation_budget(&self) -> usize {
        match self {
            Self::Vgg(_) => crate::vgg::ACTIVATION_BUDGET,
            Self::EfficientNetLite(_) | Self::ResNet(_) => ACTIVATION_BUDGET,
        }
    }

    /// The classifier's input computed from the last group's output.
    pub fn embed(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Self::EfficientNetLite(m) => m.embed(x),
            Self::Vgg(m) => m.embed(x),
            Self::ResNet(m) => m.embed(x),
        }
    }

    /// Width of [`Self::embed`]'s output (the classifier's input).
    pub fn embed_dim(&self) -> usize {
        let first = match self {
            Self::EfficientNetLite(m) => &m.classifier,
            Self::Vgg(m) => &m.fc1,
            Self::ResNet(m) => &m.fc,
        };
        // burn's Linear stores its weight as [in, out].
        first.weight.dims()[0]
    }

    /// The network's own classifier as linear layers, input to output (ReLU between them,
    /// dropout only in training): what [`Self::classify`] runs.
    pub fn classifier_layers(&self) -> Vec<&burn::nn::Linear> {
        match self {
            Self::EfficientNetLite(m) => vec![&m.classifier],
            Self::Vgg(m) => vec![&m.fc1, &m.fc2, &m.fc3],
            Self::ResNet(m) => vec![&m.fc],
        }
    }

    pub fn classify(&self, embedding: Tensor<2>) -> Tensor<2> {
        match self {
            Self::EfficientNetLite(m) => m.classify(embedding),
            Self::Vgg(m) => m.classify(embedding),
            Self::ResNet(m) => m.classify(embedding),
        }
    }

    /// Images `[batch, 3, h, w]`, normalised as the registry says, to logits.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let n = self.group_names().len();
        let on_cpu = cpu_inference(&images);
        let pass = || self.classify(self.embed_groups(0..n, images));
        // On the workers as a whole, pooling and classifier too (see `forward_groups`).
        if on_cpu {
            graft_kernels::on_workers(pass)
        } else {
            pass()
        }
    }

    pub fn probabilities(&self, images: Tensor<4>) -> Tensor<2> {
        softmax(self.forward(images), 1)
    }
}

/// Whether `x` is a CPU inference pass: the passes that run micro-batched and on rayon's
/// workers (a training pass runs where it is called; see `graft_kernels::on_workers`).
fn cpu_inference(x: &Tensor<4>) -> bool {
    !x.is_autodiff() && crate::backend::is_cpu(&x.device())
}

/// A CPU inference pass keeps every activation under this many floats (32 MiB, glibc's largest
/// mmap threshold): larger blocks are mapped fresh for each layer and unmapped after it, and
/// page faults cost as much as the layer (EfficientNet-Lite0 at batch 32: 150 MB expansions,
/// 35% of the time in the kernel). Smaller chunks also stay closer to the cache. VGG trades this
/// for wider products (`vgg::ACTIVATION_BUDGET`).
const ACTIVATION_BUDGET: usize = 8 << 20;

/// Sizes of the parts a batch of `batch` images runs in, at most `part` images each: a multiple
/// of `workers` of them (where the batch allows), of sizes that differ by at most one, the
/// larger spread evenly, so that each worker's half of the list (rayon splits it in halves)
/// holds the same number of images. Cut into parts of `part` and a rest, Lite0's batch of 32
/// ran as ten parts of 3 and one of 2: one worker had 17 images, the other 15.
fn part_sizes(batch: usize, part: usize, workers: usize) -> Vec<usize> {
    let n = batch
        .div_ceil(part.max(1))
        .next_multiple_of(workers.max(1))
        .clamp(1, batch.max(1));
    // Part i ends at image floor(batch * (i + 1) / n).
    (0..n)
        .map(|i| batch * (i + 1) / n - batch * i / n)
        .collect()
}

/// Images per inference chunk, with `budget` floats for the widest activation, for images of
/// `image_len` values whose widest activation is `widest` times that: at least one.
fn micro_batch(budget: usize, image_len: usize, widest: usize) -> usize {
    (budget / (image_len * widest).max(1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::part_sizes;

    #[test]
    fn parts_share_a_batch_evenly_between_the_workers() {
        // Lite0 at batch 32 on 2 workers, parts of at most 3: twelve, 16 images a half.
        let sizes = part_sizes(32, 3, 2);
        assert_eq!(sizes.len(), 12);
        assert!(sizes.iter().all(|&s| s == 2 || s == 3));
        assert_eq!(sizes[..6].iter().sum::<usize>(), 16);
        assert_eq!(sizes[6..].iter().sum::<usize>(), 16);
        for (batch, part, workers) in [
            (17, 3, 2),
            (13, 4, 2),
            (5, 3, 2),
            (2, 1, 2),
            (1, 1, 2),
            (9, 2, 4),
        ] {
            let sizes = part_sizes(batch, part, workers);
            assert_eq!(
                sizes.iter().sum::<usize>(),
                batch,
                "{batch} {part} {workers}"
            );
            assert!(sizes.iter().all(|&s| (1..=part).contains(&s)), "{sizes:?}");
            let (lo, hi) = (sizes.iter().min(), sizes.iter().max());
            assert!(hi.zip(lo).is_some_and(|(h, l)| h - l <= 1), "{sizes:?}");
        }
    }
}
