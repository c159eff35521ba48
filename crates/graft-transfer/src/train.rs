//! Training a new linear classifier on cached features (the `head` strategy): the recipe is a
//! handful of verbs (init, epoch, evaluate, decide), and what to save is left to the caller.

use burn::nn::loss::CrossEntropyLossConfig;

use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;

use crate::head::{BuildHead, Head};
use crate::metrics::Confusion;
use crate::schedule::{EpochAction, LoopState, cosine_with_warmup, fits_budget};

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
}

/// What every training run reports, whatever it trained.
pub struct Fitted {
    pub best_epoch: usize,
    pub best_val_accuracy: f64,
    pub history: Vec<EpochRecord>,
    /// On the validation split, of the best epoch's model.
    pub confusion: Confusion,
    /// Class probabilities of the best epoch's model, one row per validation image.
    pub val_probs: Vec<Vec<f32>>,
    pub stopped: Stopped,
}

/// A model's result on the validation split.
pub struct Evaluation {
    pub loss: f64,
    pub confusion: Confusion,
    /// Class probabilities, one row per image.
    pub probs: Vec<Vec<f32>>,
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
        let predicted = row
            .iter()
            .enumerate()
            .fold(0, |best, (i, &v)| if v > row[best] { i } else { best });
        confusion.add(truth, predicted);
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

/// An epoch's training done: its validation result still to be recorded and judged.
pub(crate) struct EpochDone {
    pub epoch: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub eval: Evaluation,
}

/// The bookkeeping every training loop shares: the time budget, the epoch records, the decision
/// after each epoch, the checkpoint handed to the caller, and the best epoch's evaluation (so the
/// best model is evaluated again only when its epoch ran before a resume).
pub(crate) struct Epochs {
    epochs: usize,
    patience: usize,
    budget_s: Option<f64>,
    started: std::time::Instant,
    history: Vec<EpochRecord>,
    best_eval: Option<Evaluation>,
    stopped: Stopped,
}

impl Epochs {
    pub fn new(cfg: &HeadConfig) -> Self {
        Self {
            epochs: cfg.epochs,
            patience: cfg.patience,
            budget_s: cfg.time_budget_s,
            started: std::time::Instant::now(),
            history: Vec::new(),
            best_eval: None,
            stopped: Stopped::Completed,
        }
    }

    /// Whether another epoch fits the time budget (if not, that is why training stopped).
    pub fn may_start(&mut self) -> bool {
        let fits = fits_budget(
            self.started.elapsed().as_secs_f64(),
            self.history.len(),
            self.budget_s,
        );
        if !fits {
            self.stopped = Stopped::TimeBudget;
        }
        fits
    }

