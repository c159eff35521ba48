//! `export`: a trained run (or a pretrained model as it is) as a file another runtime loads.
//! ONNX (opset 17, through graft-export) for ONNX Runtime, TensorRT, OpenVINO and
//! onnxruntime-web; or safetensors under the original checkpoint's names with its `model.json`,
//! for PyTorch's `load_state_dict(strict=True)`.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use graft_spec::ModelCard;

use crate::artifact::{network_state, safetensors_bytes, state_dict};
use crate::error::{Result, RunError};
use crate::observer::{Observer, ObserverExt};
pub use crate::servable::{Servable, Source};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Onnx,
    Safetensors,
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "onnx" => Ok(Self::Onnx),
            "safetensors" => Ok(Self::Safetensors),
            other => Err(format!("unknown format {other:?}: use onnx or safetensors")),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ExportSpec {
    pub source: Source,
    pub format: Format,
    pub out: PathBuf,
    /// ONNX: end in a Softmax (probabilities) instead of logits.
    pub probabilities: bool,
}

/// What was written.
pub struct Exported {
    pub files: Vec<PathBuf>,
    pub card: ModelCard,
}

/// `metadata_props` of an exported ONNX file: what a user of the file needs to feed it and
/// read its output.
pub fn onnx_metadata(card: &ModelCard, probabilities: bool) -> Result<Vec<(String, String)>> {
    let json = |v: serde_json::Value| v.to_string();
    Ok(vec![
        ("graft_version".into(), card.graft_version.clone()),
        ("architecture".into(), card.architecture.clone()),
        ("strategy".into(), card.strategy.to_string()),
        ("classes".into(), json(serde_json::json!(card.classes))),
        (
            "input".into(),
            format!("float32 [batch, 3, {0}, {0}], RGB, NCHW", card.input_size),
        ),
        ("input_size".into(), card.input_size.to_string()),
        (
            "preprocessing".into(),
            json(
                serde_json::to_value(&card.preprocessing)
                    .map_err(|e| RunError::Backend(e.to_string()))?,
            ),
        ),
        (
            "output".into(),
            if probabilities {
                "probabilities"
            } else {
                "logits"
            }
            .into(),
        ),
        (
            "val_accuracy".into(),
            card.val_accuracy
                .map_or_else(String::new, |a| format!("{a}")),
        ),
    ])
}

/// Writes the export `spec` asks for; every file atomically.
pub fn export(spec: &ExportSpec, obs: &mut dyn Observer) -> Result<Exported> {
    let model = Servable::load(&spec.source, obs)?;
    let card = &model.card;
    if let Some(dir) = spec.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(RunError::io(dir))?;
    }
    let files = match spec.format {
        Format::Onnx => {
            let size = card.input_size as usize;
            let meta = onnx_metadata(card, spec.probabilities)?;
            let bytes = graft_export::onnx_bytes(
                &model.model.net,
                &model.classifier(),
                size,
                spec.probabilities,
                &meta,
            )
            .map_err(|e| RunError::Invalid(e.to_string()))?;
            graft_spec::write_atomic(&spec.out, &bytes)?;
            vec![spec.out.clone()]
        }
        Format::Safetensors => {
            let arch = &model.model.spec.arch;
            let tensors = match &model.head {
                Some(h) => state_dict(arch, &model.model.net, h)?,
                None => network_state(arch, &model.model.net, true)?,
            };
            graft_spec::write_atomic(&spec.out, &safetensors_bytes(&tensors)?)?;
            let json = card_path(&spec.out);
            graft_spec::io::write_json(&json, card)?;
            vec![spec.out.clone(), json]
        }
    };
    for f in &files {
        obs.log(format!("wrote {}", f.display()));
    }
    Ok(Exported {
        files,
        card: model.card,
    })
}

/// `model.safetensors` -> `model.json`, beside it.
pub fn card_path(weights: &Path) -> PathBuf {
    weights.with_extension("json")
}
