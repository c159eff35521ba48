//! The run directory: created without clobbering a user's files, written atomically.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::module::Module;
use burn_store::{BurnToPyTorchAdapter, ModuleSnapshot, SafetensorsStore};

/// `out` if given (refused when it exists and is not empty, unless `force`), else
/// `runs/<stem>`, numbered `-2`, `-3`, ... when taken.
pub fn create(out: Option<&Path>, default_stem: &str, force: bool) -> anyhow::Result<PathBuf> {
    let dir = match out {
        Some(d) => {
            let taken = d
                .read_dir()
                .map(|mut r| r.next().is_some())
                .unwrap_or(false);
            anyhow::ensure!(
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
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Saves a module's tensors as safetensors in PyTorch's layout (a Linear weight is
/// `[out, in]`), so PyTorch's `load_state_dict` reads them too; atomically.
pub fn save_module<M: Module + ModuleSnapshot>(module: &M, path: &Path) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .suffix(".safetensors")
        .tempfile_in(dir)?;
    let mut store = SafetensorsStore::from_file(tmp.path())
        .with_to_adapter(BurnToPyTorchAdapter)
        .skip_enum_variants(true)
        .overwrite(true);
    module
        .save_into(&mut store)
        .map_err(|e| anyhow::anyhow!("cannot save {}: {e}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Appends one JSON line (metrics logs survive an interruption line by line).
pub fn append_line(path: &Path, line: &str) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot append to {}", path.display()))?;
    writeln!(f, "{line}")?;
    Ok(())
}
