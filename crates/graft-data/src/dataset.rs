//! Labelled datasets for training, in the three forms users have:
//! 1. an ImageFolder with `train/` and `val/` (or `test/`) subfolders (hymenoptera);
//! 2. an ImageFolder with a `split.csv` (`path,split`) beside the class folders (caltech101-20);
//! 3. a list file `path,label[,split]`, paths relative to the file;
//!
//! and, where no split is given, a stratified split made with a seed (saved by the caller).
//! A dataset that gives three splits (train, val and test) keeps val as its selection split
//! and reports on test; see [`crate::selection`] for the two-split case.
//! Class names are sorted so that labels are deterministic.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::DataError;
use crate::list::is_image_path;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    pub path: PathBuf,
    pub class: usize,
}

/// Where the train/validation split came from.
#[derive(Clone, Debug, PartialEq)]
pub enum SplitSource {
    Folders {
        val_dir: String,
    },
    SplitFile(PathBuf),
    ListColumn,
    /// Made here: stratified, seeded; the caller saves it so it can be reused.
    Generated {
        seed: u64,
        val_fraction: f64,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub root: PathBuf,
    pub classes: Vec<String>,
    pub train: Vec<Sample>,
    /// The held-out split results are reported on.
    pub val: Vec<Sample>,
    /// `val` or `test`, as the dataset names its held-out split.
    pub val_name: String,
    pub split: SplitSource,
    /// The split decisions are taken on (epoch, regularisation, strategy): given by a
    /// three-split dataset, or carved from `train` by [`Dataset::with_selection`]; empty until
    /// then.
    pub select: Vec<Sample>,
    pub selection: crate::selection::Selection,
    /// Non-fatal findings (e.g. files skipped by extension), for the caller to print.
    pub warnings: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SplitOptions {
    pub val_fraction: f64,
    pub seed: u64,
}

impl Default for SplitOptions {
    fn default() -> Self {
        Self {
            val_fraction: 0.2,
            seed: 0,
        }
    }
}

fn err(path: &Path, detail: impl Into<String>) -> DataError {
    DataError::Dataset {
        path: path.into(),
        detail: detail.into(),
    }
}

fn subdirs(dir: &Path) -> Result<Vec<String>, DataError> {
    let mut names = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|source| DataError::Io {
        path: dir.into(),
        source,
    })?;
    for e in entries {
        let e = e.map_err(|source| DataError::Io {
            path: dir.into(),
            source,
        })?;
        if e.path().is_dir() {
            names.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Image files directly in `dir`, sorted; others are noted in `warnings`.
fn images_in(dir: &Path, warnings: &mut Vec<String>) -> Result<Vec<PathBuf>, DataError> {
    let (images, skipped) = crate::list::find_images(&[dir.to_path_buf()])?;
    for s in skipped {
        warnings.push(format!(
            "{}: skipped, not an image file extension",
            s.display()
        ));
    }
    Ok(images.into_iter().filter(|p| is_image_path(p)).collect())
}

/// Opens `path` as whichever dataset form it is.
pub fn open_dataset(path: &Path, options: SplitOptions) -> Result<Dataset, DataError> {
    if path.is_file() {
        return open_list(path, options);
    }
    if !path.is_dir() {
        return Err(err(
            path,
            "no such dataset (expected a folder of class folders or a .csv/.tsv list)",
        ));
    }
    let subs = subdirs(path)?;
    if subs.iter().any(|s| s == "train") {
        let held: Vec<(&str, Part)> = [("val", Part::Val), ("test", Part::Test)]
            .into_iter()
            .filter(|(h, _)| subs.iter().any(|s| s == h))
            .collect();
        if held.is_empty() {
            return Err(err(path, "has train/ but no val/ or test/ folder"));
        }
        return open_split_folders(path, &held);
    }
    let split_file = path.join("split.csv");
    if split_file.is_file() {
        return open_split_csv(path, &split_file);
    }
    let mut warnings = Vec::new();
    let classes = subs;
    let mut all = Vec::new();
    for (i, c) in classes.iter().enumerate() {
        for p in images_in(&path.join(c), &mut warnings)? {
            all.push(Sample { path: p, class: i });
        }
    }
    let mut ds = finish(
        path,
        classes,
        all,
        Vec::new(),
        "val",
        SplitSource::Generated {
            seed: options.seed,
            val_fraction: options.val_fraction,
        },
        warnings,
    )?;
    let (train, val) = stratified_split(&ds.train, ds.classes.len(), options)?;
    ds.train = train;
    ds.val = val;
    check_splits(&ds)?;
    Ok(ds)
}

/// `train/` and the held-out folders `held` (`val`, `test` or both) that exist beside it.
fn open_split_folders(root: &Path, held: &[(&str, Part)]) -> Result<Dataset, DataError> {
    let classes = subdirs(&root.join("train"))?;
    for (dir, _) in held {
        for c in subdirs(&root.join(dir))? {
            if !classes.contains(&c) {
                return Err(err(
                    root,
                    format!("class {c:?} is in {dir}/ but not in train/"),
                ));
            }
        }
    }
    let mut parts = Parts::default();
    for &(_, part) in held {
        // An existing folder names its split even when it holds no images.
        parts.name(part);
    }
    for (i, c) in classes.iter().enumerate() {
        for p in images_in(&root.join("train").join(c), &mut parts.warnings)? {
            parts.push(Part::Train, Sample { path: p, class: i });
        }
        for &(dir, part) in held {
            let cdir = root.join(dir).join(c);
            if cdir.is_dir() {
                for p in images_in(&cdir, &mut parts.warnings)? {
                    parts.push(part, Sample { path: p, class: i });
                }
            }
        }
    }
    parts.into_dataset(root, classes, |name| SplitSource::Folders {
        val_dir: name.into(),
    })
}

/// Which split a row of a split file or list names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Train,
    Val,
    Test,
}

fn split_name(path: &Path, line: usize, s: &str) -> Result<Part, DataError> {
    match s.trim().to_ascii_lowercase().as_str() {
        // `select`: a run's split.csv names the images it carved from train that way.
        "train" | "select" => Ok(Part::Train),
        "val" | "valid" | "validation" => Ok(Part::Val),
        "test" => Ok(Part::Test),
        other => Err(DataError::ListFile {
            path: path.into(),
            line,
            detail: format!("unknown split {other:?} (train, val or test)"),
        }),
    }
}

fn open_split_csv(root: &Path, split_file: &Path) -> Result<Dataset, DataError> {
    let classes = subdirs(root)?;
    let text = std::fs::read_to_string(split_file).map_err(|source| DataError::Io {
        path: split_file.into(),
        source,
    })?;
    let mut parts = Parts::default();
    let mut missing = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || (i == 0 && line.starts_with("path")) {
            continue;
        }
        let (file, split) = line.rsplit_once(',').ok_or_else(|| DataError::ListFile {
            path: split_file.into(),
            line: i + 1,
            detail: format!("expected `path,split`, found {line:?}"),
        })?;
        let part = split_name(split_file, i + 1, split)?;
        let file = crate::list::contained(file).map_err(|detail| DataError::ListFile {
            path: split_file.into(),
            line: i + 1,
            detail,
        })?;
        let path = root.join(file);
        let class_name = file
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned());
        let Some(class) = class_name.and_then(|c| classes.iter().position(|k| *k == c)) else {
            return Err(DataError::ListFile {
                path: split_file.into(),
                line: i + 1,
                detail: format!("{} is not inside a class folder", file.display()),
            });
        };
        if !path.is_file() {
            missing.push(file.display().to_string());
            continue;
        }
        parts.push(part, Sample { path, class });
    }
    if !missing.is_empty() {
        let shown: Vec<_> = missing.iter().take(5).cloned().collect();
        return Err(err(
            split_file,
            format!(
                "names {} files that do not exist: {}",
                missing.len(),
                shown.join(", ")
            ),
        ));
    }
    parts.into_dataset(root, classes, |_| SplitSource::SplitFile(split_file.into()))
}

/// The images of a dataset by the split they belong to; a held-out split is `Some` once it is
/// named (a row of a split file, an existing folder), even with no images.
#[derive(Default)]
struct Parts {
    train: Vec<Sample>,
    val: Option<Vec<Sample>>,
    test: Option<Vec<Sample>>,
    warnings: Vec<String>,
}

impl Parts {
    fn name(&mut self, part: Part) -> &mut Vec<Sample> {
        match part {
            Part::Train => &mut self.train,
            Part::Val => self.val.get_or_insert_with(Vec::new),
            Part::Test => self.test.get_or_insert_with(Vec::new),
        }
    }

