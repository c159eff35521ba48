//! Learning-rate schedule and early stopping: small pure functions the training loop calls.

use serde::{Deserialize, Serialize};

/// Where a training loop is, saved after every epoch so an interrupted run resumes exactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoopState {
    pub next_epoch: usize,
    pub step: usize,
    /// The shuffling generator's state.
    pub rng: u64,
    pub order: Vec<usize>,
    /// (epoch, validation accuracy) of the best epoch so far.
    pub best: Option<(usize, f64)>,
    /// Seconds in the training loop over the epochs done, so that a resumed run's time budget
    /// and account count the epochs run before it (0 in states saved before this field).
    #[serde(default)]
    pub train_seconds: f64,
}

impl LoopState {
    pub fn new(n: usize, seed: u64) -> Self {
        Self {
            next_epoch: 0,
            step: 0,
            rng: seed,
            order: (0..n).collect(),
            best: None,
            train_seconds: 0.0,
        }
    }

    /// Reshuffles the training order with the saved generator, so a resumed run continues the
    /// same sequence.
    pub fn shuffle(&mut self) {
        let mut rng = graft_spec::SplitMix64(self.rng);
        for i in (1..self.order.len()).rev() {
            self.order.swap(i, (rng.next() % (i as u64 + 1)) as usize);
        }
        self.rng = rng.0;
    }

    /// Decides what follows `epoch` and records it (best so far, next epoch to run).
    pub fn finish_epoch(
        &mut self,
        epoch: usize,
        val_accuracy: f64,
        epochs: usize,
        patience: usize,
    ) -> EpochAction {
        let action = after_epoch(epoch, val_accuracy, self.best, patience);
        if action == EpochAction::SaveBest {
            self.best = Some((epoch, val_accuracy));
        }
        self.next_epoch = if action == EpochAction::Stop {
            epochs
        } else {
            epoch + 1
        };
        action
    }
}

/// Linear warmup over `warmup` steps, then cosine decay to zero at `total` steps.
pub fn cosine_with_warmup(base: f64, step: usize, warmup: usize, total: usize) -> f64 {
    if step < warmup {
        return base * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1);
    let t = (step - warmup).min(span) as f64 / span as f64;
    base * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
}

/// Whether another epoch fits a time budget of `budget_s` seconds, `elapsed_s` after `done`
/// epochs: it starts only if the mean epoch so far would end within the budget. The first epoch
/// always runs (a budget that allows none is refused before training).
pub fn fits_budget(elapsed_s: f64, done: usize, budget_s: Option<f64>) -> bool {
    match budget_s {
        None => true,
        Some(_) if done == 0 => true,
        Some(b) => elapsed_s + elapsed_s / done as f64 <= b,
    }
}

/// What the loop should do after an epoch, given the best validation accuracy so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpochAction {
    /// New best: save it as the best checkpoint.
    SaveBest,
    Continue,
    /// No improvement for `patience` epochs.
    Stop,
}

pub fn after_epoch(
    epoch: usize,
    val_accuracy: f64,
    best: Option<(usize, f64)>,
    patience: usize,
) -> EpochAction {
    match best {
        None => EpochAction::SaveBest,
        Some((_, acc)) if val_accuracy > acc => EpochAction::SaveBest,
        Some((best_epoch, _)) if epoch - best_epoch >= patience => EpochAction::Stop,
        Some(_) => EpochAction::Continue,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_to_zero() {
        assert!((cosine_with_warmup(1.0, 0, 4, 20) - 0.25).abs() < 1e-12);
        assert!((cosine_with_warmup(1.0, 3, 4, 20) - 1.0).abs() < 1e-12);
        assert!((cosine_with_warmup(1.0, 12, 4, 20) - 0.5).abs() < 1e-12);
        assert!(cosine_with_warmup(1.0, 20, 4, 20).abs() < 1e-12);
    }

    #[test]
    fn an_epoch_starts_only_if_it_is_expected_to_end_within_the_budget() {
        assert!(
            fits_budget(1e9, 0, Some(1.0)),
            "the first epoch always runs"
        );
        assert!(fits_budget(1e9, 5, None));
        // 3 epochs in 30 s: the 4th is expected to end at 40 s.
        assert!(fits_budget(30.0, 3, Some(40.0)));
        assert!(!fits_budget(30.0, 3, Some(39.9)));
    }

    #[test]
    fn early_stopping_waits_patience_epochs_after_the_best() {
        assert_eq!(after_epoch(0, 0.5, None, 3), EpochAction::SaveBest);
        assert_eq!(
            after_epoch(1, 0.6, Some((0, 0.5)), 3),
            EpochAction::SaveBest
        );
        assert_eq!(
            after_epoch(3, 0.6, Some((1, 0.6)), 3),
            EpochAction::Continue
        );
        assert_eq!(after_epoch(4, 0.6, Some((1, 0.6)), 3), EpochAction::Stop);
    }
}
