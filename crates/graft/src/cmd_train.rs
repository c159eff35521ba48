//! `graft train`: prints the run's summary (text, or JSON with `--json`).

use crate::args::TrainArgs;
use crate::progress::Terminal;
use crate::settings;

pub fn run(args: &TrainArgs, quiet: bool) -> anyhow::Result<usize> {
    let spec = settings::train(args)?;
    // Every completed epoch is checkpointed and every frozen feature cached, atomically, so an
    // interrupted run loses at most the epoch under way; Ctrl-C says how to continue it.
    crate::progress::on_ctrl_c(
        "the run directory named above keeps every completed epoch: \
         `graft train --resume RUN_DIR` continues from the last one (before the first, the same \
         command again starts over with the frozen features computed so far cached)",
    );
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
