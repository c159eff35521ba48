//! What `probe`, `compare` and `auto` start from: one dataset split with one seed, one loaded
//! pretrained model, and the folder they write into.

use std::path::PathBuf;

use graft_data::{Dataset, SplitOptions, open_dataset};
use graft_spec::{Protocol, defaults};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::observer::Observer;
use crate::pretrained::{LoadedModel, data_stem, load_pretrained};
use crate::run_dir;
use crate::spec::ModelChoice;

/// The settings every study shares.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StudySpec {
    pub model: ModelChoice,
    pub data: PathBuf,
    pub seed: u64,
    pub val_fraction: f64,
    /// Which split decisions are taken on (see graft-data's `selection`).
    pub select_fraction: f64,
    pub select_on_eval: bool,
    /// The output folder (`None`: `runs/<dataset>-<model>-<what>`).
    pub out: Option<PathBuf>,
    /// Write into an existing, non-empty `out`.
    pub force: bool,
}

impl StudySpec {
    pub fn new(data: impl Into<PathBuf>) -> Self {
        Self {
            model: ModelChoice::default(),
            data: data.into(),
            seed: defaults::SEED,
            val_fraction: defaults::VAL_FRACTION,
            select_fraction: defaults::SELECT_FRACTION,
            select_on_eval: false,
            out: None,
            force: false,
        }
    }
}

pub struct Study {
    pub ds: Dataset,
    pub model: LoadedModel,
    pub dir: PathBuf,
    pub data: PathBuf,
    pub seed: u64,
    pub val_fraction: f64,
    pub protocol: Protocol,
}

/// Splits the dataset and sets its selection split apart (checked before anything is loaded or
/// written), loads the model, runs
/// `check` on both (nothing is written if it fails) and creates the output folder (`what`
/// names it when `out` is not given).
pub fn open(
    spec: &StudySpec,
    what: &str,
    check: &dyn Fn(&Dataset, &LoadedModel) -> Result<()>,
    obs: &mut dyn Observer,
) -> Result<Study> {
    let protocol = Protocol {
        select_fraction: spec.select_fraction,
        seed: spec.seed,
        select_on_eval: spec.select_on_eval,
    };
    let ds = open_dataset(
        &spec.data,
        SplitOptions {
            val_fraction: spec.val_fraction,
            seed: spec.seed,
        },
    )?
    .with_selection(protocol)?;
    let model = load_pretrained(&spec.model, obs)?;
    check(&ds, &model)?;
    let stem = data_stem(&spec.data);
    let dir = run_dir::create(
        spec.out.as_deref(),
        &format!("{stem}-{}-{what}", model.spec.name),
        spec.force,
    )?;
    Ok(Study {
        ds,
        model,
        dir,
        data: spec.data.clone(),
        seed: spec.seed,
        val_fraction: spec.val_fraction,
        protocol,
    })
}
