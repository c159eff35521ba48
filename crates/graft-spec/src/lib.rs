//! The vocabulary of graft, with no tensors in it: strategies and their freeze plans, fitting
//! settings and their defaults, and the typed files of a run directory. The CLI, the run API,
//! the reports and (later) a server or a Python binding all read and write these types.

pub mod csv;
pub mod files;
pub mod fit;
pub mod io;
pub mod lr_find;
pub mod protocol;
pub mod rng;
pub mod size;
pub mod strategy;

pub use files::{
    CacheCounts, ClassMapping, ClassResult, EpochRecord, FORMAT, ImagenetClass, MetricsLine,
    ModelCard, Prediction, Preprocessing, ProbeGroup, Recommendation, RunConfig, RunResult,
    Stopped, Unreadable,
};
pub use fit::{FitConfig, HeadKind, HeadKindError, HeadSolver, HeadSolverError, defaults};
pub use io::{FileError, write_atomic};
pub use protocol::{Protocol, Selected, Selection, Tta, TtaError, selection_noise};
pub use rng::SplitMix64;
pub use size::parse_size;
pub use strategy::{FreezePlan, Strategy, StrategyError};

/// This graft's version, written into the files it makes.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
