//! Looking after the feature cache as a whole: how much it holds (`graft cache du`), finding
//! and removing damaged entries (`graft cache verify`), and keeping it under a size by
//! removing the least recently used entries (`graft cache prune`).
//!
//! Every entry is a file `xx/<sha256>.bin` written by an atomic rename, so removing one while
//! another process reads it is safe (the reader keeps its open file), and a removed entry is
//! only ever computed again.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use graft_spec::FileError;

use crate::cache::{parse, stored_model};

/// A temporary file older than this was left by a process that died mid-write: a live writer
/// holds one for milliseconds.
const STALE_TEMP: Duration = Duration::from_secs(600);

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheUsage {
    pub entries: u64,
    pub bytes: u64,
    /// Per model name (from each entry's stored key): entries, bytes.
    pub models: BTreeMap<String, (u64, u64)>,
    /// Temporary files (writes in progress, or left by a killed process).
    pub temp_files: u64,
    pub temp_bytes: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub checked: u64,
    /// Entries whose checksum, lengths or header were wrong: removed.
    pub corrupt: Vec<PathBuf>,
    /// Temporary files left by a killed process: removed.
    pub stale_temp: Vec<PathBuf>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub removed: u64,
    pub freed: u64,
    pub kept: u64,
    pub kept_bytes: u64,
}

struct File {
    path: PathBuf,
    bytes: u64,
    /// The later of the last read (where the file system records it) and the write.
    used: SystemTime,
    temp: bool,
}

fn files(dir: &Path) -> Result<Vec<File>, FileError> {
    let mut out = Vec::new();
    let shards = match std::fs::read_dir(dir) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(FileError::io(dir)(e)),
    };
    for shard in shards {
        let shard = shard.map_err(FileError::io(dir))?.path();
        if !shard.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(&shard).map_err(FileError::io(&shard))? {
            let entry = entry.map_err(FileError::io(&shard))?;
            let path = entry.path();
            let meta = match entry.metadata() {
                Ok(m) => m,
                // Removed by another process since the listing.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(FileError::io(&path)(e)),
            };
            let name = entry.file_name().to_string_lossy().into_owned();
            let temp = name.starts_with(".graft-") && name.ends_with(".tmp");
            if !temp && !name.ends_with(".bin") {
                continue;
            }
            let written = meta.modified().map_err(FileError::io(&path))?;
            let read = meta.accessed().unwrap_or(written);
            out.push(File {
                path,
                bytes: meta.len(),
                used: read.max(written),
                temp,
            });
        }
    }
    Ok(out)
}

/// Removes `path`; one already gone (another process's prune) is not an error.
fn remove(path: &Path) -> Result<(), FileError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(FileError::io(path)(e)),
        _ => Ok(()),
    }
}

/// The model an entry was stored for (its key's first line is well within 256 bytes).
fn model_of(path: &Path) -> Result<String, FileError> {
    let mut head = Vec::with_capacity(256);
    let file = std::fs::File::open(path).map_err(FileError::io(path))?;
    file.take(256)
        .read_to_end(&mut head)
        .map_err(FileError::io(path))?;
    Ok(stored_model(&head).unwrap_or_else(|| "(unreadable)".to_string()))
}

pub fn usage(dir: &Path) -> Result<CacheUsage, FileError> {
    let mut u = CacheUsage::default();
    for f in files(dir)? {
        if f.temp {
            u.temp_files += 1;
            u.temp_bytes += f.bytes;
            continue;
        }
        u.entries += 1;
        u.bytes += f.bytes;
        let slot = u.models.entry(model_of(&f.path)?).or_default();
        slot.0 += 1;
        slot.1 += f.bytes;
    }
    Ok(u)
}

/// Reads every entry, removes those that fail their checksum and temporary files left by
/// killed processes.
pub fn verify(dir: &Path) -> Result<VerifyReport, FileError> {
    let mut report = VerifyReport::default();
    let now = SystemTime::now();
    for f in files(dir)? {
        if f.temp {
            let age = now.duration_since(f.used).unwrap_or_default();
            if age > STALE_TEMP {
                remove(&f.path)?;
                report.stale_temp.push(f.path);
            }
            continue;
        }
        let bytes = match std::fs::read(&f.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(FileError::io(&f.path)(e)),
        };
        report.checked += 1;
        if parse(&bytes).is_none() {
            remove(&f.path)?;
            report.corrupt.push(f.path);
        }
    }
    Ok(report)
}

/// Removes the least recently used entries until the cache holds at most `max_bytes`.
pub fn prune(dir: &Path, max_bytes: u64) -> Result<PruneReport, FileError> {
    let mut entries: Vec<File> = files(dir)?.into_iter().filter(|f| !f.temp).collect();
    entries.sort_by(|a, b| a.used.cmp(&b.used).then_with(|| a.path.cmp(&b.path)));
    let mut total: u64 = entries.iter().map(|f| f.bytes).sum();
    let mut report = PruneReport::default();
    for f in entries {
        if total > max_bytes {
            remove(&f.path)?;
            total -= f.bytes;
            report.removed += 1;
            report.freed += f.bytes;
        } else {
            report.kept += 1;
            report.kept_bytes += f.bytes;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CacheKey, FeatureCache};

    fn key(model: &str) -> CacheKey {
        CacheKey {
            model: model.into(),
            weights: "w".into(),
            preprocess: "p".into(),
            freeze_point: "embed".into(),
            view: 0,
        }
    }

    #[test]
    fn du_verify_and_prune_least_recently_used_first() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let cache = FeatureCache::new(dir.path());
        for (i, model) in ["a", "a", "b"].iter().enumerate() {
            cache.put(&key(model), &format!("img{i}"), &vec![i as f32; 100])?;
        }
        let u = usage(dir.path())?;
        assert_eq!((u.entries, u.models.len()), (3, 2));
        assert_eq!(u.models["a"].0, 2);
        // Damage one entry, leave a stale temporary file: verify removes both.
        let mut paths: Vec<_> = files(dir.path())?.into_iter().map(|f| f.path).collect();
        paths.sort();
        let mut bytes = std::fs::read(&paths[0])?;
        bytes[30] ^= 1;
        std::fs::write(&paths[0], bytes)?;
        let shard = paths[1].parent().ok_or("no shard")?;
        let temp = shard.join(".graft-abc.tmp");
        std::fs::write(&temp, b"partial")?;
        let old = SystemTime::now() - Duration::from_secs(3600);
        let times = std::fs::FileTimes::new()
            .set_accessed(old)
            .set_modified(old);
        std::fs::File::options()
            .write(true)
            .open(&temp)?
            .set_times(times)?;
        let report = verify(dir.path())?;
        assert_eq!(report.checked, 3);
        assert_eq!(report.corrupt, vec![paths[0].clone()]);
        assert_eq!(report.stale_temp, vec![temp.clone()]);
        assert!(!temp.exists() && !paths[0].exists());
        // Of the two left, the one used longest ago goes first.
        let (older, newer) = (&paths[1], &paths[2]);
        let set = |p: &Path, secs: u64| -> std::io::Result<()> {
            let t = SystemTime::now() - Duration::from_secs(secs);
            let times = std::fs::FileTimes::new().set_accessed(t).set_modified(t);
            std::fs::File::options()
                .write(true)
                .open(p)?
                .set_times(times)
        };
        set(older, 7200)?;
        set(newer, 60)?;
        let one = std::fs::metadata(newer)?.len();
        let report = prune(dir.path(), one)?;
        assert_eq!((report.removed, report.kept), (1, 1));
        assert!(!older.exists() && newer.exists());
        Ok(())
    }
}
