//! Training a new linear classifier on cached features (the `head` strategy): the recipe is a
//! handful of verbs (init, epoch, evaluate, decide), and what to save is left to the caller.

use burn::nn::loss::CrossEntropyLossConfig;

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::Gradients;

use crate::fit::{Learner, fit};
use crate::head::{BuildHead, Head};
use crate::metrics::Confusion;
use crate::schedule::LoopState;

/// The fit loop's settings (graft-spec's [`FitConfig`], under the name the loops have used).
pub use graft_spec::FitConfig as HeadConfig;
pub use graft_spec::{EpochRecord, Stopped};

/// The training loss (smoothing and class weights as configured) and the schedule's total and
/// warmup steps, shared by every training loop.
pub(crate) fn loss_and_schedule(
    cfg: &HeadConfig,
    y: &[usize],
    classes: usize,
    device: &Device,
) -> (burn::nn::loss::CrossEntropyLoss, usize, usize) {
    let loss = CrossEntropyLossConfig::new()
        .with_smoothing(cfg.label_smoothing)
        .with_weights(class_weights(y, classes, cfg.class_balanced))
        .init(device);
    let steps_per_epoch = y.len().div_ceil(cfg.batch_size.max(1));
    (
        loss,
        steps_per_epoch * cfg.epochs,
        steps_per_epoch * cfg.warmup_epochs,
    )
}

/// Loss weights `n / (classes * n_c)` (PyTorch/sklearn's "balanced"), or none.
pub fn class_weights(y: &[usize], classes: usize, balanced: bool) -> Option<Vec<f32>> {
    if !balanced {
        return None;
    }
    let mut counts = vec![0usize; classes];
    for &c in y {
        counts[c] += 1;
    }
    Some(
        counts
            .iter()
            .map(|&n| y.len() as f32 / (classes as f32 * n.max(1) as f32))
            .collect(),
    )
}

/// The error a caller's per-epoch step may return; training stops with it.
pub type CallbackError = Box<dyn std::error::Error + Send + Sync>;

/// The caller's per-epoch step: saves what the checkpoint holds, may stop training.
pub type OnEpoch<'a, M> = dyn FnMut(Checkpoint<'_, M>) -> Result<(), CallbackError> + 'a;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(
        "the loss became {value} at epoch {epoch}: training stopped, the last good checkpoint is kept (try a lower --lr)"
    )]
    NonFinite { epoch: usize, value: f64 },
    /// What the caller's per-epoch step (saving, an observer) failed with.
    #[error("{0}")]
    Callback(CallbackError),
    #[error("{0}")]
    Backend(String),
    #[error("{0}")]
    Invalid(String),
}

/// What every training run reports, whatever it trained: the decisions, taken on the split the
/// loop evaluates each epoch on (the selection split).
pub struct Fitted {
    pub best_epoch: usize,
    /// The best epoch's accuracy on that split.
    pub best_val_accuracy: f64,
    pub history: Vec<EpochRecord>,
    pub stopped: Stopped,
}

/// A model's result on one split (the selection split each epoch, the reported one at the end).
pub struct Evaluation {
    pub loss: f64,
    pub confusion: Confusion,
    /// Class probabilities, one row per image.
    pub probs: Vec<Vec<f32>>,
}

/// The index of the largest value (the first of equals).
fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold(0, |best, (i, &v)| if v > row[best] { i } else { best })
}

/// Softmax rows and the confusion of their arg-max against `y`, read back from the device.
pub(crate) fn tally(
    logits: Tensor<2>,
    y: &[usize],
    classes: usize,
    confusion: &mut Confusion,
    probs: &mut Vec<Vec<f32>>,
) -> Result<(), TrainError> {
    let p = burn::tensor::activation::softmax(logits, 1)
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| TrainError::Backend(format!("cannot read probabilities: {e:?}")))?;
    for (row, &truth) in p.chunks_exact(classes.max(1)).zip(y) {
        confusion.add(truth, argmax(row));
        probs.push(row.to_vec());
    }
    Ok(())
}

pub struct HeadOutcome {
    pub head: Head,
    pub fit: Fitted,
}

/// Features as rows with their class labels.
pub struct Split<'a> {
    pub x: &'a [Vec<f32>],
    pub y: &'a [usize],
}

