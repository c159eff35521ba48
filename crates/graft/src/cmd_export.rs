//! `graft export`: settings in, the library's export out, the files written on stdout.

use graft_run::export::{ExportSpec, Source, export};
use serde_json::json;

use crate::args::ExportArgs;
use crate::progress::Terminal;
use crate::settings;

pub fn run(args: &ExportArgs, quiet: bool) -> anyhow::Result<()> {
    let source = match &args.run {
        Some(dir) => Source::Run(dir.clone(), settings::architecture(&args.model)),
        None => Source::Pretrained(settings::architecture(&args.model)),
    };
    let spec = ExportSpec {
        source,
        format: args.format,
        out: args.out.clone(),
        probabilities: args.probabilities,
    };
    let done = export(&spec, &mut Terminal::new(quiet))?;
    if args.json {
        println!(
            "{}",
            json!({"files": done.files, "architecture": done.card.architecture,
                   "classes": done.card.classes.len(), "strategy": done.card.strategy.to_string()})
        );
    } else {
        for f in &done.files {
            println!("{}", f.display());
        }
    }
    Ok(())
}
