//! The one way graft writes a file it or a user will read back: to a unique temporary file in
//! the same folder, flushed to disk, renamed over the target, and the folder flushed, so a
//! crash leaves the old file or the new one, never a torn one.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A run file that cannot be read, written or understood; always names the file.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    // Not a `source`: the message already says it, and error chains would say it twice.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error(
        "{path}: written by another version of graft (run-file format {found}, this graft reads {expected}); re-run it with this version"
    )]
    Format {
        path: PathBuf,
        found: String,
        expected: u32,
    },
}

impl FileError {
    pub fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |error| Self::Io {
            path: path.to_path_buf(),
            error,
        }
    }

    pub fn parse(path: &Path, message: impl ToString) -> Self {
        Self::Parse {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }
}

/// How far [`write_atomic_as`] goes to keep a file across a power cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Flushed to disk before and after the rename: what the user cannot afford to lose.
    Synced,
    /// Renamed into place without flushing: never torn for a reader, but a power cut may lose
    /// it. For entries that are checked when read and can be computed again (the feature
    /// cache), where a flush per entry would cost more than the entry.
    Renamed,
}

pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    write_atomic_as(path, bytes, Durability::Synced)
}

pub fn write_atomic_as(path: &Path, bytes: &[u8], durability: Durability) -> Result<(), FileError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".graft-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(FileError::io(dir))?;
    tmp.write_all(bytes).map_err(FileError::io(path))?;
    readable(tmp.as_file()).map_err(FileError::io(path))?;
    if durability == Durability::Synced {
        tmp.as_file().sync_all().map_err(FileError::io(path))?;
    }
    tmp.persist(path)
        .map_err(|e| FileError::io(path)(e.error))?;
    match durability {
        Durability::Synced => sync_dir(dir),
        Durability::Renamed => Ok(()),
    }
}

/// Writes a file through `write(temporary file, its path)` (for writers that stream, such as
/// a download, or that take a path, such as a tensor store), then publishes it as
/// [`write_atomic`] does. If `write` fails, the temporary file is removed and the target is
/// left as it was.
pub fn write_atomic_with<E: From<FileError>>(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File, &Path) -> Result<(), E>,
) -> Result<(), E> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("tmp");
    let mut tmp = tempfile::Builder::new()
        .prefix(".graft-")
        .suffix(&format!(".{ext}"))
        .tempfile_in(dir)
        .map_err(FileError::io(dir))?;
    let tmp_path = tmp.path().to_path_buf();
    write(tmp.as_file_mut(), &tmp_path)?;
    // The writer may have replaced the file at the path: flush what is there now.
    std::fs::File::open(&tmp_path)
        .and_then(|f| readable(&f).and_then(|()| f.sync_all()))
        .map_err(FileError::io(path))?;
    tmp.persist(path)
        .map_err(|e| FileError::io(path)(e.error))?;
    sync_dir(dir)?;
    Ok(())
}

/// Temporary files are created private (0600); what graft publishes is an ordinary file
/// (0644), readable as the user's other files are.
fn readable(file: &std::fs::File) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}

/// The rename is durable only once the folder's entry is on disk (where the platform allows
/// opening a folder; elsewhere the rename alone is what there is).
fn sync_dir(dir: &Path) -> Result<(), FileError> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)
            .and_then(|f| f.sync_all())
            .map_err(FileError::io(dir))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Appends one line (logs that survive an interruption line by line).
pub fn append_line(path: &Path, line: &str) -> Result<(), FileError> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(FileError::io(path))?;
    writeln!(f, "{line}").map_err(FileError::io(path))
}

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), FileError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| FileError::parse(path, e))?;
    write_atomic(path, text.as_bytes())
}

pub fn read_text(path: &Path) -> Result<String, FileError> {
    std::fs::read_to_string(path).map_err(FileError::io(path))
}

/// Reads a JSON file into `T`; a missing or mistyped field is an error naming the file and
/// the field, never a default.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, FileError> {
    parse_json(path, &read_text(path)?)
}

pub fn parse_json<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, FileError> {
    serde_json::from_str(text).map_err(|e| FileError::parse(path, e))
}

/// Reads a run file that carries a `format` number: one of another format is refused with a
/// message saying so, before its fields are read.
pub fn read_versioned<T: DeserializeOwned>(path: &Path, expected: u32) -> Result<T, FileError> {
    let text = read_text(path)?;
    let value: serde_json::Value = parse_json(path, &text)?;
    match value.get("format").and_then(serde_json::Value::as_u64) {
        Some(f) if f == u64::from(expected) => parse_json(path, &text),
        found => Err(FileError::Format {
            path: path.to_path_buf(),
            found: found.map_or_else(|| "1 (no format field)".to_string(), |f| f.to_string()),
            expected,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Test = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn atomic_writes_replace_and_leave_no_temporary_file() -> Test {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("a.json");
        write_atomic(&p, b"one")?;
        write_atomic(&p, b"two")?;
        assert_eq!(std::fs::read(&p)?, b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())?
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        Ok(())
    }

    #[test]
    fn a_file_without_a_format_number_is_refused_by_name() -> Test {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("config.json");
        std::fs::write(&p, r#"{"model": "x"}"#)?;
        let msg = read_versioned::<serde_json::Value>(&p, 2)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            msg.contains("config.json") && msg.contains("re-run"),
            "{msg}"
        );
        Ok(())
    }
}
