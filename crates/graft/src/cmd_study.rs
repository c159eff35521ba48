//! `graft compare`, `graft probe` and `graft auto`: settings in, the library's study out,
//! rendered as text or JSON.

use graft_report::Status;
use graft_run::auto::{AutoSpec, auto};
use graft_run::compare::{CompareSpec, compare};
use graft_run::probe::probe_into;
use graft_run::study;

use crate::args::{AutoArgs, CompareArgs, ProbeArgs};
use crate::progress::Terminal;
use crate::settings;

pub fn compare_cmd(args: &CompareArgs, quiet: bool) -> anyhow::Result<usize> {
    let spec = CompareSpec {
        study: settings::study(&args.model, &args.data, Some(args.out.clone())),
        strategies: args.strategies.clone(),
        epochs: args.epochs,
        budget_s: args.budget,
        patience: args.patience,
        class_map: args.class_map.clone(),
    };
    // Each strategy's run is checkpointed and its frozen features cached as they are computed.
    crate::progress::on_ctrl_c(
        "the same `graft compare` again, with --force into the same --out, starts over with the \
         frozen features computed so far cached",
    );
    let done = compare(&spec, &mut Terminal::new(quiet))?;
    let results = &done.results;
    if args.data.json {
        println!("{}", serde_json::to_string(results)?);
        return Ok(done.failed);
    }
    println!("{}\n", results.conclusion);
    for r in &results.rows {
        match r.status {
            Status::Ok => println!(
                "{:<12} {:>6.1}%  {:>8.1} s  {:>3} epochs  {}",
                r.strategy,
                100.0 * r.val_accuracy,
                r.seconds,
                r.epochs_run,
                r.stopped.replace('_', " ")
            ),
            _ => println!(
                "{:<12} failed: {}",
                r.strategy,
                r.error.as_deref().unwrap_or("")
            ),
        }
    }
    println!("\nreport: {}", done.dir.join("report.html").display());
    Ok(done.failed)
}

pub fn probe_cmd(args: &ProbeArgs, quiet: bool) -> anyhow::Result<usize> {
    anyhow::ensure!(args.epochs > 0, "--epochs must be at least 1");
    let mut obs = Terminal::new(quiet);
    let spec = settings::study(&args.model, &args.data, args.out.clone());
    let study = study::open(&spec, "probe", &|_, _| Ok(()), &mut obs)?;
    let (report, failed) = probe_into(&study.dir, &study, args.epochs, &mut obs)?;
    if args.data.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(failed);
    }
    println!("{:<10} {:>8}  val accuracy", "group", "features");
    for g in &report.groups {
        println!(
            "{:<10} {:>8}  {:>6.1}%",
            g.group,
            g.dim,
            100.0 * g.val_accuracy
        );
    }
    if let Some(r) = &report.recommendation {
        println!("\nrecommended: {} ({})", r.strategy, r.reason);
    }
    Ok(failed)
}

pub fn auto_cmd(args: &AutoArgs, quiet: bool) -> anyhow::Result<usize> {
    let spec = AutoSpec {
        study: settings::study(&args.model, &args.data, args.out.clone()),
        epochs: args.epochs,
    };
    crate::progress::on_ctrl_c(
        "the same `graft auto` again (with --force if you gave --out) starts over with the frozen \
         features computed so far cached",
    );
    let done = auto(&spec, &mut Terminal::new(quiet))?;
    if args.data.json {
        println!("{}", serde_json::to_string(&done.report)?);
    } else {
        println!("{}", done.report.explanation);
    }
    Ok(done.failed)
}