fn matrix(rows: &[Vec<f32>], idx: &[usize], device: &Device) -> Tensor<2> {
    let dim = rows.first().map_or(0, Vec::len);
    let data: Vec<f32> = idx.iter().flat_map(|&i| rows[i].iter().copied()).collect();
    Tensor::from_data(TensorData::new(data, [idx.len(), dim]), device)
}

fn labels(y: &[usize], idx: &[usize], device: &Device) -> Tensor<1, Int> {
    let data: Vec<i64> = idx.iter().map(|&i| y[i] as i64).collect();
    Tensor::from_data(TensorData::new(data, [idx.len()]), device)
}

/// Validation loss, confusion and probabilities of `head` (no gradients).
pub fn evaluate_head(
    head: &Head,
    val: &Split<'_>,
    classes: usize,
    device: &Device,
) -> Result<Evaluation, TrainError> {
    let idx: Vec<usize> = (0..val.x.len()).collect();
    let logits = head.forward(matrix(val.x, &idx, device));
    let loss = CrossEntropyLossConfig::new()
        .init(device)
        .forward(logits.clone(), labels(val.y, &idx, device));
    let loss = loss.into_scalar::<f32>() as f64;
    let mut confusion = Confusion::new(classes);
    let mut probs = Vec::with_capacity(val.y.len());
    tally(logits, val.y, classes, &mut confusion, &mut probs)?;
    Ok(Evaluation {
        loss,
        confusion,
        probs,
    })
}

/// One evaluation of several views of the same images (`evals[v]` rows in the same order):
/// class probabilities averaged over the views, the confusion of their arg-max, and the mean
/// negative log-likelihood of the averaged probabilities. One view is returned as it is.
pub fn average_views(
    mut evals: Vec<Evaluation>,
    y: &[usize],
    classes: usize,
) -> Result<Evaluation, TrainError> {
    if evals.len() <= 1 {
        return evals
            .pop()
            .ok_or_else(|| TrainError::Invalid("no view to evaluate".into()));
    }
    if evals.iter().any(|e| e.probs.len() != y.len()) {
        return Err(TrainError::Invalid(
            "the views of the evaluated images do not line up".into(),
        ));
    }
    let share = 1.0 / evals.len() as f32;
    let mut confusion = Confusion::new(classes);
    let mut probs = Vec::with_capacity(y.len());
    let mut nll = 0.0;
    for (i, &truth) in y.iter().enumerate() {
        let mut p = vec![0.0f32; classes];
        for e in &evals {
            for (a, b) in p.iter_mut().zip(&e.probs[i]) {
                *a += b * share;
            }
        }
        confusion.add(truth, argmax(&p));
        nll -= f64::from(p.get(truth).copied().unwrap_or(0.0).max(1e-12)).ln();
        probs.push(p);
    }
    Ok(Evaluation {
        loss: nll / y.len().max(1) as f64,
        confusion,
        probs,
    })
}

/// What a resumed run starts from: the loop state and the last epoch's model and optimizer
/// (the model loaded from burnpack, which keeps parameter ids, so the optimizer state matches).
pub struct Resume<M> {
    pub state: LoopState,
    pub last: M,
    pub best: M,
    pub optim: Vec<ModuleOptimizer>,
}

/// What `on_epoch` gets to save after every epoch.
pub struct Checkpoint<'a, M> {
    pub record: &'a EpochRecord,
    /// The epoch's model, in inference mode.
    pub model: &'a M,
    pub is_best: bool,
    pub state: &'a LoopState,
    pub optim: &'a [&'a ModuleOptimizer],
}

/// The head strategy's learner: a new classifier on pooled features, one view per epoch in
/// turn.
struct HeadLearner<'a> {
    views: &'a [Split<'a>],
    val: &'a Split<'a>,
    classes: usize,
    cfg: &'a HeadConfig,
    device: &'a Device,
}

