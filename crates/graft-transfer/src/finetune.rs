//! Training the top block groups and a new classifier (`partial:N`) or everything (`scratch`)
//! on activations cached at the freeze point. The frozen groups never run here, so their
//! weights and BatchNorm statistics cannot change; the trained groups run on the autodiff
//! device, where BatchNorm trains (batch statistics, running averages updated).

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use graft_models::Network;

use crate::head::{BuildHead, Head};
use crate::metrics::Confusion;
use crate::schedule::{LoopState, cosine_with_warmup};
use crate::train::{
    CallbackError, Checkpoint, EpochDone, Epochs, Evaluation, Fitted, HeadConfig, Resume, TrainError,
    loss_and_schedule, tally,
};

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

#[derive(Clone, Debug, PartialEq)]
pub struct FinetuneConfig {
    pub head: HeadConfig,
    /// The trained backbone groups learn at `lr * backbone_lr_scale` (the new head at `lr`).
    pub backbone_lr_scale: f64,
}

pub struct FinetuneOutcome {
    pub net: Network,
    pub head: Head,
    pub fit: Fitted,
}

fn logits(net: &Network, head: &Head, groups: std::ops::Range<usize>, x: Tensor<4>) -> Tensor<2> {
    head.forward(net.embed(net.forward_groups(groups, x)))
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
    on_epoch: &mut dyn FnMut(Checkpoint<'_, (Network, Head)>) -> Result<(), CallbackError>,
) -> Result<FinetuneOutcome, TrainError> {
    let hc = &cfg.head;
    let ad = device.clone().autodiff();
    let Some(first) = train_views.first() else {
        return Err(TrainError::Backend("no training data".into()));
    };
    let n = net.group_names().len();
    let adamw = || AdamWConfig::new().with_weight_decay(hc.weight_decay).init();
    let (mut net, mut head, mut opt_net, mut opt_head, mut state, mut best_state) = match resume {
        Some(r) => {
            let mut optims = r.optim.into_iter();
            let opt_net = optims.next().unwrap_or_else(adamw);
            let opt_head = optims.next().unwrap_or_else(adamw);
            let (net, head) = r.last;
            (
                net.fork(&ad).train(),
                head.fork(&ad).train(),
                opt_net,
                opt_head,
                r.state,
                r.best,
            )
        }
        None => {
            // Loaded on the inference device: `train` re-enables gradients and training flags.
            let net = net.fork(&ad).train();
            let head = hc.head.init(net.embed_dim(), classes, hc.seed, &ad);
            let best = (net.valid(), head.valid());
            (
                net,
                head,
                adamw(),
                adamw(),
                LoopState::new(first.x.len(), hc.seed),
                best,
            )
        }
    };
    let (ce, total, warmup) = loss_and_schedule(hc, first.y, classes, &ad);
    let mut epochs = Epochs::new(hc);
    for epoch in state.next_epoch..hc.epochs {
        if !epochs.may_start() {
            break;
        }
        state.shuffle();
        // Dropout (MLP head) draws from the device generator: seeded per epoch so a resumed run
        // draws what the uninterrupted one did.
        ad.seed(hc.seed.wrapping_add(epoch as u64));
        // One cached view per epoch, in turn (several when augmentation views were cached).
        let train = &train_views[epoch % train_views.len()];
        let mut loss_sum = 0.0;
        let mut lr = hc.lr;
        for batch in state.order.clone().chunks(hc.batch_size.max(1)) {
            lr = cosine_with_warmup(hc.lr, state.step, warmup, total);
            let (x, y) = train.batch(batch, &ad);
            let loss = ce.forward(logits(&net, &head, freeze_point..n, x), y);
            let value = loss.clone().into_scalar::<f32>() as f64;
            if !value.is_finite() {
                return Err(TrainError::NonFinite { epoch, value });
            }
            loss_sum += value * batch.len() as f64;
            let mut grads = loss.backward();
            let g_head = GradientsParams::from_module(&mut grads, &head);
            let g_net = GradientsParams::from_module(&mut grads, &net);
            head = opt_head.step(lr, head, g_head);
            net = opt_net.step(lr * cfg.backbone_lr_scale, net, g_net);
            state.step += 1;
        }
        let current = (net.valid(), head.valid());
        let done = EpochDone {
            epoch,
            lr,
            train_loss: loss_sum / train.x.len().max(1) as f64,
            eval: evaluate(
                &current.0,
                &current.1,
                freeze_point,
                val,
                classes,
                hc.batch_size,
                device,
            )?,
        };
        let (improved, stop) =
            epochs.end(&mut state, done, &current, &[&opt_net, &opt_head], on_epoch)?;
        if improved {
            best_state = current;
        }
        if stop {
            break;
        }
    }
    let (bnet, bhead) = best_state;
    let fit = epochs.finish(&state, || {
        evaluate(
            &bnet,
            &bhead,
            freeze_point,
            val,
            classes,
            hc.batch_size,
            device,
        )
    })?;
    Ok(FinetuneOutcome {
        net: bnet,
        head: bhead,
        fit,
    })
}
