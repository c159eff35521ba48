//! A trained model as one self-contained artifact: `model.safetensors` holds the whole network
//! and its new head under the original checkpoint's tensor names (torchvision's
//! `layer3.1.conv2.weight`, efficientnet_pytorch's `_blocks.3._bn1.weight`), so PyTorch's
//! `load_state_dict(strict=True)` reads it into the reference model with the new class count;
//! `model.json` says what it is. Nothing else is needed: not the pretrained weights file, not
//! the run's other files. The bytes depend on the tensors only (sorted names, no timestamps),
//! so the same training gives the same file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn_store::{BurnToPyTorchAdapter, ModuleSnapshot};
use graft_data::Preprocess;
use graft_models::{Arch, ModelSpec, Network, default_device, find_model};
use graft_spec::files::MODEL_WEIGHTS;
use graft_spec::{HeadKind, ModelCard, Preprocessing, RunConfig, Strategy};
use graft_transfer::head::{BuildHead, Head};
use graft_weights::{KeyMap, LoadPolicy, sha256_file};
use safetensors::Dtype;
use safetensors::tensor::TensorView;

use crate::error::{Context, Result, RunError};
use crate::pretrained::{LoadedModel, preprocess_for};

/// One tensor of the state dict: its type, shape and little-endian bytes.
pub struct StateTensor {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

/// The name of layer `i` of an `n`-layer head: a single layer is the classifier module itself
/// (`fc.weight`); an MLP is numbered as an `nn.Sequential` of Linear, ReLU, Dropout
/// (`classifier.0`, `.3`, `.6`: torchvision's VGG classifier).
fn head_prefix(classifier: &str, i: usize, n: usize) -> String {
    if n == 1 {
        format!("{classifier}.")
    } else {
        format!("{classifier}.{}.", 3 * i)
    }
}

fn tensors_of<M: ModuleSnapshot>(module: &M) -> Result<Vec<(String, StateTensor)>> {
    module
        .collect(None, Some(Box::new(BurnToPyTorchAdapter)), true)
        .into_iter()
        .map(|t| {
            let (name, dtype, shape, _, bytes) = t
                .into_parts()
                .map_err(|e| RunError::Backend(format!("cannot read a tensor: {e}")))?;
            let dtype = match dtype {
                burn::tensor::DType::F32 => Dtype::F32,
                other => {
                    return Err(RunError::Backend(format!(
                        "{name}: {other:?} tensors are not written to model files"
                    )));
                }
            };
            Ok((
                name,
                StateTensor {
                    dtype,
                    shape: shape.to_vec(),
                    bytes: bytes.to_vec(),
                },
            ))
        })
        .collect()
}

/// The network (without its own classifier) and `head` under the original checkpoint's names,
/// sorted. BatchNorm layers get PyTorch's `num_batches_tracked` counter (0), so the key set is
/// exactly the reference model's.
pub fn state_dict(
    arch: &Arch,
    net: &Network,
    head: &Head,
) -> Result<BTreeMap<String, StateTensor>> {
    let mut out = network_state(arch, net, false)?;
    let n = head.layers.len();
    for (name, t) in tensors_of(head)? {
        let rest = name.strip_prefix("layers.").unwrap_or(&name);
        let (i, field) = rest.split_once('.').unwrap_or(("0", rest));
        let i: usize = i
            .parse()
            .map_err(|_| RunError::Backend(format!("unexpected head tensor {name}")))?;
        out.insert(
            format!("{}{field}", head_prefix(arch.classifier_name(), i, n)),
            t,
        );
    }
    Ok(out)
}

/// The network's tensors under the original checkpoint's names, its own classifier included
/// when `with_classifier` (a pretrained model as it is).
pub fn network_state(
    arch: &Arch,
    net: &Network,
    with_classifier: bool,
) -> Result<BTreeMap<String, StateTensor>> {
    let inverse = arch.key_map().inverse()?.first_match()?;
    let mut out = BTreeMap::new();
    for (name, t) in tensors_of(net)? {
        if !with_classifier
            && arch
                .classifier_prefixes()
                .iter()
                .any(|p| name.starts_with(p))
        {
            continue;
        }
        let original = inverse.apply(&name);
        if let Some(stem) = original.strip_suffix(".running_var") {
            let counter = StateTensor {
                dtype: Dtype::I64,
                shape: Vec::new(),
                bytes: 0i64.to_le_bytes().to_vec(),
            };
            out.insert(format!("{stem}.num_batches_tracked"), counter);
        }
        out.insert(original, t);
    }
    Ok(out)
}

/// The safetensors bytes of a state dict: no metadata, names sorted by the format.
pub fn safetensors_bytes(tensors: &BTreeMap<String, StateTensor>) -> Result<Vec<u8>> {
    let views = tensors
        .iter()
        .map(|(name, t)| {
            TensorView::new(t.dtype, t.shape.clone(), &t.bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| RunError::Backend(format!("{name}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, None).map_err(|e| RunError::Backend(e.to_string()))
}

/// The model card of `model` with a classifier for `classes`.
pub(crate) fn model_card(
    model: &LoadedModel,
    classes: Vec<String>,
    head: HeadKind,
    strategy: Strategy,
    val_accuracy: Option<f64>,
) -> ModelCard {
    let p = &model.preprocess;
    ModelCard {
        format: graft_spec::FORMAT,
        graft_version: graft_spec::VERSION.to_string(),
        architecture: model.spec.name.to_string(),
        classes,
        head,
        classifier: model.spec.arch.classifier_name().to_string(),
        input_size: p.crop,
        preprocessing: Preprocessing {
            resize: p.resize,
            crop: p.crop,
            mean: p.mean,
            std: p.std,
        },
        strategy,
        val_accuracy,
        pretrained_sha256: model.weights_sha256.clone(),
    }
}

/// Writes `model.safetensors` and `model.json` into `dir`, each atomically.
pub fn save(
    dir: &Path,
    model: &LoadedModel,
    net: &Network,
    head: &Head,
    config: &RunConfig,
    val_accuracy: Option<f64>,
) -> Result<()> {
    let bytes = safetensors_bytes(&state_dict(&model.spec.arch, net, head)?)?;
    graft_spec::write_atomic(&dir.join(MODEL_WEIGHTS), &bytes)?;
    let head = config.fit.as_ref().map_or(HeadKind::Linear, |f| f.head);
    model_card(
        model,
        config.classes.clone(),
        head,
        config.strategy,
        val_accuracy,
    )
    .write(dir)?;
    Ok(())
}

/// The network and the head a `model.safetensors` holds: the backbone through the
/// architecture's key map, the head from the tensors under `classifier` (see [`state_dict`]).
pub fn load_parts(
    arch: &Arch,
    path: &Path,
    kind: HeadKind,
    classifier: &str,
    classes: usize,
    device: &Device,
) -> Result<(Network, Head)> {
    // The network's own classifier stays unused (the head replaces it): it may be missing,
    // and the file's classifier tensors are the head's, loaded below.
    let policy = LoadPolicy::replacing_head(arch.classifier_prefixes());
    let (net, _) = arch
        .load(path, &policy, "trained model", device)
        .context(|| format!("cannot load {}", path.display()))?;
    let mut head = kind.shell(net.embed_dim(), classes, device);
    let n = head.layers.len();
    let pairs: Vec<(String, String)> = (0..n)
        .map(|i| {
            let from = head_prefix(classifier, i, n).replace('.', r"\.");
            (format!("^{from}"), format!("layers.{i}."))
        })
        .collect();
    let head_policy = LoadPolicy {
        allow_unused: vec![String::new()],
        ..LoadPolicy::strict()
    };
    graft_weights::load_weights(
        &mut head,
        path,
        &KeyMap::from_pairs(pairs),
        &head_policy,
        "trained head",
    )
    .context(|| format!("cannot load the head of {}", path.display()))?;
    Ok((net, head))
}

/// A trained model, loaded from its artifact alone.
pub struct TrainedModel {
    pub card: ModelCard,
    pub spec: ModelSpec,
    pub net: Network,
    pub head: Head,
    pub preprocess: Preprocess,
    pub device: Device,
    /// Identity of the backbone in use: cached features are keyed by it (the pretrained
    /// weights' when the run trained only a head, so it shares their cache entries).
    pub backbone_sha256: String,
    pub path: PathBuf,
}

impl TrainedModel {
    /// Reads `dir/model.json` and `dir/model.safetensors` (a run directory, or any folder
    /// holding the two).
    pub fn load(dir: &Path) -> Result<Self> {
        let card =
            ModelCard::read(dir).context(|| format!("{} holds no trained model", dir.display()))?;
        let spec = find_model(&card.architecture)?;
        let path = dir.join(MODEL_WEIGHTS);
        let device = default_device();
        let (net, head) = load_parts(
            &spec.arch,
            &path,
            card.head,
            &card.classifier,
            card.classes.len(),
            &device,
        )?;
        let backbone_sha256 = if card.strategy == Strategy::Head {
            card.pretrained_sha256.clone()
        } else {
            sha256_file(&path)?
        };
        Ok(Self {
            preprocess: Preprocess {
                resize: card.preprocessing.resize,
                crop: card.preprocessing.crop,
                mean: card.preprocessing.mean,
                std: card.preprocessing.std,
                ..preprocess_for(&spec)
            },
            card,
            spec,
            net,
            head,
            device,
            backbone_sha256,
            path,
        })
    }

    /// The model as a [`LoadedModel`] (batch size and cache home from `choice`), its classifier
    /// being [`Self::head`].
    pub fn as_loaded(&self, choice: &crate::ModelChoice) -> LoadedModel {
        LoadedModel {
            spec: self.spec.clone(),
            net: self.net.clone(),
            weights: self.path.clone(),
            weights_sha256: self.backbone_sha256.clone(),
            report: Default::default(),
            preprocess: self.preprocess,
            device: self.device.clone(),
            batch_size: choice.batch_size,
            home: choice.home.clone(),
        }
    }
}

/// One class and its probability (the shape of Hugging Face's image-classification answers).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Label {
    pub label: String,
    pub score: f32,
    pub index: usize,
}

impl TrainedModel {
    /// The `k` most probable classes for the image at `path`, most probable first.
    pub fn predict(&self, path: impl AsRef<Path>, k: usize) -> Result<Vec<Label>> {
        let paths = [path.as_ref().to_path_buf()];
        let mut out = Err(RunError::Invalid("no prediction".into()));
        let model = self.as_loaded(&crate::ModelChoice::default());
        crate::infer::classify_files(
            &model,
            Some(&self.head),
            &paths,
            &mut crate::Silent,
            |_, _, r| {
                out = r
                    .map_err(RunError::from)
                    .map(|probs| crate::infer::labels(&self.card.classes, &probs, k));
            },
        )?;
        out
    }
}
