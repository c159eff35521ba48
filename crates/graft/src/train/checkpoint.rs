//! What a run directory holds and how an interrupted run picks up: the initial files, each
//! epoch's checkpoints in crash-safe order, and loading them back for `--resume`.

use std::path::Path;

use burn::optim::{AdamWConfig, ModuleOptimizer};
use burn::prelude::*;
use graft_data::Dataset;
use graft_models::Network;
use graft_transfer::head::Head;
use graft_transfer::schedule::LoopState;
use graft_transfer::train::{Checkpoint, HeadConfig, Resume};
use graft_weights::{KeyMap, LoadPolicy, load_weights};

use crate::resume;
use crate::run_dir;
use crate::settings::LoadedModel;

/// What every run directory holds from the start: the resolved settings, the class list and the
/// split (so a generated split can be reused).
pub(crate) fn write_run_files(
    dir: &Path,
    config: &serde_json::Value,
    ds: &Dataset,
) -> anyhow::Result<()> {
    run_dir::write_atomic(
        &dir.join("config.json"),
        serde_json::to_string_pretty(config)?.as_bytes(),
    )?;
    run_dir::write_atomic(
        &dir.join("classes.json"),
        serde_json::to_string_pretty(&ds.classes)?.as_bytes(),
    )?;
    run_dir::write_atomic(&dir.join("split.csv"), split_csv(ds).as_bytes())
}

fn split_csv(ds: &Dataset) -> String {
    let mut s = String::from("path,label,split\n");
    for (samples, name) in [(&ds.train, "train"), (&ds.val, ds.val_name.as_str())] {
        for x in samples.iter() {
            s += &format!("{},{},{name}\n", x.path.display(), ds.classes[x.class]);
        }
    }
    s
}

/// Everything saved after an epoch, in crash-safe order: the metrics line (with the seconds
/// since the run started), the last (and, when best, the best) safetensors checkpoint via
/// `safetensors(which)`, then the resumable state via `burnpack(folder)`.
pub(crate) fn save_epoch<M>(
    dir: &Path,
    ck: &Checkpoint<'_, M>,
    elapsed_s: f64,
    safetensors: &dyn Fn(&str) -> anyhow::Result<()>,
    burnpack: &dyn Fn(&Path) -> anyhow::Result<()>,
) -> Result<(), String> {
    let mut line = serde_json::to_value(ck.record).map_err(|e| e.to_string())?;
    line["seconds"] = serde_json::json!(elapsed_s);
    run_dir::append_line(&dir.join("metrics.jsonl"), &line.to_string())
        .map_err(|e| e.to_string())?;
    safetensors("last").map_err(|e| e.to_string())?;
    if ck.is_best {
        safetensors("best").map_err(|e| e.to_string())?;
    }
    resume::save(dir, ck.state, ck.optim, burnpack).map_err(|e| e.to_string())?;
    interrupt_for_tests(ck.record.epoch);
    fail_for_tests(dir, ck.record.epoch)
}

/// Returns the seconds the kept epochs had run for, so a resumed run's clock continues.
pub(crate) fn keep_metrics_before(path: &Path, next_epoch: usize) -> anyhow::Result<f64> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(0.0);
    };
    let mut seconds = 0.0f64;
    let kept: String = text
        .lines()
        .filter(|l| {
            let v = serde_json::from_str::<serde_json::Value>(l).ok();
            let keep = v
                .as_ref()
                .and_then(|v| v.get("epoch").and_then(|e| e.as_u64()))
                .is_some_and(|e| (e as usize) < next_epoch);
            if keep && let Some(s) = v.and_then(|v| v.get("seconds").and_then(|s| s.as_f64())) {
                seconds = seconds.max(s);
            }
            keep
        })
        .map(|l| format!("{l}\n"))
        .collect();
    run_dir::write_atomic(path, kept.as_bytes())?;
    Ok(seconds)
}

/// Test hook: `GRAFT_TEST_FAIL_AFTER_EPOCH=N:SUFFIX` makes training fail after epoch N of the
/// runs whose directory name ends with SUFFIX (how `compare` is tested with a strategy that
/// fails mid-way).
fn fail_for_tests(dir: &Path, epoch: usize) -> Result<(), String> {
    let Ok(spec) = std::env::var("GRAFT_TEST_FAIL_AFTER_EPOCH") else {
        return Ok(());
    };
    let Some((n, suffix)) = spec.split_once(':') else {
        return Ok(());
    };
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
    if n.parse::<usize>().ok() == Some(epoch) && name.is_some_and(|d| d.ends_with(suffix)) {
        return Err(format!("failure injected after epoch {epoch} (test hook)"));
    }
    Ok(())
}

/// Test hook: `GRAFT_TEST_INTERRUPT_AFTER_EPOCH=N` kills the process after epoch N is saved, as
/// Ctrl-C or `kill` would, so the resume tests need no timing.
fn interrupt_for_tests(epoch: usize) {
    if std::env::var("GRAFT_TEST_INTERRUPT_AFTER_EPOCH")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        == Some(epoch)
    {
        std::process::exit(130);
    }
}

/// The new head as the last epoch left it (burnpack) and as its best epoch saved it.
fn load_heads(
    dir: &Path,
    sub: &Path,
    dim: usize,
    classes: usize,
    cfg: &HeadConfig,
    device: &Device,
) -> anyhow::Result<(Head, Head)> {
    let mut last = cfg.head.shell(dim, classes, device);
    resume::load_module(&mut last, &sub.join("head.bpk"))?;
    let mut best = cfg.head.shell(dim, classes, device);
    load_weights(
        &mut best,
        &dir.join("best.safetensors"),
        &KeyMap::default(),
        &LoadPolicy::strict(),
        "best head",
    )?;
    Ok((last, best))
}

/// The optimizer saved as `sub/optimN.bpk`.
fn load_adamw(sub: &Path, n: usize, cfg: &HeadConfig) -> anyhow::Result<ModuleOptimizer> {
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
) -> anyhow::Result<Resume<Head>> {
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
) -> anyhow::Result<Resume<(Network, Head)>> {
    let device = &model.device;
    let mut net = model.spec.arch.init(device);
    resume::load_module(&mut net, &sub.join("backbone.bpk"))?;
    let (head, best_head) = load_heads(dir, sub, model.net.embed_dim(), classes, cfg, device)?;
    let (best_net, _) = model.spec.arch.load(
        &dir.join("best_backbone.safetensors"),
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
