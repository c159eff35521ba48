//! `graft train`: prints the run's summary (text, or JSON with `--json`).

use crate::args::TrainArgs;
use crate::progress::Terminal;
use crate::settings;

pub fn run(args: &TrainArgs, quiet: bool) -> anyhow::Result<usize> {
    let spec = settings::train(args)?;
    let done = graft_run::train(&spec, &mut Terminal::new(quiet))?;
    if args.json {
        if !quiet {
            eprint!("{}", done.text);
        }
        println!("{}", serde_json::to_string(&done.result)?);
    } else {
        print!("{}", done.text);
    }
    Ok(done.failed)
}
