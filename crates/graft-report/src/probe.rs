//! Transferability by depth (Yosinski et al., "How transferable are features in deep neural
//! networks?", NeurIPS 2014): a linear classifier on the pooled output of every block group,
//! and the freeze point that curve suggests. `recommend` is a pure function of the curve.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::html::STYLE;
use crate::load::ReportError;
use graft_spec::io::{FileError, write_atomic, write_json};
use crate::plot::{self, escape};

/// Accuracy of the same linear classifier on one group's pooled output.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ProbeGroup {
    pub group: String,
    /// Width of the features (channels; for the last group, the classifier's input).
    pub dim: usize,
    pub val_accuracy: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Recommendation {
    /// `head` or `partial:N`.
    pub strategy: String,
    /// The frozen prefix ends after this group.
    pub freeze_after: String,
    pub reason: String,
}

/// Points of accuracy within which a deeper group counts as "as good" (probe noise on a few
/// hundred validation images is about that).
const TOLERANCE: f64 = 0.01;

/// If the last group is (within a point) the best, every group transfers: `head`. Otherwise the
/// groups after the peak are too specific to ImageNet for these classes: retrain them
/// (`partial:N`, N = groups after the peak).
pub fn recommend(groups: &[ProbeGroup]) -> Option<Recommendation> {
    let last = groups.last()?;
    let (k, peak) = groups
        .iter()
        .enumerate()
        .fold((0, &groups[0]), |b, (i, g)| {
            if g.val_accuracy > b.1.val_accuracy {
                (i, g)
            } else {
                b
            }
        });
    let n = groups.len();
    if last.val_accuracy + TOLERANCE >= peak.val_accuracy {
        return Some(Recommendation {
            strategy: "head".into(),
            freeze_after: last.group.clone(),
            reason: format!(
                "accuracy keeps rising with depth up to the last group ({} gives {:.1}%, the best is {:.1}%): \
                 ImageNet's most specific features still separate your classes, so freeze every group and train a new classifier.",
                last.group,
                100.0 * last.val_accuracy,
                100.0 * peak.val_accuracy
            ),
        });
    }
    let retrain = n - 1 - k;
    Some(Recommendation {
        strategy: format!("partial:{retrain}"),
        freeze_after: peak.group.clone(),
        reason: format!(
            "accuracy peaks at {} ({:.1}%) and falls to {:.1}% by {}: the {} group(s) above {} are too specific to ImageNet for your classes, \
             so keep {} and below frozen and retrain the {retrain} group(s) above it with the new classifier.",
            peak.group,
            100.0 * peak.val_accuracy,
            100.0 * last.val_accuracy,
            last.group,
            retrain,
            peak.group,
            peak.group
        ),
    })
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ProbeReport {
    pub model: String,
    pub data: PathBuf,
    pub train_images: usize,
    pub val_images: usize,
    pub seed: u64,
    pub groups: Vec<ProbeGroup>,
    pub recommendation: Option<Recommendation>,
    pub seconds: f64,
}

/// Writes `probe.json`, `probe.md`, `probe.html` and `plots/probe.svg` into `dir`.
pub fn write_probe(dir: &Path, r: &ProbeReport) -> Result<(), ReportError> {
    let items: Vec<(&str, f64)> = r
        .groups
        .iter()
        .map(|g| (g.group.as_str(), 100.0 * g.val_accuracy))
        .collect();
    let svg = plot::bars(
        &format!("Linear probe accuracy by depth ({})", r.model),
        "validation accuracy (%)",
        &items,
        100.0,
    );
    std::fs::create_dir_all(dir.join("plots")).map_err(FileError::io(&dir.join("plots")))?;
    write_atomic(&dir.join("plots").join("probe.svg"), svg.as_bytes())?;
    write_json(&dir.join("probe.json"), r)?;
    let advice = r
        .recommendation
        .as_ref()
        .map(|x| {
            format!(
                "Recommended: {} (freeze up to {}): {}",
                x.strategy, x.freeze_after, x.reason
            )
        })
        .unwrap_or_default();
    let mut md = format!(
        "# Linear probe of {} on {}\n\n{} training and {} validation images, seed {}.\n\n**{advice}**\n\n| group | features | val accuracy |\n|---|---:|---:|\n",
        r.model,
        r.data.display(),
        r.train_images,
        r.val_images,
        r.seed
    );
    let mut rows = String::new();
    for g in &r.groups {
        let _ = writeln!(
            md,
            "| {} | {} | {:.1}% |",
            g.group,
            g.dim,
            100.0 * g.val_accuracy
        );
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{:.1}%</td></tr>",
            escape(&g.group),
            g.dim,
            100.0 * g.val_accuracy
        );
    }
    md += "\n![probe](plots/probe.svg)\n";
    write_atomic(&dir.join("probe.md"), md.as_bytes())?;
    let html = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>graft probe: {m}</title><style>{STYLE}</style></head><body>\
         <h1>Linear probe of {m} on {d}</h1><p class=\"conclusion\">{a}</p><table id=\"probe\"><tr><th>group</th><th>features</th><th>val accuracy</th></tr>{rows}</table><figure>{svg}</figure></body></html>\n",
        m = escape(&r.model),
        d = escape(&r.data.display().to_string()),
        a = escape(&advice)
    );
    write_atomic(&dir.join("probe.html"), html.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(acc: &[f64]) -> Vec<ProbeGroup> {
        acc.iter()
            .enumerate()
            .map(|(i, &a)| ProbeGroup {
                group: format!("g{i}"),
                dim: 8,
                val_accuracy: a,
            })
            .collect()
    }

    #[test]
    fn a_curve_rising_to_the_last_group_recommends_head() {
        let r = recommend(&curve(&[0.6, 0.7, 0.85, 0.95])).map(|r| r.strategy);
        assert_eq!(r.as_deref(), Some("head"));
        // Within a point of the peak still counts as the top.
        let r = recommend(&curve(&[0.6, 0.955, 0.95])).map(|r| r.strategy);
        assert_eq!(r.as_deref(), Some("head"));
    }

    #[test]
    fn a_curve_that_falls_after_a_peak_retrains_the_groups_above_it() {
        let r = recommend(&curve(&[0.6, 0.8, 0.9, 0.84, 0.8]));
        assert_eq!(r.as_ref().map(|r| r.strategy.as_str()), Some("partial:2"));
        assert_eq!(r.as_ref().map(|r| r.freeze_after.as_str()), Some("g2"));
        let reason = r.map(|r| r.reason).unwrap_or_default();
        assert!(reason.contains("peaks at g2 (90.0%)"), "{reason}");
        assert!(recommend(&[]).is_none());
    }
}
