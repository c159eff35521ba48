//! Training the top block groups and a new classifier (`partial:N`) or everything (`scratch`)
//! on activations cached at the freeze point. The frozen groups never run here, so their
//! weights and BatchNorm statistics cannot change; the trained groups run on the autodiff
//! device, where BatchNorm trains (batch statistics, running averages updated).

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::Gradients;
use graft_models::Network;

use crate::fit::{Learner, fit};
use crate::head::{BuildHead, Head};
use crate::metrics::Confusion;
use crate::train::{Evaluation, Fitted, HeadConfig, OnEpoch, Resume, TrainError, tally};

/// Cached activations at the freeze point, one flattened `[c, h, w]` row per image.
pub struct Activations<'a> {
    pub x: &'a [Vec<f32>],
    pub y: &'a [usize],
    pub shape: [usize; 3],
}

impl Activations<'_> {
    fn batch(&self, idx: &[usize], device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
        let [c, h, w] = self.shape;
        let data: Vec<f32> = idx
            .iter()
            .flat_map(|&i| self.x[i].iter().copied())
            .collect();
        let x = Tensor::from_data(TensorData::new(data, [idx.len(), c, h, w]), device);
        let y: Vec<i64> = idx.iter().map(|&i| self.y[i] as i64).collect();
        (
            x,
            Tensor::from_data(TensorData::new(y, [idx.len()]), device),
        )
    }
}

#[derive(Clone, Debug)]
pub struct FinetuneConfig {
    pub head: HeadConfig,
    /// The trained backbone groups learn at `lr * backbone_lr_scale` (the new head at `lr`).
    pub backbone_lr_scale: f64,
    /// The head to start from (a linear probe's, for `head_first`); `None`: a fresh one.
    pub head_init: Option<Head>,
}

pub struct FinetuneOutcome {
    pub net: Network,
    pub head: Head,
    pub fit: Fitted,
}

fn logits(net: &Network, head: &Head, groups: std::ops::Range<usize>, x: Tensor<4>) -> Tensor<2> {
    head.forward(net.embed_groups(groups, x))
}

/// Loss, confusion and probabilities on `val` in inference mode (BatchNorm on running
/// statistics).
pub fn evaluate(
    net: &Network,
    head: &Head,
    freeze_point: usize,
    val: &Activations<'_>,
    classes: usize,
    batch_size: usize,
    device: &Device,
) -> Result<Evaluation, TrainError> {
    let n = net.group_names().len();
    let ce = CrossEntropyLossConfig::new().init(device);
    let mut confusion = Confusion::new(classes);
    let mut probs = Vec::with_capacity(val.y.len());
    let mut loss_sum = 0.0;
    let idx: Vec<usize> = (0..val.x.len()).collect();
    for chunk in idx.chunks(batch_size.max(1)) {
        let (x, y) = val.batch(chunk, device);
        let out = logits(net, head, freeze_point..n, x);
        loss_sum += ce.forward(out.clone(), y).into_scalar::<f32>() as f64 * chunk.len() as f64;
        let truth: Vec<usize> = chunk.iter().map(|&i| val.y[i]).collect();
        tally(out, &truth, classes, &mut confusion, &mut probs)?;
    }
    Ok(Evaluation {
        loss: loss_sum / val.x.len().max(1) as f64,
        confusion,
        probs,
    })
}

/// The partial:N and scratch learner: groups `freeze_point..` of the network and a new head,
/// on activations cached at the freeze point; the backbone learns at `lr *
/// backbone_lr_scale`, the head at `lr`.
struct GroupsLearner<'a> {
    net: Network,
    freeze_point: usize,
    views: &'a [Activations<'a>],
    val: &'a Activations<'a>,
    classes: usize,
    cfg: &'a FinetuneConfig,
    device: &'a Device,
}

