//! The one fit loop, for every strategy that trains: a [`Learner`] says what differs (the
//! model, how a batch becomes logits, how gradients are applied, how the model is evaluated);
//! the loop does the rest the same way for all (the schedule, shuffling, the loss, the time
//! budget, early stopping, the per-epoch checkpoint, resuming).

use burn::optim::{AdamWConfig, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::Gradients;

use crate::schedule::{EpochAction, LoopState, cosine_with_warmup, fits_budget};
use crate::train::{
    CallbackError, Checkpoint, EpochRecord, Evaluation, Fitted, HeadConfig, OnEpoch, Resume,
    Stopped, TrainError, loss_and_schedule,
};

/// What differs between fitting a head on pooled features and fine-tuning block groups on
/// cached activations.
pub trait Learner {
    /// What is trained, the same type on the inference and the autodiff device.
    type Model;

    /// How many training images there are, and their labels (the first view's: every view
    /// holds the same images in the same order).
    fn examples(&self) -> (usize, &[usize]);
    /// Cached training views; epoch `e` trains on view `e % views`.
    fn views(&self) -> usize;
    /// A fresh model on the autodiff device `ad`, ready to train.
    fn init(&self, ad: &Device) -> Self::Model;
    /// A saved model moved onto `ad`, ready to train.
    fn train_mode(&self, model: Self::Model, ad: &Device) -> Self::Model;
    /// Parts with an optimizer each, in the order [`Learner::step`] uses them.
    fn parts(&self) -> usize;
    /// Logits and labels of `batch` (rows of training view `view`), on `ad`.
    fn loss(
        &self,
        model: &Self::Model,
        view: usize,
        batch: &[usize],
        ad: &Device,
    ) -> (Tensor<2>, Tensor<1, Int>);
    /// Applies `grads`: one optimizer step per part, at `lr` (scaled per part as it needs).
    fn step(
        &self,
        model: Self::Model,
        grads: Gradients,
        optims: &mut [ModuleOptimizer],
        lr: f64,
    ) -> Self::Model;
    /// The model in inference mode.
    fn valid(&self, model: &Self::Model) -> Self::Model;
    /// Loss, confusion and probabilities on the validation split.
    fn evaluate(&self, model: &Self::Model) -> Result<Evaluation, TrainError>;
}

/// Trains `learner`'s model (or continues `resume`), calling `on_epoch` after every epoch with
/// what is needed to save it. Returns the best epoch's model and the loop's account.
pub fn fit<L: Learner>(
    learner: &L,
    classes: usize,
    cfg: &HeadConfig,
    device: &Device,
    resume: Option<Resume<L::Model>>,
    on_epoch: &mut OnEpoch<'_, L::Model>,
) -> Result<(L::Model, Fitted), TrainError> {
    let ad = device.clone().autodiff();
    let (n, y) = learner.examples();
    if n == 0 || learner.views() == 0 {
        return Err(TrainError::Backend("no training data".into()));
    }
    let adamw = || {
        AdamWConfig::new()
            .with_weight_decay(cfg.weight_decay)
            .init()
    };
    let (mut model, mut optims, mut state, mut best) = match resume {
        Some(r) => {
            let mut saved = r.optim.into_iter();
            let optims = (0..learner.parts())
                .map(|_| saved.next().unwrap_or_else(adamw))
                .collect::<Vec<_>>();
            (learner.train_mode(r.last, &ad), optims, r.state, r.best)
        }
        None => {
            let model = learner.init(&ad);
            let best = learner.valid(&model);
            let optims = (0..learner.parts()).map(|_| adamw()).collect();
            (model, optims, LoopState::new(n, cfg.seed), best)
        }
    };
    let (loss_fn, total, warmup) = loss_and_schedule(cfg, y, classes, &ad);
    let mut epochs = Epochs::new(cfg, &state);
    for epoch in state.next_epoch..cfg.epochs {
        if !epochs.may_start() {
            break;
        }
        state.shuffle();
        // Dropout draws from the device generator: seeded per epoch so a resumed run draws
        // what the uninterrupted one did.
        ad.seed(cfg.seed.wrapping_add(epoch as u64));
        let view = epoch % learner.views();
        let mut loss_sum = 0.0;
        let mut lr = cfg.lr;
        for batch in state.order.clone().chunks(cfg.batch_size.max(1)) {
            lr = cosine_with_warmup(cfg.lr, state.step, warmup, total);
            // The step runs on this thread, not as a whole on rayon's workers the way inference
            // passes do (`graft_kernels::on_workers`), though that was 1.04-1.08x faster: twice
            // (BENCHMARKS.md, fifth and twenty-second rounds) a run then stopped equalling the
            // same run made alone or resumed, and the cause was not found.
            let (logits, labels) = learner.loss(&model, view, batch, &ad);
            let loss = loss_fn.forward(logits, labels);
            let value = loss.clone().into_scalar::<f32>() as f64;
            if !value.is_finite() {
                return Err(TrainError::NonFinite { epoch, value });
            }
            loss_sum += value * batch.len() as f64;
            model = learner.step(model, loss.backward(), &mut optims, lr);
            state.step += 1;
        }
        let current = learner.valid(&model);
        let done = EpochDone {
            epoch,
            lr,
            train_loss: loss_sum / n as f64,
            eval: learner.evaluate(&current)?,
        };
        let refs: Vec<&ModuleOptimizer> = optims.iter().collect();
        let (improved, stop) = epochs.end(&mut state, done, &current, &refs, on_epoch)?;
        if improved {
            best = current;
        }
        if stop {
            break;
        }
    }
    let fitted = epochs.finish(&state);
    Ok((best, fitted))
}

/// An epoch's training done: its validation result still to be recorded and judged.
struct EpochDone {
    epoch: usize,
    lr: f64,
    train_loss: f64,
    eval: Evaluation,
}

/// The bookkeeping every training loop shares: the time budget, the epoch records, the decision
/// after each epoch, the checkpoint handed to the caller, and the best epoch's evaluation (so the
/// best model is evaluated again only when its epoch ran before a resume).
struct Epochs {
    epochs: usize,
    patience: usize,
    budget_s: Option<f64>,
    started: std::time::Instant,
    /// Epochs, and seconds in the loop, of a resumed run before this process.
    before: (usize, f64),
    history: Vec<EpochRecord>,
    stopped: Stopped,
}

impl Epochs {
    fn new(cfg: &HeadConfig, state: &LoopState) -> Self {
        Self {
            epochs: cfg.epochs,
            patience: cfg.patience,
            budget_s: cfg.time_budget_s,
            started: std::time::Instant::now(),
            before: (state.next_epoch, state.train_seconds),
            history: Vec::new(),
            stopped: Stopped::Completed,
        }
    }

    /// Seconds in the loop over the whole run, this process's and those before a resume.
    fn train_seconds(&self) -> f64 {
        self.before.1 + self.started.elapsed().as_secs_f64()
    }

    /// Whether another epoch fits the time budget (if not, that is why training stopped): the
    /// budget is the run's, so a resumed run counts the epochs before it.
    fn may_start(&mut self) -> bool {
        let fits = fits_budget(
            self.train_seconds(),
            self.before.0 + self.history.len(),
            self.budget_s,
        );
        if !fits {
            self.stopped = Stopped::TimeBudget;
        }
        fits
    }

    /// Records the epoch, decides what follows, hands `model` (the epoch's inference-mode
    /// model) to `on_epoch` to save. Returns whether it is the best so far and whether to stop.
    fn end<M>(
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
        state.train_seconds = self.train_seconds();
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
        self.history.push(record);
        let stop = action == EpochAction::Stop;
        if stop {
            self.stopped = Stopped::EarlyStopped;
        }
        Ok((improved, stop))
    }

    /// The run's summary (the chosen model is evaluated on the reported split by the caller).
    fn finish(self, state: &LoopState) -> Fitted {
        let (best_epoch, best_val_accuracy) = state.best.unwrap_or((0, 0.0));
        Fitted {
            best_epoch,
            best_val_accuracy,
            history: self.history,
            stopped: self.stopped,
        }
    }
}
