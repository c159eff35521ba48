//! One error type for the run API. Each library's own error is kept whole (it names the file,
//! the tensor, the image), and [`Context`] adds what the run was doing, as ripgrep's errors do.

use std::path::{Path, PathBuf};

use graft_data::DataError;
use graft_spec::{FileError, StrategyError};
use graft_transfer::train::TrainError;
use graft_weights::WeightsError;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A setting or an input that cannot work, said in the user's terms.
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Model(#[from] graft_models::ModelError),
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error(transparent)]
    Strategy(#[from] StrategyError),
    /// The tensor framework could not do what was asked (read back a tensor, save a module).
    #[error("{0}")]
    Backend(String),
    // The inner error is part of the message, not a `source`, so a chain prints it once.
    #[error("{context}: {inner}")]
    Context {
        context: String,
        inner: Box<RunError>,
    },
}

pub type Result<T, E = RunError> = std::result::Result<T, E>;

impl RunError {
    pub fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |error| Self::Io {
            path: path.to_path_buf(),
            error,
        }
    }
}

/// `.context("what was being done")` on any result whose error converts into [`RunError`].
pub trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Into<RunError>> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| RunError::Context {
            context: what(),
            inner: Box::new(e.into()),
        })
    }
}

/// Returns [`RunError::Invalid`] with the message unless the condition holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err($crate::RunError::Invalid(format!($($msg)+)));
        }
    };
}