impl Learner for GroupsLearner<'_> {
    type Model = (Network, Head);

    fn examples(&self) -> (usize, &[usize]) {
        self.views
            .first()
            .map_or((0, &[][..]), |v| (v.x.len(), v.y))
    }

    fn views(&self) -> usize {
        self.views.len()
    }

    fn init(&self, ad: &Device) -> (Network, Head) {
        // Loaded on the inference device: `train` re-enables gradients and training flags.
        let net = self.net.clone().fork(ad).train();
        let hc = &self.cfg.head;
        let head = match &self.cfg.head_init {
            Some(h) => h.clone().fork(ad).train(),
            None => hc.head.init(net.embed_dim(), self.classes, hc.seed, ad),
        };
        (net, head)
    }

    fn train_mode(&self, (net, head): (Network, Head), ad: &Device) -> (Network, Head) {
        (net.fork(ad).train(), head.fork(ad).train())
    }

    /// The backbone's optimizer, then the head's.
    fn parts(&self) -> usize {
        2
    }

    fn loss(
        &self,
        (net, head): &(Network, Head),
        view: usize,
        batch: &[usize],
        ad: &Device,
    ) -> (Tensor<2>, Tensor<1, Int>) {
        let n = net.group_names().len();
        let (x, y) = self.views[view].batch(batch, ad);
        (logits(net, head, self.freeze_point..n, x), y)
    }

    fn step(
        &self,
        (net, head): (Network, Head),
        mut grads: Gradients,
        optims: &mut [ModuleOptimizer],
        lr: f64,
    ) -> (Network, Head) {
        let g_head = GradientsParams::from_module(&mut grads, &head);
        let g_net = GradientsParams::from_module(&mut grads, &net);
        match optims {
            [o_net, o_head] => {
                let head = o_head.step(lr, head, g_head);
                let net = o_net.step(lr * self.cfg.backbone_lr_scale, net, g_net);
                (net, head)
            }
            _ => (net, head),
        }
    }

    fn valid(&self, (net, head): &(Network, Head)) -> (Network, Head) {
        (net.valid(), head.valid())
    }

    fn evaluate(&self, (net, head): &(Network, Head)) -> Result<Evaluation, TrainError> {
        let hc = &self.cfg.head;
        evaluate(
            net,
            head,
            self.freeze_point,
            self.val,
            self.classes,
            hc.batch_size,
            self.device,
        )
    }
}

/// Trains groups `freeze_point..` of `net` (on the autodiff device) and a fresh head, or
/// continues `resume` (model = (network, head); optimizers = [network's, head's]).
/// `on_epoch` gets every epoch's inference-mode network and head, to save.
#[allow(clippy::too_many_arguments)]
pub fn finetune(
    net: Network,
    freeze_point: usize,
    train_views: &[Activations<'_>],
    val: &Activations<'_>,
    classes: usize,
    cfg: &FinetuneConfig,
    device: &Device,
    resume: Option<Resume<(Network, Head)>>,
    on_epoch: &mut OnEpoch<'_, (Network, Head)>,
) -> Result<FinetuneOutcome, TrainError> {
    let learner = GroupsLearner {
        net,
        freeze_point,
        views: train_views,
        val,
        classes,
        cfg,
        device,
    };
    let ((net, head), fit) = fit(&learner, classes, &cfg.head, device, resume, on_epoch)?;
    Ok(FinetuneOutcome { net, head, fit })
}

/// The learning-rate range test of groups `freeze_point..` of `net` and a fresh head, on
/// activations cached at the freeze point (see [`crate::lr_find`]): the rate swept is the head's,
/// the backbone's is `backbone_lr_scale` times it, as in [`finetune`].
#[allow(clippy::too_many_arguments)]
pub fn groups_lr_find(
    net: Network,
    freeze_point: usize,
    train_views: &[Activations<'_>],
    classes: usize,
    cfg: &FinetuneConfig,
    range: graft_spec::lr_find::LrRange,
    device: &Device,
    on_step: &mut dyn FnMut(usize),
) -> Result<crate::lr_find::LrCurve, TrainError> {
    // The test never evaluates: an empty split stands in for the validation split.
    let shape = train_views.first().map_or([0; 3], |v| v.shape);
    let learner = GroupsLearner {
        net,
        freeze_point,
        views: train_views,
        val: &Activations {
            x: &[],
            y: &[],
            shape,
        },
        classes,
        cfg,
        device,
    };
    crate::lr_find::range_test(&learner, classes, &cfg.head, range, device, on_step)
}
