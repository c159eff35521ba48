//! Checkpoints that make an interrupted run resumable: after every epoch the model(s) and
//! optimizer state go to `resume/epoch-N/` (burnpack, which keeps parameter ids so the optimizer
//! state matches them), then `resume/state.json` is replaced atomically to point at it. A run
//! killed at any moment resumes from the last epoch whose state.json was written.

use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn_store::{BurnpackStore, ModuleSnapshot};
use graft_transfer::schedule::LoopState;
use serde::{Deserialize, Serialize};

use crate::run_dir;

#[derive(Serialize, Deserialize)]
struct Pointer {
    state: LoopState,
    folder: String,
}

pub fn save_module<M: Module + ModuleSnapshot>(module: &M, path: &Path) -> anyhow::Result<()> {
    let mut store = BurnpackStore::from_file(path).overwrite(true);
    module
        .save_into(&mut store)
        .map_err(|e| anyhow::anyhow!("cannot save {}: {e}", path.display()))
}

pub fn load_module<M: Module + ModuleSnapshot>(module: &mut M, path: &Path) -> anyhow::Result<()> {
    let mut store = BurnpackStore::from_file(path);
    let result = module
        .load_from(&mut store)
        .map_err(|e| anyhow::anyhow!("cannot load {}: {e}", path.display()))?;
    anyhow::ensure!(
        result.missing.is_empty() && result.errors.is_empty(),
        "{}: does not fit the model:\n{result}",
        path.display()
    );
    Ok(())
}

/// Saves one epoch's resumable state; `save_models(folder)` writes the model files into it.
pub fn save(
    dir: &Path,
    state: &LoopState,
    optim: &[&ModuleOptimizer],
    save_models: &dyn Fn(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let root = dir.join("resume");
    let folder = format!("epoch-{}", state.next_epoch);
    let sub = root.join(&folder);
    std::fs::create_dir_all(&sub).with_context(|| format!("cannot create {}", sub.display()))?;
    save_models(&sub)?;
    for (i, o) in optim.iter().enumerate() {
        let p = sub.join(format!("optim{i}.bpk"));
        o.save(&p)
            .map_err(|e| anyhow::anyhow!("cannot save {}: {e:?}", p.display()))?;
    }
    let pointer = serde_json::to_vec_pretty(&Pointer {
        state: state.clone(),
        folder: folder.clone(),
    })?;
    run_dir::write_atomic(&root.join("state.json"), &pointer)?;
    // Older epochs are no longer pointed to.
    for entry in std::fs::read_dir(&root)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("epoch-") && name != folder {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    Ok(())
}

/// The last saved loop state and the folder holding its files.
pub fn load(dir: &Path) -> anyhow::Result<(LoopState, PathBuf)> {
    let path = dir.join("resume").join("state.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "{} has no completed epoch to resume from ({})",
            dir.display(),
            path.display()
        )
    })?;
    let p: Pointer =
        serde_json::from_str(&text).with_context(|| format!("{}: invalid", path.display()))?;
    Ok((p.state, dir.join("resume").join(p.folder)))
}

pub fn load_optim(optim: ModuleOptimizer, path: &Path) -> anyhow::Result<ModuleOptimizer> {
    optim
        .load(path)
        .map_err(|e| anyhow::anyhow!("cannot load optimizer state {}: {e:?}", path.display()))
}
