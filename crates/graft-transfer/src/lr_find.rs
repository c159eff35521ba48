//! The learning-rate range test's steps (the schedule, smoothing, stop rule and readings are
//! `graft_spec::lr_find`'s): a fresh model trains on mini-batches of the training views, one
//! AdamW step per rate, with the loss the fit loop uses (label smoothing and class weights as
//! configured). Nothing is evaluated, saved or kept: the model is thrown away.

use burn::optim::AdamWConfig;
use burn::prelude::*;
use graft_spec::lr_find::{LrPoint, LrRange, LrRecorder, LrStop};

use crate::fit::Learner;
use crate::schedule::LoopState;
use crate::train::{HeadConfig, TrainError, loss_and_schedule};

/// The test's curve and why it ended.
#[derive(Clone, Debug, PartialEq)]
pub struct LrCurve {
    pub points: Vec<LrPoint>,
    pub stopped: LrStop,
}

/// Runs the range test on `learner`'s model; `on_step` hears how many steps are done.
pub fn range_test<L: Learner>(
    learner: &L,
    classes: usize,
    cfg: &HeadConfig,
    range: LrRange,
    device: &Device,
    on_step: &mut dyn FnMut(usize),
) -> Result<LrCurve, TrainError> {
    range.check().map_err(TrainError::Backend)?;
    let ad = device.clone().autodiff();
    let (n, y) = learner.examples();
    if n == 0 || learner.views() == 0 {
        return Err(TrainError::Backend("no training data".into()));
    }
    let mut model = learner.init(&ad);
    let mut optims: Vec<_> = (0..learner.parts())
        .map(|_| {
            AdamWConfig::new()
                .with_weight_decay(cfg.weight_decay)
                .init()
        })
        .collect();
    let (loss_fn, _, _) = loss_and_schedule(cfg, y, classes, &ad);
    let mut state = LoopState::new(n, cfg.seed);
    let mut recorder = LrRecorder::new(range);
    let mut stopped = LrStop::Completed;
    // As many passes over the training images as the steps need, each view in turn.
    'passes: for pass in 0.. {
        state.shuffle();
        ad.seed(cfg.seed.wrapping_add(pass as u64));
        let view = pass % learner.views();
        for batch in state.order.clone().chunks(cfg.batch_size.max(1)) {
            let Some(lr) = recorder.next_lr() else {
                break 'passes;
            };
            let (logits, labels) = learner.loss(&model, view, batch, &ad);
            let loss = loss_fn.forward(logits, labels);
            let value = loss.clone().into_scalar::<f32>() as f64;
            if recorder.record(lr, value) {
                stopped = LrStop::Diverged;
                break 'passes;
            }
            model = learner.step(model, loss.backward(), &mut optims, lr);
            on_step(recorder.points.len());
        }
    }
    Ok(LrCurve {
        points: recorder.points,
        stopped,
    })
}
