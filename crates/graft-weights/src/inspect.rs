//! Reading every tensor of a weight file, names, shapes and bytes, without a model: what
//! `graft weights inspect` prints, and the whole of what a hostile file can reach in the
//! parsers (the fuzz targets call this).

use std::path::Path;

use safetensors::SafeTensors;

use crate::{WeightFormat, WeightsError, detect_format};

/// One tensor as the file stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<usize>,
    pub bytes: usize,
}

/// Every tensor in `path`, sorted by name; each one's data is read (and its checksum checked
/// where the container has one), so a file that passes is readable end to end.
pub fn inspect(path: &Path) -> Result<Vec<TensorInfo>, WeightsError> {
    let format = detect_format(path)?;
    let read_err = |detail: String| WeightsError::Read {
        path: path.to_path_buf(),
        format: format.name(),
        detail,
    };
    let mut out = match format {
        WeightFormat::PytorchZip | WeightFormat::PytorchLegacy => {
            let reader = crate::pickle::check_pytorch(path, format)?;
            let mut out = Vec::with_capacity(reader.len());
            for (name, tensor) in reader.tensors() {
                let data = tensor.read().map_err(|e| read_err(e.to_string()))?;
                out.push(TensorInfo {
                    name: name.clone(),
                    dtype: format!("{:?}", tensor.dtype()),
                    shape: tensor.shape().to_vec(),
                    bytes: data.len(),
                });
            }
            out
        }
        WeightFormat::Safetensors => {
            let bytes = std::fs::read(path).map_err(|source| WeightsError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            let file = SafeTensors::deserialize(&bytes).map_err(|e| read_err(e.to_string()))?;
            file.tensors()
                .into_iter()
                .map(|(name, view)| TensorInfo {
                    name,
                    dtype: format!("{:?}", view.dtype()),
                    shape: view.shape().to_vec(),
                    bytes: view.data().len(),
                })
                .collect()
        }
    };
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/models")
            .join(name)
    }

    #[test]
    fn all_three_formats_of_one_fixture_hold_the_same_tensors() -> Result<(), WeightsError> {
        let zip = inspect(&fixture("resnet18_tiny.pth"))?;
        let legacy = inspect(&fixture("resnet18_tiny.legacy.pth"))?;
        let safetensors = inspect(&fixture("resnet18_tiny.safetensors"))?;
        assert!(!zip.is_empty());
        assert_eq!(zip, legacy);
        let shapes = |v: &[TensorInfo]| -> Vec<(String, Vec<usize>)> {
            v.iter()
                .map(|t| (t.name.clone(), t.shape.clone()))
                .collect()
        };
        assert_eq!(shapes(&zip), shapes(&safetensors));
        Ok(())
    }
}
