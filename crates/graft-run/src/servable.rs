//! A model ready to answer: a run's trained model, or a pretrained model as it is, with its
//! classes and preprocessing. What `export` writes and `serve` runs.

use std::path::PathBuf;

use burn::nn::Linear;
use burn::prelude::*;
use graft_models::imagenet;
use graft_spec::{HeadKind, ModelCard, Strategy};
use graft_transfer::head::Head;

use crate::artifact::{TrainedModel, model_card};
use crate::error::{Result, RunError};
use crate::observer::Observer;
use crate::pretrained::{LoadedModel, load_pretrained};
use crate::spec::ModelChoice;

/// What to export: a run directory's trained model, or a pretrained model as it is.
#[derive(Clone, Debug)]
pub enum Source {
    /// A run directory (or a folder with `model.safetensors` and `model.json`); the choice
    /// gives the batch size and cache home.
    Run(PathBuf, ModelChoice),
    Pretrained(ModelChoice),
}

pub struct Servable {
    pub card: ModelCard,
    pub model: LoadedModel,
    /// The trained head; `None` for a pretrained model, whose own classifier is used.
    pub head: Option<Head>,
}

fn pretrained_card(m: &LoadedModel) -> ModelCard {
    let layers = m.net.classifier_layers();
    let head = match layers.as_slice() {
        [first, _, ..] => HeadKind::Mlp {
            hidden: first.weight.dims()[1],
        },
        _ => HeadKind::Linear,
    };
    let classes = imagenet::classes().iter().map(|c| c.name.clone()).collect();
    model_card(m, classes, head, Strategy::Pretrained, None)
}

impl Servable {
    pub fn load(source: &Source, obs: &mut dyn Observer) -> Result<Self> {
        match source {
            Source::Run(dir, choice) => {
                let t = TrainedModel::load(dir)?;
                let model = t.as_loaded(choice);
                Ok(Self {
                    card: t.card,
                    model,
                    head: Some(t.head),
                })
            }
            Source::Pretrained(choice) => {
                let model = load_pretrained(choice, obs)?;
                Ok(Self {
                    card: pretrained_card(&model),
                    model,
                    head: None,
                })
            }
        }
    }

    /// The classifier's linear layers, input to output.
    pub fn classifier(&self) -> Vec<&Linear> {
        match &self.head {
            Some(h) => h.layers.iter().collect(),
            None => self.model.net.classifier_layers(),
        }
    }

    /// Class probabilities of `n` preprocessed images (`[3, s, s]` each, concatenated).
    pub fn probabilities(&self, pixels: Vec<f32>, n: usize) -> Result<Vec<Vec<f32>>> {
        let m = &self.model;
        let s = m.preprocess.crop as usize;
        if n == 0 || pixels.len() != n * 3 * s * s {
            return Err(RunError::Invalid(format!(
                "expected {n} images of 3 x {s} x {s} values, got {} values",
                pixels.len()
            )));
        }
        let x = Tensor::<4>::from_data(TensorData::new(pixels, [n, 3, s, s]), &m.device);
        let p = crate::infer::probabilities(m, self.head.as_ref(), x)?;
        let classes = self.card.classes.len();
        Ok(p.chunks(classes.max(1)).map(<[f32]>::to_vec).collect())
    }
}