    fn push(&mut self, part: Part, s: Sample) {
        self.name(part).push(s);
    }

    /// Reported on test when there is one; val is then the selection split. `source` is told
    /// the reported split's name.
    fn into_dataset(
        self,
        root: &Path,
        classes: Vec<String>,
        source: impl FnOnce(&str) -> SplitSource,
    ) -> Result<Dataset, DataError> {
        let (report, name, select) = match (self.val, self.test) {
            (Some(val), Some(test)) => (test, "test", Some(val)),
            (None, Some(test)) => (test, "test", None),
            (val, None) => (val.unwrap_or_default(), "val", None),
        };
        let mut ds = finish(
            root,
            classes,
            self.train,
            report,
            name,
            source(name),
            self.warnings,
        )?;
        if let Some(select) = select {
            ds.select = select;
            ds.selection = crate::selection::Selection::Given;
        }
        check_splits(&ds)?;
        Ok(ds)
    }
}

fn open_list(path: &Path, options: SplitOptions) -> Result<Dataset, DataError> {
    let mut rows: Vec<(PathBuf, String, Option<Part>)> = Vec::new();
    for row in crate::list::read_rows(path)? {
        let split = row
            .cols
            .get(1)
            .filter(|s| !s.is_empty())
            .map(|s| split_name(path, row.line, s))
            .transpose()?;
        rows.push((row.path, row.cols[0].clone(), split));
    }
    let classes: Vec<String> = rows
        .iter()
        .map(|r| r.1.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let class_of = |name: &str| classes.iter().position(|c| c == name).unwrap_or(0);
    let has_split = rows.iter().any(|r| r.2.is_some());
    let mut parts = Parts::default();
    for (p, label, split) in &rows {
        let s = Sample {
            path: p.clone(),
            class: class_of(label),
        };
        match (has_split, split) {
            (true, None) => {
                return Err(err(
                    path,
                    format!("{} has no split while other rows do", p.display()),
                ));
            }
            (_, part) => parts.push(part.unwrap_or(Part::Train), s),
        }
    }
    if has_split {
        return parts.into_dataset(path, classes, |_| SplitSource::ListColumn);
    }
    let source = SplitSource::Generated {
        seed: options.seed,
        val_fraction: options.val_fraction,
    };
    let mut ds = finish(
        path,
        classes,
        parts.train,
        Vec::new(),
        "val",
        source,
        Vec::new(),
    )?;
    let (t, v) = stratified_split(&ds.train, ds.classes.len(), options)?;
    ds.train = t;
    ds.val = v;
    check_splits(&ds)?;
    Ok(ds)
}

fn finish(
    root: &Path,
    classes: Vec<String>,
    train: Vec<Sample>,
    val: Vec<Sample>,
    val_name: &str,
    split: SplitSource,
    warnings: Vec<String>,
) -> Result<Dataset, DataError> {
    if classes.len() < 2 {
        return Err(err(
            root,
            format!(
                "found {} class(es) {:?}; training needs at least 2",
                classes.len(),
                classes
            ),
        ));
    }
    let ds = Dataset {
        root: root.into(),
        classes,
        train,
        val,
        val_name: val_name.into(),
        split,
        select: Vec::new(),
        selection: crate::selection::Selection::None,
        warnings,
    };
    let mut counts = vec![0usize; ds.classes.len()];
    for s in ds.train.iter().chain(&ds.val) {
        counts[s.class] += 1;
    }
    if let Some(i) = counts.iter().position(|&n| n == 0) {
        return Err(err(
            root,
            format!("class {:?} has no images", ds.classes[i]),
        ));
    }
    Ok(ds)
}

fn check_splits(ds: &Dataset) -> Result<(), DataError> {
    if ds.train.is_empty() || ds.val.is_empty() {
        return Err(err(
            &ds.root,
            format!(
                "{} training and {} {} images: both splits need images",
                ds.train.len(),
                ds.val.len(),
                ds.val_name
            ),
        ));
    }
    Ok(())
}

/// Per class, a seeded shuffle and the first `round(n * fraction)` (at least 1 when the class
/// has 2 or more images) go to validation.
pub fn stratified_split(
    samples: &[Sample],
    classes: usize,
    options: SplitOptions,
) -> Result<(Vec<Sample>, Vec<Sample>), DataError> {
    if !(0.0..1.0).contains(&options.val_fraction) || options.val_fraction == 0.0 {
        return Err(DataError::Dataset {
            path: PathBuf::new(),
            detail: format!(
                "--val-fraction must be in (0, 1), got {}",
                options.val_fraction
            ),
        });
    }
    let mut by_class: BTreeMap<usize, Vec<&Sample>> = BTreeMap::new();
    for s in samples {
        by_class.entry(s.class).or_default().push(s);
    }
    let mut train = Vec::new();
    let mut val = Vec::new();
    for c in 0..classes {
        let mut items = by_class.remove(&c).unwrap_or_default();
        let mut rng =
            graft_spec::SplitMix64(options.seed ^ (c as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for i in (1..items.len()).rev() {
            let j = (rng.next() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
        let n_val = if items.len() >= 2 {
            ((items.len() as f64 * options.val_fraction).round() as usize).clamp(1, items.len() - 1)
        } else {
            0
        };
        for (i, s) in items.into_iter().enumerate() {
            if i < n_val {
                val.push(s.clone())
            } else {
                train.push(s.clone())
            }
        }
    }
    train.sort_by(|a, b| a.path.cmp(&b.path));
    val.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((train, val))
}