    /// Records the epoch, decides what follows, hands `model` (the epoch's inference-mode
    /// model) to `on_epoch` to save. Returns whether it is the best so far and whether to stop.
    pub fn end<M>(
        &mut self,
        state: &mut LoopState,
        done: EpochDone,
        model: &M,
        optim: &[&ModuleOptimizer],
        on_epoch: &mut dyn FnMut(Checkpoint<'_, M>) -> Result<(), CallbackError>,
    ) -> Result<(bool, bool), TrainError> {
        let record = EpochRecord {
            epoch: done.epoch,
            lr: done.lr,
            train_loss: done.train_loss,
            val_loss: done.eval.loss,
            val_accuracy: done.eval.confusion.accuracy(),
        };
        let action =
            state.finish_epoch(done.epoch, record.val_accuracy, self.epochs, self.patience);
        let improved = action == EpochAction::SaveBest;
        on_epoch(Checkpoint {
            record: &record,
            model,
            is_best: improved,
            state,
            optim,
        })
        .map_err(TrainError::Callback)?;
        if improved {
            self.best_eval = Some(done.eval);
        }
        self.history.push(record);
        let stop = action == EpochAction::Stop;
        if stop {
            self.stopped = Stopped::EarlyStopped;
        }
        Ok((improved, stop))
    }

    /// The run's summary; `evaluate_best` runs only when the best epoch's evaluation is not in
    /// memory (it ran before a resume, or no epoch ran).
    pub fn finish(
        self,
        state: &LoopState,
        evaluate_best: impl FnOnce() -> Result<Evaluation, TrainError>,
    ) -> Result<Fitted, TrainError> {
        let (best_epoch, best_val_accuracy) = state.best.unwrap_or((0, 0.0));
        let eval = match self.best_eval {
            Some(e) => e,
            None => evaluate_best()?,
        };
        Ok(Fitted {
            best_epoch,
            best_val_accuracy,
            history: self.history,
            confusion: eval.confusion,
            val_probs: eval.probs,
            stopped: self.stopped,
        })
    }
}

/// Trains a fresh linear head (or continues `resume`). `on_epoch` runs after every epoch with
/// what is needed to save the last checkpoint (and the best when `is_best`).
pub fn train_head(
    train_views: &[Split<'_>],
    val: &Split<'_>,
    classes: usize,
    cfg: &HeadConfig,
    device: &Device,
    resume: Option<Resume<Head>>,
    on_epoch: &mut dyn FnMut(Checkpoint<'_, Head>) -> Result<(), CallbackError>,
) -> Result<HeadOutcome, TrainError> {
    let ad = device.clone().autodiff();
    let Some(first) = train_views.first() else {
        return Err(TrainError::Backend("no training data".into()));
    };
    let dim = first.x.first().map_or(0, Vec::len);
    let adamw = || {
        AdamWConfig::new()
            .with_weight_decay(cfg.weight_decay)
            .init()
    };
    let (mut head, mut optim, mut state, mut best_head) = match resume {
        Some(r) => {
            let optim = r.optim.into_iter().next().unwrap_or_else(adamw);
            (r.last.fork(&ad).train(), optim, r.state, r.best)
        }
        None => {
            let head = cfg.head.init(dim, classes, cfg.seed, &ad);
            let best = head.valid();
            (head, adamw(), LoopState::new(first.x.len(), cfg.seed), best)
        }
    };
    let (loss_fn, total, warmup) = loss_and_schedule(cfg, first.y, classes, &ad);
    let mut epochs = Epochs::new(cfg);
    for epoch in state.next_epoch..cfg.epochs {
        if !epochs.may_start() {
            break;
        }
        state.shuffle();
        // Dropout (MLP head) draws from the device generator: seeded per epoch so a resumed run
        // draws what the uninterrupted one did.
        ad.seed(cfg.seed.wrapping_add(epoch as u64));
        // One cached view per epoch, in turn (several when augmentation views were cached).
        let train = &train_views[epoch % train_views.len()];
        let mut loss_sum = 0.0;
        let mut lr = cfg.lr;
        for batch in state.order.clone().chunks(cfg.batch_size.max(1)) {
            lr = cosine_with_warmup(cfg.lr, state.step, warmup, total);
            let logits = head.forward(matrix(train.x, batch, &ad));
            let loss = loss_fn.forward(logits, labels(train.y, batch, &ad));
            let value = loss.clone().into_scalar::<f32>() as f64;
            if !value.is_finite() {
                return Err(TrainError::NonFinite { epoch, value });
            }
            loss_sum += value * batch.len() as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &head);
            head = optim.step(lr, head, grads);
            state.step += 1;
        }
        let current = head.valid();
        let done = EpochDone {
            epoch,
            lr,
            train_loss: loss_sum / train.x.len().max(1) as f64,
            eval: evaluate_head(&current, val, classes, device)?,
        };
        let (improved, stop) = epochs.end(&mut state, done, &current, &[&optim], on_epoch)?;
        if improved {
            best_head = current;
        }
        if stop {
            break;
        }
    }
    let fit = epochs.finish(&state, || evaluate_head(&best_head, val, classes, device))?;
    Ok(HeadOutcome {
        head: best_head,
        fit,
    })
}
