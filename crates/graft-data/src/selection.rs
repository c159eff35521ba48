//! The evaluation protocol: every decision (which epoch, which regularisation, which strategy)
//! is taken on a selection split, and the held-out split is only reported on, as scikit-learn's
//! `GridSearchCV` and CLIP's linear probes do. A dataset that gives train, val and test selects
//! on val; one that gives two splits has a stratified, seeded selection subset carved from
//! train. `select_on_eval` keeps the tutorial's habit (decide and report on the same split),
//! which is optimistic, for comparing with figures measured that way.

pub use graft_spec::{Protocol, Selection};

use crate::DataError;
use crate::dataset::{Dataset, SplitOptions, stratified_split};

/// Salt for the carving seed, so the selection subset does not repeat the val split's draw
/// when both are generated from the same seed.
const SELECT_SALT: u64 = 0x7365_6c65_6374; // "select"

impl Dataset {
    /// The dataset with its selection split in place: given by the dataset, the reported split
    /// itself under `select_on_eval`, or carved from `train` (which then loses those images).
    pub fn with_selection(mut self, p: Protocol) -> Result<Self, DataError> {
        if p.select_on_eval {
            if self.selection == Selection::Given {
                // The given val split goes back to training: nothing else would use it.
                self.train.append(&mut self.select);
                self.train.sort_by(|a, b| a.path.cmp(&b.path));
            }
            self.select = self.val.clone();
            self.selection = Selection::Report;
            return Ok(self);
        }
        if self.selection == Selection::Given {
            if self.select.is_empty() {
                // Epochs and strategies would be chosen on nothing.
                return Err(DataError::Dataset {
                    path: self.root.clone(),
                    detail: "its val split (val/, or the `val` rows of its split list) holds no images to select on: add images to it, remove it (a selection split is then carved from train), or pass --select-on-eval".into(),
                });
            }
            return Ok(self);
        }
        let options = SplitOptions {
            val_fraction: p.select_fraction,
            seed: p.seed ^ SELECT_SALT,
        };
        let (train, select) =
            stratified_split(&self.train, self.classes.len(), options).map_err(|_| {
                DataError::Dataset {
                    path: self.root.clone(),
                    detail: format!(
                        "--select-fraction must be in (0, 1), got {}",
                        p.select_fraction
                    ),
                }
            })?;
        if select.is_empty() || train.is_empty() {
            return Err(DataError::Dataset {
                path: self.root.clone(),
                detail: format!(
                    "{} training images leave none to select on: give a val split, more images, or --select-on-eval",
                    self.train.len()
                ),
            });
        }
        self.train = train;
        self.select = select;
        self.selection = Selection::Carved {
            fraction: p.select_fraction,
            seed: p.seed,
        };
        Ok(self)
    }

    /// The selection split's name in outputs: `select` (carved from train), the dataset's own
    /// `val`, or the reported split's name.
    pub fn select_name(&self) -> &str {
        match self.selection {
            Selection::Carved { .. } | Selection::None => "select",
            Selection::Given => "val",
            Selection::Report => &self.val_name,
        }
    }

    /// The selection images that are not also the reported split's (none under
    /// `--select-on-eval`): what to list or count as a split of its own.
    pub fn select_apart(&self) -> &[crate::Sample] {
        if self.selection == Selection::Report {
            &[]
        } else {
            &self.select
        }
    }

    /// The training images before any were set apart for selection (for a refit, or for
    /// cross-validation on all of them).
    pub fn all_train(&self) -> Vec<crate::Sample> {
        let mut all = self.train.clone();
        if matches!(self.selection, Selection::Carved { .. }) {
            all.extend(self.select.iter().cloned());
            all.sort_by(|a, b| a.path.cmp(&b.path));
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::Sample;
    use crate::dataset::SplitSource;

    fn dataset(per_class: usize) -> Dataset {
        let sample = |c: usize, i: usize| Sample {
            path: PathBuf::from(format!("{c}/{i}.jpg")),
            class: c,
        };
        Dataset {
            root: PathBuf::from("d"),
            classes: vec!["a".into(), "b".into()],
            train: (0..2)
                .flat_map(|c| (0..per_class).map(move |i| sample(c, i)))
                .collect(),
            val: vec![sample(0, 100), sample(1, 100)],
            val_name: "val".into(),
            split: SplitSource::ListColumn,
            select: Vec::new(),
            selection: Selection::None,
            warnings: Vec::new(),
        }
    }

    const P: Protocol = Protocol {
        select_fraction: 0.15,
        seed: 3,
        select_on_eval: false,
    };

    #[test]
    fn carving_is_stratified_seeded_and_disjoint_from_train_and_report() {
        let a = dataset(20).with_selection(P).expect("carve");
        let b = dataset(20).with_selection(P).expect("carve");
        assert_eq!(a.select, b.select);
        assert_eq!((a.train.len(), a.select.len()), (34, 6));
        for c in 0..2 {
            assert_eq!(a.select.iter().filter(|s| s.class == c).count(), 3);
        }
        assert!(
            a.select
                .iter()
                .all(|s| !a.train.contains(s) && !a.val.contains(s))
        );
        assert_eq!(a.all_train().len(), 40);
        assert_eq!(a.select_name(), "select");
    }

    #[test]
    fn every_class_keeps_one_image_to_select_on() {
        let a = dataset(3).with_selection(P).expect("carve");
        assert_eq!(a.select.len(), 2);
    }

    #[test]
    fn select_on_eval_decides_on_the_reported_split() {
        let a = dataset(20)
            .with_selection(Protocol {
                select_on_eval: true,
                ..P
            })
            .expect("eval");
        assert_eq!(a.select, a.val);
        assert_eq!(a.train.len(), 40);
        assert_eq!(a.select_name(), "val");
    }

    #[test]
    fn a_given_selection_split_is_kept() {
        let mut d = dataset(20);
        d.select = vec![Sample {
            path: "0/sel.jpg".into(),
            class: 0,
        }];
        d.selection = Selection::Given;
        let a = d.clone().with_selection(P).expect("given");
        assert_eq!(a.select, d.select);
        assert_eq!(a.train.len(), 40);
    }

    #[test]
    fn an_empty_given_selection_split_is_an_error_naming_val() {
        let mut d = dataset(20);
        d.selection = Selection::Given;
        let e = d.with_selection(P).expect_err("empty val");
        assert!(e.to_string().contains("val/"), "{e}");
    }

    #[test]
    fn a_single_image_per_class_cannot_be_carved() {
        let e = dataset(1).with_selection(P).expect_err("too small");
        assert!(e.to_string().contains("select-on-eval"), "{e}");
    }
}
