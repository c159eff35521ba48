//! Frozen activations on disk, one file per (model, weights, preprocessing, freeze point, view,
//! image content). The whole key is stored in the file and checked on read, so an entry that
//! no longer matches (or is damaged) is rebuilt, never silently reused.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use graft_spec::io::{Durability, FileError, write_atomic_as};
use sha2::{Digest, Sha256};

/// Version 2 adds a CRC-32 of everything before it, so a torn or bit-flipped entry is caught
/// even where its length still fits. Version 1 entries read as invalid and are rebuilt.
const MAGIC: &[u8; 8] = b"GRAFTFC2";

/// Everything the cached activations depend on, apart from the image itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheKey {
    pub model: String,
    /// sha256 of the weights file.
    pub weights: String,
    /// The preprocessing, spelled out (sizes, normalisation).
    pub preprocess: String,
    /// Output of which group (`embed` for the pooled classifier input).
    pub freeze_point: String,
    /// 0: the evaluation view; 1..=K: augmented views.
    pub view: u32,
}

impl CacheKey {
    fn describe(&self, image: &str) -> String {
        format!(
            "model={}\nweights={}\npreprocess={}\nfreeze_point={}\nview={}\nimage={image}\n",
            self.model, self.weights, self.preprocess, self.freeze_point, self.view
        )
    }
}

#[derive(Debug, Default)]
pub struct CacheStats {
    pub hits: AtomicUsize,
    pub misses: AtomicUsize,
    /// Entries found but not matching (key, size or checksum): rebuilt.
    pub invalid: AtomicUsize,
    /// Entries that could not be written (a read-only or full disk).
    pub write_failures: AtomicUsize,
}

impl CacheStats {
    pub fn snapshot(&self) -> (usize, usize, usize) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
            self.invalid.load(Ordering::Relaxed),
        )
    }
}