impl Learner for HeadLearner<'_> {
    type Model = Head;

    fn examples(&self) -> (usize, &[usize]) {
        self.views
            .first()
            .map_or((0, &[][..]), |v| (v.x.len(), v.y))
    }

    fn views(&self) -> usize {
        self.views.len()
    }

    fn init(&self, ad: &Device) -> Head {
        let dim = self
            .views
            .first()
            .and_then(|v| v.x.first())
            .map_or(0, Vec::len);
        self.cfg.head.init(dim, self.classes, self.cfg.seed, ad)
    }

    fn train_mode(&self, model: Head, ad: &Device) -> Head {
        model.fork(ad).train()
    }

    fn parts(&self) -> usize {
        1
    }

    fn loss(
        &self,
        model: &Head,
        view: usize,
        batch: &[usize],
        ad: &Device,
    ) -> (Tensor<2>, Tensor<1, Int>) {
        let v = &self.views[view];
        (
            model.forward(matrix(v.x, batch, ad)),
            labels(v.y, batch, ad),
        )
    }

    fn step(&self, model: Head, grads: Gradients, optims: &mut [ModuleOptimizer], lr: f64) -> Head {
        let grads = GradientsParams::from_grads(grads, &model);
        match optims.first_mut() {
            Some(o) => o.step(lr, model, grads),
            None => model,
        }
    }

    fn valid(&self, model: &Head) -> Head {
        model.valid()
    }

    fn evaluate(&self, model: &Head) -> Result<Evaluation, TrainError> {
        evaluate_head(model, self.val, self.classes, self.device)
    }
}

/// Trains a fresh head (or continues `resume`) on pooled features. `on_epoch` runs after every
/// epoch with what is needed to save the last checkpoint (and the best when `is_best`).
pub fn train_head(
    train_views: &[Split<'_>],
    val: &Split<'_>,
    classes: usize,
    cfg: &HeadConfig,
    device: &Device,
    resume: Option<Resume<Head>>,
    on_epoch: &mut OnEpoch<'_, Head>,
) -> Result<HeadOutcome, TrainError> {
    let learner = HeadLearner {
        views: train_views,
        val,
        classes,
        cfg,
        device,
    };
    let (head, fit) = fit(&learner, classes, cfg, device, resume, on_epoch)?;
    Ok(HeadOutcome { head, fit })
}

/// The learning-rate range test of a new head on pooled features (see [`crate::lr_find`]).
pub fn head_lr_find(
    train_views: &[Split<'_>],
    classes: usize,
    cfg: &HeadConfig,
    range: graft_spec::lr_find::LrRange,
    device: &Device,
    on_step: &mut dyn FnMut(usize),
) -> Result<crate::lr_find::LrCurve, TrainError> {
    // The test never evaluates: an empty split stands in for the validation split.
    let learner = HeadLearner {
        views: train_views,
        val: &Split { x: &[], y: &[] },
        classes,
        cfg,
        device,
    };
    crate::lr_find::range_test(&learner, classes, cfg, range, device, on_step)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(probs: Vec<Vec<f32>>) -> Evaluation {
        Evaluation {
            loss: 0.0,
            confusion: Confusion::new(2),
            probs,
        }
    }

    #[test]
    fn views_are_averaged_in_probability_and_scored_again() {
        let y = [0, 1];
        // Image 0: the views disagree and the mean favours class 0; image 1: both say 1.
        let plain = eval(vec![vec![0.4, 0.6], vec![0.2, 0.8]]);
        let mirrored = eval(vec![vec![0.9, 0.1], vec![0.4, 0.6]]);
        let e = average_views(vec![plain, mirrored], &y, 2).expect("average");
        let want = [[0.65, 0.35], [0.3, 0.7]];
        for (row, want) in e.probs.iter().zip(want) {
            for (a, b) in row.iter().zip(want) {
                assert!((a - b).abs() < 1e-6, "{:?}", e.probs);
            }
        }
        assert_eq!(e.confusion.matrix, vec![vec![1, 0], vec![0, 1]]);
        let nll = -(0.65f64.ln() + 0.7f64.ln()) / 2.0;
        assert!((e.loss - nll).abs() < 1e-6, "{} vs {nll}", e.loss);
    }

    #[test]
    fn one_view_is_kept_and_misaligned_views_are_an_error() {
        let e = average_views(vec![eval(vec![vec![1.0, 0.0]])], &[0], 2).expect("one");
        assert_eq!(e.probs, vec![vec![1.0, 0.0]]);
        let short = eval(vec![vec![1.0, 0.0]]);
        let long = eval(vec![vec![1.0, 0.0], vec![0.0, 1.0]]);
        assert!(average_views(vec![short, long], &[0], 2).is_err());
        assert!(average_views(Vec::new(), &[], 2).is_err());
    }
}
