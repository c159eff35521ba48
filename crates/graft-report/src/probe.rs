//! Transferability by depth (Yosinski et al., "How transferable are features in deep neural
//! networks?", NeurIPS 2014): the report of a linear classifier on the pooled output of every
//! block group, and the freeze point that curve suggests (`graft_transfer::auto::recommend`).

use std::fmt::Write;
use std::path::{Path, PathBuf};

use graft_spec::{ProbeGroup, Recommendation};
use serde::{Deserialize, Serialize};

use crate::html::STYLE;
use crate::plot::{self, escape};
use crate::read::ReportError;
use graft_spec::io::{FileError, write_atomic, write_json};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ProbeReport {
    pub model: String,
    pub data: PathBuf,
    pub train_images: usize,
    /// The split the probe's accuracies are measured on: the selection split, so that probe
    /// (and auto, which reads it) never decides on the reported split.
    pub split: String,
    pub split_images: usize,
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
        &format!("accuracy on {} (%)", r.split),
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
        "# Linear probe of {} on {}\n\n{} training images; accuracies on the {} split ({} images), seed {}.\n\n**{advice}**\n\n| group | features | accuracy on {} |\n|---|---:|---:|\n",
        r.model,
        r.data.display(),
        r.train_images,
        r.split,
        r.split_images,
        r.seed,
        r.split
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
         <h1>Linear probe of {m} on {d}</h1><p class=\"conclusion\">{a}</p><table id=\"probe\"><tr><th>group</th><th>features</th><th>accuracy on {s}</th></tr>{rows}</table><figure>{svg}</figure></body></html>\n",
        s = escape(&r.split),
        m = escape(&r.model),
        d = escape(&r.data.display().to_string()),
        a = escape(&advice)
    );
    write_atomic(&dir.join("probe.html"), html.as_bytes())
}
