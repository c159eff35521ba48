//! What a .pth pickle may name. A pickle is a program: its GLOBAL and REDUCE opcodes call
//! any Python function (`os.system`, `builtins.eval`). graft's reader is Rust and never calls
//! one, but a file that asks for one is hostile or is not a checkpoint, so it is refused with
//! the name, as `torch.load(weights_only=True)` refuses globals outside its allow-list.

use std::path::Path;

use burn_store::pytorch_reader::{PickleValue, PytorchReader};

use crate::{WeightFormat, WeightsError};

/// Python types a checkpoint holds as data: tensors, storages, dtypes and devices (`torch.*`),
/// ordered dicts, wide ints and the NumPy scalars that training loops save as metrics.
fn allowed(name: &str) -> bool {
    name.starts_with("torch.")
        || name.starts_with("collections.")
        || matches!(
            name,
            "int"
                | "numpy.core.multiarray.scalar"
                | "numpy._core.multiarray.scalar"
                | "numpy.dtype"
        )
}

/// The first global the pickle in `path` names outside the allow-list, with where it is.
fn first_refused(value: &PickleValue, at: &str) -> Option<(String, String)> {
    match value {
        PickleValue::Unsupported(name) if !allowed(name) => Some((name.clone(), at.to_string())),
        PickleValue::List(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| first_refused(v, &format!("{at}[{i}]"))),
        PickleValue::Dict(map) => {
            let mut keys: Vec<_> = map.keys().collect();
            keys.sort();
            keys.into_iter().find_map(|k| {
                let here = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                first_refused(&map[k], &here)
            })
        }
        _ => None,
    }
}

/// Opens a PyTorch checkpoint, checked before any tensor is read: its pickle names no code outside the
/// allow-list, and no tensor is larger than the file. `torch.save` stores tensors
/// uncompressed, so a tensor larger than its file comes from a compressed entry inflating
/// past it (a zip bomb) or from a forged header, and reading it would allocate without bound.
pub(crate) fn check_pytorch(
    path: &Path,
    format: WeightFormat,
) -> Result<PytorchReader, WeightsError> {
    let refuse = |detail: String| WeightsError::Read {
        path: path.to_path_buf(),
        format: format.name(),
        detail,
    };
    let value = PytorchReader::read_pickle_data(path, None).map_err(|e| refuse(e.to_string()))?;
    if let Some((name, at)) = first_refused(&value, "") {
        return Err(refuse(format!(
            "its pickle calls the Python global `{name}`{}, which is not tensor data; graft \
                 never runs code from a weight file and refuses it (as torch.load(weights_only=True) \
                 does). Save the weights with torch.save(model.state_dict(), ...) or as safetensors",
            if at.is_empty() {
                String::new()
            } else {
                format!(" at `{at}`")
            }
        )));
    }
    let file_len = std::fs::metadata(path)
        .map_err(|source| WeightsError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .len();
    let reader = PytorchReader::new(path).map_err(|e| refuse(e.to_string()))?;
    for (name, tensor) in reader.tensors() {
        let bytes = tensor
            .shape()
            .iter()
            .try_fold(tensor.dtype().size() as u64, |n, &d| {
                n.checked_mul(d as u64)
            });
        if bytes.is_none_or(|b| b > file_len) {
            return Err(refuse(format!(
                "tensor `{name}` of shape {:?} would take more bytes than the whole file \
                 ({file_len}): a compressed entry inflating past its file (a zip bomb) or a \
                 forged header",
                tensor.shape()
            )));
        }
    }
    Ok(reader)
}
