//! Reports that make the choice of strategy measurable: `graft compare` and `graft probe` write
//! their runs, then this crate reads the run directories (no tensors, no images decoded) and
//! writes `report.html` (self-contained: plots as inline SVG, thumbnails as data URIs),
//! `report.md`, `results.json` and the plots as SVG files.

mod conclusion;
mod html;
mod markdown;
pub mod plot;
mod probe;
mod read;
mod write;

pub use conclusion::{Row, Status, conclusion};
pub use graft_spec::Prediction;
pub use graft_spec::csv;
pub use graft_spec::{ProbeGroup, Recommendation};
pub use probe::{ProbeReport, write_probe};
pub use read::{Budget, Epoch, Manifest, ReportError, Results, RunEntry, SplitCount, collect};
pub use write::write;
