//! `head` with `--head-solver lbfgs`: the linear head fitted in one go on the cached features
//! (graft_transfer::linear_head), no epochs. Its one decision, the L2 strength, is taken by
//! 5-fold cross-validation on every training image when the selection split was carved from
//! them, else on the selection split the dataset gives (or, under --select-on-eval, the
//! reported one).

use graft_data::Selection;
use graft_spec::{FitConfig, HeadKind, Selected};
use graft_transfer::linear_head::{SelectOn, fit_linear_head};
use graft_transfer::train::{Fitted, Split, Stopped, evaluate_head};

use super::Extracted;
use crate::ensure;
use crate::error::Result;

/// What the L-BFGS fit gives the finish step.
pub(super) struct LbfgsFit {
    pub fitted: Fitted,
    pub head: graft_transfer::head::Head,
    pub report: graft_transfer::train::Evaluation,
    pub selected: Selected,
    pub trained_on: usize,
}

const FOLDS: usize = 5;

pub(super) fn fit_lbfgs(x: &Extracted, cfg: &FitConfig) -> Result<LbfgsFit> {
    let run = &x.run;
    let ds = &run.ds;
    ensure!(
        cfg.head == HeadKind::Linear,
        "--head-solver lbfgs fits a linear head; --head mlp trains with --head-solver adamw"
    );
    ensure!(
        x.train_views.len() == 1 && run.spec.views() == 0,
        "--head-solver lbfgs fits the evaluation view of each image; leave --cached-views at 0"
    );
    let classes = ds.classes.len();
    let device = &run.model.device;
    let train = &x.train_views[0];
    let carved = matches!(ds.selection, Selection::Carved { .. });
    // Carved from train: cross-validate on all of train, the selection images included.
    let joined: (Vec<Vec<f32>>, Vec<usize>);
    let rows = if carved {
        joined = (
            train.x.iter().chain(&x.select.x).cloned().collect(),
            train.y.iter().chain(&x.select.y).copied().collect(),
        );
        Split {
            x: &joined.0,
            y: &joined.1,
        }
    } else {
        Split {
            x: &train.x,
            y: &train.y,
        }
    };
    let select = Split {
        x: &x.select.x,
        y: &x.select.y,
    };
    let (on, split, images) = if carved {
        (
            SelectOn::CrossValidation { folds: FOLDS },
            format!("{FOLDS}-fold CV on train"),
            rows.x.len(),
        )
    } else {
        (
            SelectOn::Holdout(select),
            ds.select_name().to_string(),
            x.select.y.len(),
        )
    };
    let fit = fit_linear_head(&rows, on, classes, cfg.seed, device);
    let report = super::fit::on_report(x, classes, |v| {
        evaluate_head(&fit.head, &Split { x: &v.x, y: &v.y }, classes, device)
    })?;
    Ok(LbfgsFit {
        fitted: Fitted {
            best_epoch: 0,
            best_val_accuracy: fit.accuracy,
            history: Vec::new(),
            stopped: Stopped::Completed,
        },
        head: fit.head,
        report,
        selected: Selected {
            split,
            source: ds.selection.clone(),
            images,
            accuracy: fit.accuracy,
            chose: format!("L2 strength C = {:.3}", fit.c),
        },
        trained_on: rows.x.len(),
    })
}
