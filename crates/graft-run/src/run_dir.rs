//! The run directory: created without clobbering a user's files.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn_store::{BurnToPyTorchAdapter, ModuleSnapshot, SafetensorsStore};
use graft_spec::io::write_atomic_with;

use crate::ensure;
use crate::error::{Result, RunError};

/// `out` if given (refused when it exists and is not empty, unless `force`), else
/// `runs/<stem>`, numbered `-2`, `-3`, ... when taken.
pub fn create(out: Option<&Path>, default_stem: &str, force: bool) -> Result<PathBuf> {
    let dir = match out {
        Some(d) => {
            let taken = d
                .read_dir()
                .map(|mut r| r.next().is_some())
                .unwrap_or(false);
            ensure!(
                !taken || force,
                "{} exists and is not empty; choose another --out, or pass --force to write into it (graft replaces only its own files)",
                d.display()
            );
            d.to_path_buf()
        }
        None => {
            let base = PathBuf::from("runs").join(default_stem);
            (1..)
                .map(|i| {
                    if i == 1 {
                        base.clone()
                    } else {
                        PathBuf::from(format!("{}-{i}", base.display()))
                    }
                })
                .find(|p| !p.exists())
                .unwrap_or(base)
        }
    };
    std::fs::create_dir_all(&dir).map_err(RunError::io(&dir))?;
    Ok(dir)
}

/// Saves a module's tensors as safetensors in PyTorch's layout (a Linear weight is
/// `[out, in]`), atomically, with no metadata: the same tensors give the same bytes.
pub fn save_module<M: Module + ModuleSnapshot>(module: &M, path: &Path) -> Result<()> {
    write_atomic_with(path, |_, tmp| {
        let mut store = SafetensorsStore::from_file(tmp)
            .with_to_adapter(BurnToPyTorchAdapter)
            .skip_enum_variants(true)
            .clear_metadata()
            .overwrite(true);
        module
            .save_into(&mut store)
            .map_err(|e| RunError::Backend(format!("cannot save {}: {e}", path.display())))
    })
}

/// Makes the finished run in `from` the run in `to` as well (`auto` keeps the candidate it
/// trained in full rather than training it twice). Each of the run's files is copied
/// atomically and `result.json` goes last, pointing at `to`, so `to` holds a complete run only
/// once it is written; `from` stays as it was. Only top-level files are a finished run:
/// `resume/` is an unfinished one's state.
pub fn adopt(from: &Path, to: &Path) -> Result<graft_spec::RunResult> {
    let mut result = graft_spec::RunResult::read(from)?;
    let entries = std::fs::read_dir(from).map_err(RunError::io(from))?;
    for entry in entries {
        let entry = entry.map_err(RunError::io(from))?;
        let path = entry.path();
        if !path.is_file() || entry.file_name() == graft_spec::files::RESULT {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(RunError::io(&path))?;
        graft_spec::io::write_atomic(&to.join(entry.file_name()), &bytes)?;
    }
    result.run_dir = to.to_path_buf();
    result.write(to)?;
    Ok(result)
}
