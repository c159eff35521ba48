//! `export`: a trained run (or a pretrained model as it is) as a file another runtime loads.
//! ONNX (opset 17, through graft-export) for ONNX Runtime, TensorRT, OpenVINO and
//! onnxruntime-web; or safetensors under the original checkpoint's names with its `model.json`,
//! for PyTorch's `load_state_dict(strict=True)`.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use burn::nn::Linear;
use graft_models::{Network, imagenet};
use graft_spec::{HeadKind, ModelCard, Preprocessing, Strategy};

use crate::artifact::{TrainedModel, network_state, safetensors_bytes, state_dict};
use crate::error::{Result, RunError};
use crate::observer::{Observer, ObserverExt};
use crate::pretrained::{LoadedModel, load_pretrained};
use crate::spec::ModelChoice;

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

/// What to export: a run directory's trained model, or a pretrained model as it is.
#[derive(Clone, Debug)]
pub enum Source {
    Run(PathBuf),
    Pretrained(ModelChoice),
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

/// A model to export: its description, network and classifier.
struct Model {
    card: ModelCard,
    net: Network,
    /// The trained head; `None` for a pretrained model, whose own classifier is used.
    head: Option<graft_transfer::head::Head>,
}

impl Model {
    fn classifier(&self) -> Vec<&Linear> {
        match &self.head {
            Some(h) => h.layers.iter().collect(),
            None => self.net.classifier_layers(),
        }
    }
}

fn pretrained_card(m: &LoadedModel) -> ModelCard {
    let p = &m.preprocess;
    let layers = m.net.classifier_layers();
    let head = match layers.as_slice() {
        [_] => HeadKind::Linear,
        [first, ..] => HeadKind::Mlp {
            hidden: first.weight.dims()[1],
        },
        [] => HeadKind::Linear,
    };
    ModelCard {
        format: graft_spec::FORMAT,
        graft_version: graft_spec::VERSION.to_string(),
        architecture: m.spec.name.to_string(),
        classes: imagenet::classes().iter().map(|c| c.name.clone()).collect(),
        head,
        classifier: m.spec.arch.classifier_name().to_string(),
        input_size: p.crop,
        preprocessing: Preprocessing {
            resize: p.resize,
            crop: p.crop,
            mean: p.mean,
            std: p.std,
        },
        strategy: Strategy::Pretrained,
        val_accuracy: None,
        pretrained_sha256: m.weights_sha256.clone(),
    }
}

fn load(source: &Source, obs: &mut dyn Observer) -> Result<Model> {
    match source {
        Source::Run(dir) => {
            let t = TrainedModel::load(dir)?;
            Ok(Model {
                card: t.card,
                net: t.net,
                head: Some(t.head),
            })
        }
        Source::Pretrained(choice) => {
            let m = load_pretrained(choice, obs)?;
            Ok(Model {
                card: pretrained_card(&m),
                net: m.net,
                head: None,
            })
        }
    }
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
    let model = load(&spec.source, obs)?;
    let card = &model.card;
    if let Some(dir) = spec.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(RunError::io(dir))?;
    }
    let files = match spec.format {
        Format::Onnx => {
            let size = card.input_size as usize;
            let meta = onnx_metadata(card, spec.probabilities)?;
            let bytes = graft_export::onnx_bytes(
                &model.net,
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
            let spec_model = graft_models::find_model(&card.architecture)?;
            let tensors = match &model.head {
                Some(h) => state_dict(&spec_model.arch, &model.net, h)?,
                None => network_state(&spec_model.arch, &model.net, true)?,
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
