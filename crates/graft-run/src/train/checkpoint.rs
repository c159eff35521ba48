//! What a run directory holds and how an interrupted run picks up: the initial files, each
//! epoch's checkpoints in crash-safe order, and loading them back for `--resume`.

use std::path::{Path, PathBuf};

use burn::optim::{AdamWConfig, ModuleOptimizer};
use burn::prelude::*;
use graft_data::Dataset;
use graft_models::Network;
use graft_spec::files::METRICS;
use graft_spec::io::{append_line, write_atomic, write_json};
use graft_spec::{MetricsLine, RunConfig};
use graft_transfer::head::{BuildHead, Head};
use graft_transfer::schedule::LoopState;
use graft_transfer::train::{CallbackError, Checkpoint, HeadConfig, Resume};
use graft_weights::{KeyMap, LoadPolicy, load_weights};

use super::resume;
use crate::error::{Result, RunError};
use crate::observer::Observer;
use crate::pretrained::LoadedModel;
use crate::run_dir;

/// What every run directory holds from the start: the resolved settings, the class list and the
/// split (so a generated split can be reused).
pub(crate) fn write_run_files(dir: &Path, config: &RunConfig, ds: &Dataset) -> Result<()> {
    config.write(dir)?;
    write_json(&dir.join("classes.json"), &ds.classes)?;
    write_atomic(&dir.join("split.csv"), split_csv(ds).as_bytes())?;
    Ok(())
}

/// Every image with the split it was used in: `train`, the selection split (`select`, or the
/// dataset's `val`) and the reported one. Under --select-on-eval the two are the same images,
/// written once.
fn split_csv(ds: &Dataset) -> String {
    let mut s = String::from("path,label,split\n");
    for (samples, name) in [
        (&ds.train[..], "train"),
        (ds.select_apart(), ds.select_name()),
        (&ds.val[..], ds.val_name.as_str()),
    ] {
        for x in samples.iter() {
            s += &format!("{},{},{name}\n", x.path.display(), ds.classes[x.class]);
        }
    }
    s
}

/// The best checkpoint so far: the head, and the backbone when the run trains one.
pub(crate) fn best_head(dir: &Path) -> PathBuf {
    resume::root(dir).join("best_head.safetensors")
}

pub(crate) fn best_backbone(dir: &Path) -> PathBuf {
    resume::root(dir).join("best_backbone.safetensors")
}

/// Everything saved after an epoch, in crash-safe order: the metrics line (with the seconds
/// since the run started), the best checkpoint when it improved (`save_best(dir)`), the
/// resumable state (`burnpack(folder)`), and only then the observer hears of it.
pub(crate) fn save_epoch<M>(
    dir: &Path,
    ck: &Checkpoint<'_, M>,
    elapsed_s: f64,
    save_best: &dyn Fn() -> Result<()>,
    burnpack: &dyn Fn(&Path) -> Result<()>,
    obs: &mut dyn Observer,
) -> Result<(), CallbackError> {
    let line = MetricsLine {
        record: ck.record.clone(),
        seconds: elapsed_s,
    };
    append_line(&dir.join(METRICS), &serde_json::to_string(&line)?)?;
    std::fs::create_dir_all(resume::root(dir)).map_err(RunError::io(&resume::root(dir)))?;
    if ck.is_best {
        save_best()?;
    }
    resume::save(dir, ck.state, ck.optim, burnpack)?;
    obs.epoch_saved(dir, ck.record, ck.is_best)
}

/// Keeps the metrics lines of epochs before `next_epoch` (a resumed run writes the rest again)
/// and returns how many there are and the seconds they had run for, so a resumed run's clock
/// and account continue.
pub(crate) fn keep_metrics_before(path: &Path, next_epoch: usize) -> Result<(usize, f64)> {
    let kept: Vec<MetricsLine> = MetricsLine::read_all(path)?
        .into_iter()
        .filter(|l| l.record.epoch < next_epoch)
        .collect();
    let seconds = kept.iter().map(|l| l.seconds).fold(0.0, f64::max);
    let mut text = String::new();
    for l in &kept {
        text += &serde_json::to_string(l).map_err(|e| RunError::Backend(e.to_string()))?;
        text.push('\n');
    }
    write_atomic(path, text.as_bytes())?;
    Ok((kept.len(), seconds))
}

/// The new head as the last epoch left it (burnpack) and as its best epoch saved it.
fn load_heads(
    dir: &Path,
    sub: &Path,
    dim: usize,
    classes: usize,
    cfg: &HeadConfig,
    device: &Device,
) -> Result<(Head, Head)> {
    let mut last = cfg.head.shell(dim, classes, device);
    resume::load_module(&mut last, &sub.join("head.bpk"))?;
    let mut best = cfg.head.shell(dim, classes, device);
    load_weights(
        &mut best,
        &best_head(dir),
        &KeyMap::default(),
        &LoadPolicy::strict(),
        "best head",
    )?;
    Ok((last, best))
}

/// The optimizer saved as `sub/optimN.bpk`.
fn load_adamw(sub: &Path, n: usize, cfg: &HeadConfig) -> Result<ModuleOptimizer> {
    resume::load_optim(
        AdamWConfig::new()
            .with_weight_decay(cfg.weight_decay)
            .init(),
        &sub.join(format!("optim{n}.bpk")),
    )
}

pub(crate) fn resume_head(
    dir: &Path,
    sub: &Path,
    state: LoopState,
    dim: usize,
    classes: usize,
    cfg: &HeadConfig,
    device: &Device,
) -> Result<Resume<Head>> {
    let (last, best) = load_heads(dir, sub, dim, classes, cfg, device)?;
    Ok(Resume {
        state,
        last,
        best,
        optim: vec![load_adamw(sub, 0, cfg)?],
    })
}

pub(crate) fn resume_finetune(
    dir: &Path,
    sub: &Path,
    state: LoopState,
    model: &LoadedModel,
    classes: usize,
    cfg: &HeadConfig,
) -> Result<Resume<(Network, Head)>> {
    let device = &model.device;
    let mut net = model.spec.arch.init(device);
    resume::load_module(&mut net, &sub.join("backbone.bpk"))?;
    let (head, best_head) = load_heads(dir, sub, model.net.embed_dim(), classes, cfg, device)?;
    let (best_net, _) = model.spec.arch.load(
        &best_backbone(dir),
        &LoadPolicy::strict(),
        "best backbone",
        device,
    )?;
    Ok(Resume {
        state,
        last: (net, head),
        best: (best_net, best_head),
        // The backbone's optimizer, then the head's.
        optim: vec![load_adamw(sub, 0, cfg)?, load_adamw(sub, 1, cfg)?],
    })
}

/// Saves a module as the best checkpoint (safetensors, graft's module paths).
pub(crate) fn save_best<M: burn::module::Module + burn_store::ModuleSnapshot>(
    module: &M,
    path: &Path,
) -> Result<()> {
    run_dir::save_module(module, path)
}
