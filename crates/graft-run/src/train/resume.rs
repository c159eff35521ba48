//! Checkpoints that make an interrupted run resumable: after every epoch the model(s) and
//! optimizer state go to `resume/epoch-N/` (burnpack, which keeps parameter ids so the optimizer
//! state matches them), then `resume/state.json` is replaced atomically to point at it. A run
//! killed at any moment resumes from the last epoch whose state.json was written.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn_store::{BurnpackStore, ModuleSnapshot};
use graft_spec::io::{read_json, write_json};
use graft_transfer::schedule::LoopState;
use serde::{Deserialize, Serialize};

use crate::error::{Context, Result, RunError};

#[derive(Serialize, Deserialize)]
struct Pointer {
    state: LoopState,
    folder: String,
}

/// The folder of a run's resumable state (and its best checkpoint so far).
pub fn root(dir: &Path) -> PathBuf {
    dir.join("resume")
}

pub fn save_module<M: Module + ModuleSnapshot>(module: &M, path: &Path) -> Result<()> {
    let mut store = BurnpackStore::from_file(path).overwrite(true);
    module
        .save_into(&mut store)
        .map_err(|e| RunError::Backend(format!("cannot save {}: {e}", path.display())))
}

pub fn load_module<M: Module + ModuleSnapshot>(module: &mut M, path: &Path) -> Result<()> {
    let mut store = BurnpackStore::from_file(path);
    let result = module
        .load_from(&mut store)
        .map_err(|e| RunError::Backend(format!("cannot load {}: {e}", path.display())))?;
    if !(result.missing.is_empty() && result.errors.is_empty()) {
        return Err(RunError::Invalid(format!(
            "{}: does not fit the model:\n{result}",
            path.display()
        )));
    }
    Ok(())
}

/// Saves one epoch's resumable state; `save_models(folder)` writes the model files into it.
pub fn save(
    dir: &Path,
    state: &LoopState,
    optim: &[&ModuleOptimizer],
    save_models: &dyn Fn(&Path) -> Result<()>,
) -> Result<()> {
    let root = root(dir);
    let folder = format!("epoch-{}", state.next_epoch);
    let sub = root.join(&folder);
    std::fs::create_dir_all(&sub).map_err(RunError::io(&sub))?;
    save_models(&sub)?;
    for (i, o) in optim.iter().enumerate() {
        let p = sub.join(format!("optim{i}.bpk"));
        o.save(&p)
            .map_err(|e| RunError::Backend(format!("cannot save {}: {e:?}", p.display())))?;
    }
    write_json(
        &root.join("state.json"),
        &Pointer {
            state: state.clone(),
            folder: folder.clone(),
        },
    )?;
    // Older epochs are no longer pointed to.
    for entry in std::fs::read_dir(&root)
        .map_err(RunError::io(&root))?
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("epoch-") && name != folder {
            std::fs::remove_dir_all(entry.path()).map_err(RunError::io(&entry.path()))?;
        }
    }
    Ok(())
}

/// The last saved loop state and the folder holding its files.
pub fn load(dir: &Path) -> Result<(LoopState, PathBuf)> {
    let path = root(dir).join("state.json");
    if !path.is_file() {
        return Err(RunError::Invalid(format!(
            "{} has no completed epoch to resume from ({})",
            dir.display(),
            path.display()
        )));
    }
    let p: Pointer = read_json(&path).context(|| "cannot resume".to_string())?;
    Ok((p.state, root(dir).join(p.folder)))
}

pub fn load_optim(optim: ModuleOptimizer, path: &Path) -> Result<ModuleOptimizer> {
    optim.load(path).map_err(|e| {
        RunError::Backend(format!(
            "cannot load optimizer state {}: {e:?}",
            path.display()
        ))
    })
}
