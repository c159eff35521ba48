use std::io::Read;
use std::path::Path;

use burn::module::Module;
use burn_store::{ModuleSnapshot, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore};

use crate::{KeyMap, LoadPolicy, LoadReport, WeightsError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightFormat {
    /// torch.save since 1.6: a zip archive.
    PytorchZip,
    /// torch.save before 1.6 (or `_use_new_zipfile_serialization=False`): pickles then storages.
    PytorchLegacy,
    Safetensors,
}

impl WeightFormat {
    pub fn name(self) -> &'static str {
        match self {
            Self::PytorchZip => "a PyTorch checkpoint (zip)",
            Self::PytorchLegacy => "a PyTorch checkpoint (legacy)",
            Self::Safetensors => "safetensors",
        }
    }
}

/// Tells the format from the first bytes, not the extension: users rename files.
pub fn detect_format(path: &Path) -> Result<WeightFormat, WeightsError> {
    let io = |source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut head = [0u8; 9];
    let mut file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => WeightsError::NotFound {
            path: path.to_path_buf(),
            hint: String::new(),
        },
        _ => io(e),
    })?;
    let n = file.read(&mut head).map_err(io)?;
    let unknown = |detail: &str| WeightsError::UnknownFormat {
        path: path.to_path_buf(),
        detail: detail.into(),
    };
    if n == 0 {
        return Err(unknown("the file is empty"));
    }
    if head.starts_with(b"PK\x03\x04") {
        return Ok(WeightFormat::PytorchZip);
    }
    // safetensors: a little-endian u64 header length, then the JSON header. Checked before the
    // pickle test because that length's first byte can be 0x80 too.
    if n >= 9 && head[8] == b'{' {
        return Ok(WeightFormat::Safetensors);
    }
    // Legacy torch.save begins with a pickled magic number (protocol 2: 0x80 0x02).
    if head[0] == 0x80 {
        return Ok(WeightFormat::PytorchLegacy);
    }
    Err(unknown("unrecognised header bytes"))
}

/// Loads `path` into `module` through `map`; fails with the report's names when `policy` does
/// not accept what happened. The module is only ever left with file values for tensors whose
/// names and shapes matched.
pub fn load_weights<M: Module + ModuleSnapshot>(
    module: &mut M,
    path: &Path,
    map: &KeyMap,
    policy: &LoadPolicy,
    model_name: &str,
) -> Result<LoadReport, WeightsError> {
    let format = detect_format(path)?;
    let read_err = |detail: String| WeightsError::Read {
        path: path.to_path_buf(),
        format: format.name(),
        detail,
    };
    let result = match format {
        WeightFormat::PytorchZip | WeightFormat::PytorchLegacy => {
            crate::pickle::check_pytorch(path, format)?;
            let mut store = PytorchStore::from_file(path)
                .remap(map.remapper()?)
                .map_indices_contiguous(false)
                .allow_partial(true)
                .validate(false);
            module
                .load_from(&mut store)
                .map_err(|e| read_err(e.to_string()))?
        }
        WeightFormat::Safetensors => {
            let mut store = SafetensorsStore::from_file(path)
                .with_from_adapter(PyTorchToBurnAdapter)
                .remap(map.remapper()?)
                .allow_partial(true)
                .validate(false);
            module
                .load_from(&mut store)
                .map_err(|e| read_err(e.to_string()))?
        }
    };
    let report = LoadReport::from_apply(result, policy);
    let violations = report.violations(policy);
    if !violations.is_clean() {
        return Err(WeightsError::Incompatible {
            path: path.to_path_buf(),
            model: model_name.to_string(),
            report: Box::new(violations),
        });
    }
    Ok(report)
}
