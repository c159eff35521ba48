//! The forms in which users hand over images: list files (`path,label` with paths relative to
//! the file) and folders.

use std::path::{Path, PathBuf};

use crate::DataError;

pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "gif", "bmp", "webp"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabeledImage {
    pub path: PathBuf,
    pub label: String,
}

pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// One row of a list file: the image path (relative to the file, resolved) and the columns after
/// it (at least one).
pub(crate) struct Row {
    pub line: usize,
    pub path: PathBuf,
    pub cols: Vec<String>,
}

/// Rows of a `.csv`/`.tsv` list file whose first column is a path relative to the file: blank
/// lines, `#` comments and a header row starting with `path` are skipped.
pub(crate) fn read_rows(path: &Path) -> Result<Vec<Row>, DataError> {
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io {
        path: path.into(),
        source,
    })?;
    let sep = if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("tsv"))
    {
        '\t'
    } else {
        ','
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.split(sep).map(str::trim).collect();
        if i == 0 && cols[0].eq_ignore_ascii_case("path") {
            continue;
        }
        if cols.len() < 2 {
            return Err(DataError::ListFile {
                path: path.into(),
                line: i + 1,
                detail: format!("expected `path{sep}label`, found {line:?}"),
            });
        }
        // A list names images wherever the user keeps them: relative to its folder, `..` or
        // absolute, as written (split.csv, which belongs to a dataset folder, may not leave it).
        rows.push(Row {
            line: i + 1,
            path: base.join(cols[0]),
            cols: cols[1..].iter().map(|c| c.to_string()).collect(),
        });
    }
    Ok(rows)
}

/// `text` as a path that stays under the folder it is relative to: no root, no drive and no
/// `..`. A dataset folder travels with its `split.csv`, and one from a stranger must not make
/// graft read `/etc/passwd` or `../../secrets` (symbolic links inside it are followed).
pub(crate) fn contained(text: &str) -> Result<&Path, String> {
    use std::path::Component;
    let path = Path::new(text);
    let escapes = path
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
    if text.is_empty() || escapes {
        return Err(format!(
            "{text:?} is not a path inside the dataset folder (absolute paths and `..` are \
             refused in split.csv; a list file given as --data may name images anywhere)"
        ));
    }
    Ok(path)
}

/// Reads a `.csv` or `.tsv` with columns `path,label` (a header row naming them is optional).
/// Paths are relative to the list file's folder.
pub fn read_list_file(path: &Path) -> Result<Vec<LabeledImage>, DataError> {
    let mut out = Vec::new();
    for row in read_rows(path)? {
        out.push(LabeledImage {
            path: row.path,
            label: row.cols[0].clone(),
        });
    }
    if out.is_empty() {
        return Err(DataError::ListFile {
            path: path.into(),
            line: 0,
            detail: "no images listed".into(),
        });
    }
    Ok(out)
}

/// Image files under each argument (a file is taken as it is; folders are walked recursively
/// in sorted order). Files without an image extension found inside folders are returned apart,
/// so that the caller reports them instead of dropping them silently.
pub fn find_images(inputs: &[PathBuf]) -> Result<(Vec<PathBuf>, Vec<PathBuf>), DataError> {
    let mut found = Found::default();
    for input in inputs {
        if input.is_dir() {
            found.walk(input)?;
        } else {
            found.images.push(input.clone());
        }
    }
    Ok((found.images, found.skipped))
}

#[derive(Default)]
struct Found {
    images: Vec<PathBuf>,
    skipped: Vec<PathBuf>,
    /// Canonical folders on the current path from the root: a symbolic link back to one of
    /// them is a loop, which would otherwise list the same images again at every level.
    ancestors: Vec<PathBuf>,
}

impl Found {
    fn walk(&mut self, dir: &Path) -> Result<(), DataError> {
        let io = |source| DataError::Io {
            path: dir.into(),
            source,
        };
        let canonical = dir.canonicalize().map_err(io)?;
        if let Some(ancestor) = self.ancestors.iter().find(|a| **a == canonical) {
            return Err(DataError::Dataset {
                path: dir.into(),
                detail: format!(
                    "a symbolic link loop: this folder is {} again",
                    ancestor.display()
                ),
            });
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(io)?;
        entries.sort();
        self.ancestors.push(canonical);
        for path in entries {
            if path.is_dir() {
                self.walk(&path)?;
            } else if is_image_path(&path) {
                self.images.push(path);
            } else if !path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                self.skipped.push(path);
            }
        }
        self.ancestors.pop();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_file_paths_are_relative_to_the_file_and_header_is_optional()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let list = dir.path().join("labels.csv");
        std::fs::write(
            &list,
            "path,label\nimages/a b.jpg,n01440764\n\nimages/c.JPEG,7\n",
        )?;
        let items = read_list_file(&list)?;
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].path, dir.path().join("images/a b.jpg"));
        assert_eq!(items[1].label, "7");
        Ok(())
    }

    #[test]
    fn list_paths_are_resolved_as_written_and_split_paths_must_stay_inside() {
        assert!(contained("ants/0.jpg").is_ok() && contained("./ants/0.jpg").is_ok());
        for bad in ["../../etc/passwd", "/etc/passwd", "a/../../b.jpg", ""] {
            let err = contained(bad).err().unwrap_or_default();
            assert!(err.contains("refused"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_symlink_loop_is_an_error_naming_the_folder() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let class = dir.path().join("ants");
        std::fs::create_dir(&class)?;
        std::fs::write(class.join("a.jpg"), b"x")?;
        std::os::unix::fs::symlink(dir.path(), class.join("again"))?;
        let err = find_images(&[dir.path().to_path_buf()])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("again") && err.contains("loop"), "{err}");
        Ok(())
    }

    #[test]
    fn list_file_line_without_label_names_the_line() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let list = dir.path().join("l.csv");
        std::fs::write(&list, "a.jpg,1\nb.jpg\n")?;
        let err = read_list_file(&list)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("l.csv:2"), "{err}");
        Ok(())
    }
}
