//! The 1000 ImageNet-1k classes, in the index order every ImageNet checkpoint uses.

use std::sync::OnceLock;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassName {
    pub wnid: String,
    pub name: String,
    pub synonyms: String,
}

const TABLE: &str = include_str!("../data/imagenet1k.tsv");

pub fn classes() -> &'static [ClassName] {
    static CLASSES: OnceLock<Vec<ClassName>> = OnceLock::new();
    CLASSES.get_or_init(|| {
        TABLE
            .lines()
            .filter(|l| !l.is_empty())
            .map(|line| {
                let mut cols = line.split('\t');
                let mut next = || cols.next().unwrap_or_default().to_string();
                ClassName {
                    wnid: next(),
                    name: next(),
                    synonyms: next(),
                }
            })
            .collect()
    })
}

/// A label as users write it: a wnid (`n01440764`) or a class index (`0`).
pub fn parse_label(label: &str) -> Option<usize> {
    let label = label.trim();
    if let Ok(i) = label.parse::<usize>() {
        return (i < classes().len()).then_some(i);
    }
    classes().iter().position(|c| c.wnid == label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_the_thousand_classes_in_wnid_order() {
        let c = classes();
        assert_eq!(c.len(), 1000);
        assert_eq!(c[0].wnid, "n01440764");
        assert_eq!(c[0].name, "tench");
        assert!(c.windows(2).all(|w| w[0].wnid < w[1].wnid));
    }

    #[test]
    fn labels_parse_as_wnid_or_index() {
        assert_eq!(parse_label("n01443537"), Some(1));
        assert_eq!(parse_label("999"), Some(999));
        assert_eq!(parse_label("1000"), None);
        assert_eq!(parse_label("ants"), None);
    }
}
