//! graft: a thin binary over the graft libraries. It parses arguments, resolves them into the
//! run API's settings (`settings.rs`), calls `graft_run`, and renders what comes back. Results
//! go to stdout, logs and progress to stderr. Exit status: 0 on success, 1 when any input
//! failed or on error, 2 on bad usage.

mod args;
mod cmd_cache;
mod cmd_evaluate;
mod cmd_export;
mod cmd_lr_find;
mod cmd_predict;
mod cmd_serve;
mod cmd_study;
mod cmd_train;
mod cmd_weights;
mod progress;
mod settings;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command, WeightsCommand};

fn run(cli: &Cli) -> anyhow::Result<usize> {
    if let Some(n) = cli.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()?;
    }
    match &cli.command {
        Command::Weights(WeightsCommand::List { json }) => cmd_weights::list(*json).map(|_| 0),
        Command::Weights(WeightsCommand::Fetch { model, all }) => {
            cmd_weights::fetch(model.as_deref(), *all, cli.quiet).map(|_| 0)
        }
        Command::Weights(WeightsCommand::Inspect { file, json }) => {
            cmd_weights::inspect(file, *json).map(|_| 0)
        }
        Command::Predict(args) => cmd_predict::run(args, cli.quiet),
        Command::Evaluate(args) => cmd_evaluate::run(args, cli.quiet),
        Command::Train(args) => cmd_train::run(args, cli.quiet),
        Command::Compare(args) => cmd_study::compare_cmd(args, cli.quiet),
        Command::Probe(args) => cmd_study::probe_cmd(args, cli.quiet),
        Command::Auto(args) => cmd_study::auto_cmd(args, cli.quiet),
        Command::LrFind(args) => cmd_lr_find::run(args, cli.quiet),
        Command::Export(args) => cmd_export::run(args, cli.quiet).map(|_| 0),
        Command::Serve(args) => cmd_serve::run(args, cli.quiet).map(|_| 0),
        Command::Cache(command) => cmd_cache::run(command, cli.quiet),
    }
}

fn main() -> ExitCode {
    // Freed tensor memory is reused rather than unmapped and faulted in again every step.
    graft_models::keep_freed_memory();
    // `graft predict dir/ | head`: a closed stdout ends the run quietly, as for other Unix tools.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        // `graft predict ... > /dev/full`: results that cannot be written are an error like
        // any other, not a crash report.
        if let Some(why) = msg.strip_prefix("failed printing to stdout: ") {
            eprintln!("error: cannot write results to standard output: {why}");
            std::process::exit(1);
        }
        default_hook(info);
    }));
    let cli = Cli::parse();
    match run(&cli) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
