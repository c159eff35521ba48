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
        rows.push(Row {
            line: i + 1,
            path: base.join(cols[0]),
            cols: cols[1..].iter().map(|c| c.to_string()).collect(),
        });
    }
    Ok(rows)
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
    let mut images = Vec::new();
    let mut skipped = Vec::new();
    for input in inputs {
        if input.is_dir() {
            walk(input, &mut images, &mut skipped)?;
        } else {
            images.push(input.clone());
        }
    }
    Ok((images, skipped))
}

fn walk(
    dir: &Path,
    images: &mut Vec<PathBuf>,
    skipped: &mut Vec<PathBuf>,
) -> Result<(), DataError> {
    let io = |source| DataError::Io {
        path: dir.into(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, images, skipped)?;
        } else if is_image_path(&path) {
            images.push(path);
        } else if !path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            skipped.push(path);
        }
    }
    Ok(())
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
