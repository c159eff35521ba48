//! graft's run API: what the CLI, a server and (later) a Python package all call.
//!
//! Train a new head on an ImageFolder, then predict an image with the trained model, which
//! needs nothing but its run directory:
//!
//! ```
//! use graft_run::{RunSpec, Silent, Strategy, TrainedModel, train};
//!
//! # fn main() -> Result<(), graft_run::RunError> {
//! let mut spec = RunSpec::new("../../../shared/data/hymenoptera", Strategy::Head);
//! spec.model.weights = Some("../../../shared/weights/efficientnet-lite0-57934424.pth".into());
//! # let tmp = std::env::temp_dir().join(format!("graft-doc-{}", std::process::id()));
//! # (spec.model.home, spec.force) = (tmp.join("home"), true);
//! spec.out = Some(tmp.join("ants-and-bees"));
//! let run = train(&spec, &mut Silent)?;
//! println!("{:.1}% on {}", 100.0 * run.result.val_accuracy, run.result.val_split);
//!
//! let model = TrainedModel::load(&run.dir)?;
//! let top = model.predict("../../../shared/data/hymenoptera/val/ants/10308379_1b6c72e180.jpg", 1)?;
//! println!("{} ({:.2})", top[0].label, top[0].score);
//! # assert_eq!(top[0].label, "ants");
//! # std::fs::remove_dir_all(&tmp).ok();
//! # Ok(())
//! # }
//! ```
//!
//! The steps behind [`train`], each a function of the previous step's result:
//!
//! ```text
//! RunSpec ─ prepare ─> Prepared ─ extract ─> Extracted ─ fit ─> FitDone ─ finish ─> Trained
//!  (settings)  (dataset, plan,     (frozen part, once      (trainable part,   (result.json,
//!               run directory)      per image, cached)      epoch checkpoints)  model.safetensors)
//! ```
//!
//! [`compare`], [`probe`] and [`auto`] are compositions of the same steps. Nothing here prints:
//! progress, logs and each saved epoch go to an [`Observer`].

pub mod artifact;
pub mod auto;
pub mod cache;
pub mod compare;
mod error;
pub mod evaluate;
pub mod export;
pub mod infer;
pub mod lr_find;
pub mod observer;
pub mod pretrained;
pub mod probe;
pub mod run_dir;
pub mod servable;
pub mod spec;
pub mod study;
mod thumbs;
pub mod train;

pub use artifact::{Label, TrainedModel};
pub use error::{Context, Result, RunError};
pub use graft_spec::{FitConfig, HeadKind, RunConfig, RunResult, Strategy, defaults};
pub use observer::{Event, Observer, Silent};
pub use pretrained::{LoadedModel, load_pretrained};
pub use servable::{Servable, Source};
pub use spec::{ModelChoice, RunSpec};
pub use study::StudySpec;
pub use train::{Trained, train, train_with};
