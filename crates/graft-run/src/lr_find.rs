//! `graft lr-find`: the learning-rate range test (`graft_spec::lr_find`) on a strategy's
//! trainable part, over the training images' cached features: the same frozen part, batch,
//! views, loss and optimizer as `graft train`, so the suggested rate is one for `--lr`. The
//! selection and reported splits are not read. Writes `lr_find.json` and `lr_find.svg`.

use std::path::PathBuf;
use std::time::Instant;

use graft_spec::lr_find::{self, LrFind, LrRange};
use graft_spec::{HeadSolver, Strategy};
use graft_transfer::finetune::{FinetuneConfig, groups_lr_find};
use graft_transfer::train::{Split, head_lr_find};

use crate::error::{Context, Result};
use crate::observer::{Event, Observer, ObserverExt};
use crate::pretrained::load_pretrained;
use crate::spec::RunSpec;
use crate::train::{self, shape_at};
use crate::{ensure, train::feature_cache};

/// What the test found, and where it was written.
pub struct LrFound {
    pub file: LrFind,
    pub dir: PathBuf,
    /// The head's solver has no learning rate (L-BFGS): the curve is the AdamW head's.
    pub solver_note: Option<String>,
    /// Training images that could not be read (each reported to the observer); the curve was
    /// run without them, and the CLI exits 1, as `graft train` does.
    pub unreadable: usize,
}

/// Runs the range test for `spec`'s strategy into `spec.out` (default:
/// `runs/<dataset>-<model>-<strategy>-lr-find`).
pub fn lr_find(spec: &RunSpec, range: LrRange, obs: &mut dyn Observer) -> Result<LrFound> {
    ensure!(
        spec.strategy != Strategy::Pretrained,
        "lr-find needs a strategy that trains (head, partial:N or scratch), not pretrained"
    );
    range.check().map_err(crate::RunError::Invalid)?;
    ensure!(
        !spec.select_on_eval,
        "lr-find takes no decision on any split (it reads only the training images), so --select-on-eval has nothing to change"
    );
    let started = Instant::now();
    let model = load_pretrained(&spec.model, obs)?;
    let what = format!("{}-lr-find", spec.strategy);
    let run = train::prepare_as(spec, model, &what, obs)?;
    let cache = feature_cache(&run.model.home);
    let upto = run.cached_upto();
    // The training views only, under the keys `graft train` uses: its run then starts warm.
    let train_views = train::train_features(&run, &cache, upto, obs);
    let first = train_views.first();
    let failed = first.map_or(&[][..], |v| &v.failed[..]);
    train::extract::report_unreadable(failed, obs);
    ensure!(
        failed.is_empty() || !run.spec.strict,
        "{} training images could not be read and --strict is set",
        failed.len()
    );
    let unreadable = failed.len();
    let cfg = graft_spec::FitConfig {
        batch_size: run.spec.train_batch(upto.is_some()),
        ..run.spec.fit.clone()
    };
    let backbone_lr_scale = run.backbone_lr_scale();
    let classes = run.ds.classes.len();
    let model = &run.model;
    obs.begin("lr-find", range.steps as u64, "steps");
    let mut step = |_| obs.event(Event::Advance(1));
    let curve = match upto {
        None => {
            let splits: Vec<Split<'_>> = train_views
                .iter()
                .map(|t| Split { x: &t.x, y: &t.y })
                .collect();
            head_lr_find(&splits, classes, &cfg, range, &model.device, &mut step)
        }
        Some(p) => {
            let shape = shape_at(model, p);
            let acts = train::fit::activations(&train_views, shape);
            let ft = FinetuneConfig {
                head: cfg.clone(),
                backbone_lr_scale,
                head_init: None,
            };
            let net = model.net.clone();
            groups_lr_find(net, p, &acts, classes, &ft, range, &model.device, &mut step)
        }
    }
    .context(|| format!("the learning-rate range test in {}", run.dir.display()))?;
    obs.event(Event::End);
    let file = LrFind {
        format: lr_find::FORMAT,
        graft_version: graft_spec::VERSION.to_string(),
        model: model.spec.name.to_string(),
        data: run.spec.data.clone(),
        strategy: run.spec.strategy,
        backbone_lr_scale: if upto.is_some() {
            backbone_lr_scale
        } else {
            1.0
        },
        range,
        batch_size: cfg.batch_size,
        train_images: first.map_or(0, |v| v.x.len()),
        stopped: curve.stopped,
        suggestion: lr_find::suggest(&curve.points),
        points: curve.points,
        seconds: started.elapsed().as_secs_f64(),
    };
    let dir = run.dir.clone();
    graft_spec::io::write_json(&dir.join(lr_find::FILE), &file)?;
    let svg = graft_report::plot::lr_curve(&file);
    graft_spec::write_atomic(&dir.join(lr_find::PLOT), svg.as_bytes())?;
    let solver_note = (upto.is_none() && run.spec.fit.solver == HeadSolver::Lbfgs).then(|| {
        "the L-BFGS head has no learning rate; this curve is the AdamW head's (--head-solver adamw)"
            .to_string()
    });
    Ok(LrFound {
        file,
        dir,
        solver_note,
        unreadable,
    })
}