pub struct FeatureCache {
    dir: PathBuf,
    pub stats: CacheStats,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl FeatureCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            stats: CacheStats::default(),
        }
    }

    fn path(&self, description: &str) -> PathBuf {
        let h = sha256_hex(description.as_bytes());
        self.dir.join(&h[..2]).join(format!("{h}.bin"))
    }

    /// The cached activations for `image` (its content hash), if present and matching.
    pub fn get(&self, key: &CacheKey, image: &str) -> Option<Vec<f32>> {
        let description = key.describe(image);
        let Ok(bytes) = std::fs::read(self.path(&description)) else {
            self.stats.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        match decode(&bytes, &description) {
            Some(v) => {
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                Some(v)
            }
            None => {
                self.stats.invalid.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Like [`FeatureCache::get`], but an absent entry is not counted as a miss: for
    /// activations another run may have cached (an extractor's base), whose absence only means
    /// starting from the image.
    pub fn get_if_cached(&self, key: &CacheKey, image: &str) -> Option<Vec<f32>> {
        let description = key.describe(image);
        let bytes = std::fs::read(self.path(&description)).ok()?;
        let found = decode(&bytes, &description);
        let counter = if found.is_some() {
            &self.stats.hits
        } else {
            &self.stats.invalid
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Stores atomically: a reader sees the old entry, the new one, or none.
    pub fn put(&self, key: &CacheKey, image: &str, values: &[f32]) -> Result<(), FileError> {
        let description = key.describe(image);
        let path = self.path(&description);
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut out = Vec::with_capacity(28 + description.len() + values.len() * 4);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(description.len() as u64).to_le_bytes());
        out.extend_from_slice(description.as_bytes());
        out.extend_from_slice(&(values.len() as u64).to_le_bytes());
        for v in values {
            out.extend_from_slice(&v.to_le_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        // Entries are checked when read and computed again when lost: renamed, not flushed.
        let write = || {
            std::fs::create_dir_all(dir).map_err(FileError::io(dir))?;
            write_atomic_as(&path, &out, Durability::Renamed)
        };
        match write() {
            // The cache folder was deleted under us (`rm -rf ~/.cache/graft` during a run):
            // make it again, once.
            Err(FileError::Io { error, .. }) if error.kind() == std::io::ErrorKind::NotFound => {
                write()
            }
            done => done,
        }
    }
}

fn decode(bytes: &[u8], description: &str) -> Option<Vec<f32>> {
    let entry = parse(bytes)?;
    if entry.description != description.as_bytes() {
        return None;
    }
    Some(
        entry
            .data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    )
}

/// The model an entry was stored for, from its first bytes (the first line of its stored
/// key) without the rest or its checksum: what `graft cache du` groups by.
pub(crate) fn stored_model(head: &[u8]) -> Option<String> {
    let key = head.strip_prefix(MAGIC)?.get(8..)?;
    let text = String::from_utf8_lossy(key);
    Some(text.lines().next()?.strip_prefix("model=")?.to_string())
}

/// The parts of an entry whose checksum and lengths are right.
pub(crate) struct Entry<'a> {
    /// The key it was stored under, as [`CacheKey::describe`] wrote it.
    pub description: &'a [u8],
    pub data: &'a [u8],
}

pub(crate) fn parse(bytes: &[u8]) -> Option<Entry<'_>> {
    let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
    if crc32fast::hash(body).to_le_bytes() != crc {
        return None;
    }
    let rest = body.strip_prefix(MAGIC)?;
    let (len, rest) = rest.split_at_checked(8)?;
    let len = usize::try_from(u64::from_le_bytes(len.try_into().ok()?)).ok()?;
    let (description, rest) = rest.split_at_checked(len)?;
    let (count, data) = rest.split_at_checked(8)?;
    let count = usize::try_from(u64::from_le_bytes(count.try_into().ok()?)).ok()?;
    (Some(data.len()) == count.checked_mul(4)).then_some(Entry { description, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CacheKey {
        CacheKey {
            model: "m".into(),
            weights: "w".into(),
            preprocess: "resize=256,crop=224".into(),
            freeze_point: "embed".into(),
            view: 0,
        }
    }

    #[test]
    fn miss_then_hit_returns_what_was_stored() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let cache = FeatureCache::new(dir.path());
        assert_eq!(cache.get(&key(), "img"), None);
        cache.put(&key(), "img", &[1.0, -2.5])?;
        assert_eq!(cache.get(&key(), "img"), Some(vec![1.0, -2.5]));
        assert_eq!(cache.stats.snapshot(), (1, 1, 0));
        Ok(())
    }

    #[test]
    fn any_change_in_the_key_is_a_miss() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let cache = FeatureCache::new(dir.path());
        cache.put(&key(), "img", &[1.0])?;
        let changed = [
            CacheKey {
                weights: "w2".into(),
                ..key()
            },
            CacheKey {
                preprocess: "resize=232,crop=224".into(),
                ..key()
            },
            CacheKey {
                freeze_point: "stage6".into(),
                ..key()
            },
            CacheKey { view: 1, ..key() },
        ];
        for k in &changed {
            assert_eq!(cache.get(k, "img"), None, "{k:?}");
        }
        assert_eq!(cache.get(&key(), "other image"), None);
        Ok(())
    }

    #[test]
    fn a_flipped_bit_anywhere_is_caught_by_the_checksum() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let cache = FeatureCache::new(dir.path());
        cache.put(&key(), "img", &[1.0, 2.0, 3.0])?;
        let path = cache.path(&key().describe("img"));
        let good = std::fs::read(&path)?;
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            std::fs::write(&path, &bad)?;
            assert_eq!(cache.get(&key(), "img"), None, "byte {i}");
        }
        assert_eq!(cache.stats.snapshot().2, good.len());
        Ok(())
    }

    #[test]
    fn damaged_entry_is_invalid_and_rebuilt() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let cache = FeatureCache::new(dir.path());
        cache.put(&key(), "img", &[1.0, 2.0])?;
        let path = cache.path(&key().describe("img"));
        let mut bytes = std::fs::read(&path)?;
        bytes.truncate(bytes.len() - 2);
        std::fs::write(&path, bytes)?;
        assert_eq!(cache.get(&key(), "img"), None);
        assert_eq!(cache.stats.snapshot().2, 1);
        cache.put(&key(), "img", &[3.0])?;
        assert_eq!(cache.get(&key(), "img"), Some(vec![3.0]));
        Ok(())
    }
}
