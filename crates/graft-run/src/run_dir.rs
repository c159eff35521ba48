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
