//! Writing a compare report from its [`Results`]: the page, the markdown, the JSON and the
//! plots, each file atomically.

use std::path::Path;

use graft_spec::io::{FileError, write_atomic};

use crate::read::{ReportError, Results};

/// Writes `report.html`, `report.md`, `results.json` and `plots/*.svg` into `dir`, each
/// atomically (a temporary file renamed into place).
pub fn write(dir: &Path, results: &Results) -> Result<(), ReportError> {
    let plots = crate::html::plots(results);
    std::fs::create_dir_all(dir.join("plots")).map_err(FileError::io(&dir.join("plots")))?;
    for (name, svg) in &plots {
        write_atomic(
            &dir.join("plots").join(format!("{name}.svg")),
            svg.as_bytes(),
        )?;
    }
    graft_spec::io::write_json(&dir.join("results.json"), results)?;
    write_atomic(
        &dir.join("report.md"),
        crate::markdown::compare(results, &plots).as_bytes(),
    )?;
    write_atomic(
        &dir.join("report.html"),
        crate::html::compare(dir, results, &plots).as_bytes(),
    )
}
