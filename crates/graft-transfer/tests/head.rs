//! Head training on synthetic features: learns a separable problem, is reproducible, stops
//! on a non-finite loss without producing a model, and a resumed run's time budget counts the
//! epochs before it.

use graft_models::default_device;
use graft_transfer::schedule::LoopState;
use graft_transfer::train::{HeadConfig, Resume, Split, Stopped, TrainError, train_head};

fn blobs(n: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<usize>) {
    let mut state = seed;
    let mut rnd = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
    };
    let mut x = Vec::new();
    let mut y = Vec::new();
    for i in 0..n {
        let c = i % 3;
        let mut v: Vec<f32> = (0..8).map(|_| rnd()).collect();
        v[c] += 2.0;
        x.push(v);
        y.push(c);
    }
    (x, y)
}

fn run(cfg: &HeadConfig) -> Result<(f64, Vec<f64>), TrainError> {
    let (tx, ty) = blobs(90, 1);
    let (vx, vy) = blobs(30, 2);
    let mut saved = 0;
    let out = train_head(
        &[Split { x: &tx, y: &ty }],
        &Split { x: &vx, y: &vy },
        3,
        cfg,
        &default_device(),
        None,
        &mut |ck| {
            saved += usize::from(ck.is_best);
            Ok(())
        },
    )?;
    assert!(saved >= 1, "the best head was offered for saving");
    Ok((
        out.fit.best_val_accuracy,
        out.fit.history.iter().map(|r| r.train_loss).collect(),
    ))
}

#[test]
fn head_learns_a_separable_problem() {
    let cfg = HeadConfig {
        epochs: 20,
        lr: 1e-2,
        ..HeadConfig::default()
    };
    let (acc, losses) = run(&cfg).unwrap_or_else(|e| panic!("{e}"));
    assert!(acc > 0.95, "val accuracy {acc}, losses {losses:?}");
    assert!(losses.last() < losses.first(), "{losses:?}");
}

#[test]
fn same_seed_same_result() {
    let cfg = HeadConfig {
        epochs: 5,
        lr: 1e-2,
        seed: 3,
        ..HeadConfig::default()
    };
    let a = run(&cfg).unwrap_or_else(|e| panic!("{e}"));
    let b = run(&cfg).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a, b);
}

#[test]
fn non_finite_loss_stops_with_a_clear_message() {
    let cfg = HeadConfig {
        epochs: 5,
        lr: 1e30,
        warmup_epochs: 0,
        ..HeadConfig::default()
    };
    let err = run(&cfg).expect_err("must stop");
    assert!(matches!(err, TrainError::NonFinite { .. }), "{err}");
    assert!(
        err.to_string().contains("last good checkpoint is kept"),
        "{err}"
    );
}

/// The budget is the run's: each checkpoint carries the loop's seconds so far, and a run resumed
/// from one whose seconds already spend the budget starts no epoch (before, its budget began
/// again with the new process).
#[test]
fn a_resumed_runs_time_budget_counts_the_epochs_before_it() {
    let (tx, ty) = blobs(90, 1);
    let (vx, vy) = blobs(30, 2);
    let (train, val) = ([Split { x: &tx, y: &ty }], Split { x: &vx, y: &vy });
    let device = default_device();
    let cfg = HeadConfig {
        epochs: 6,
        lr: 1e-2,
        ..HeadConfig::default()
    };
    let mut saved: Vec<(LoopState, _)> = Vec::new();
    train_head(&train, &val, 3, &cfg, &device, None, &mut |ck| {
        saved.push((ck.state.clone(), ck.model.clone()));
        Ok(())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let seconds: Vec<f64> = saved.iter().map(|(s, _)| s.train_seconds).collect();
    assert!(seconds[0] > 0.0, "{seconds:?}");
    assert!(seconds.windows(2).all(|w| w[0] <= w[1]), "{seconds:?}");

    // Resumed after epoch 2, with the budget already spent by the epochs before.
    let (mut state, head) = saved[2].clone();
    state.train_seconds = 100.0;
    let budget = HeadConfig {
        time_budget_s: Some(10.0),
        ..cfg.clone()
    };
    let resume = Resume {
        state: state.clone(),
        last: head.clone(),
        best: head.clone(),
        optim: Vec::new(),
    };
    let out = train_head(&train, &val, 3, &budget, &device, Some(resume), &mut |_| {
        Ok(())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.fit.history.is_empty(), "{:?}", out.fit.history);
    assert_eq!(out.fit.stopped, Stopped::TimeBudget);

    // With the seconds of a state saved before they were kept (none), it trains on.
    state.train_seconds = 0.0;
    let resume = Resume {
        state,
        last: head.clone(),
        best: head,
        optim: Vec::new(),
    };
    let out = train_head(&train, &val, 3, &budget, &device, Some(resume), &mut |_| {
        Ok(())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.fit.history.len(), 3, "epochs 3, 4 and 5");
}
