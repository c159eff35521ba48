//! The feature cache under a graft home: where it is, and its upkeep (`graft cache`).

use std::path::{Path, PathBuf};

pub use graft_transfer::cache_admin::{
    CacheUsage, PruneReport, VerifyReport, prune, usage, verify,
};

/// The feature cache's folder under `home` (`$GRAFT_HOME/features`).
pub fn dir(home: &Path) -> PathBuf {
    home.join("features")
}
