//! `graft auto`: the probe (its last point is a head trained on the frozen backbone) and, where
//! it can change the choice, a short fine-tuning trial (in `RUN_DIR/trial/`) are the evidence;
//! `graft_transfer::auto::decide` picks the strategy; `graft train` trains it. The explanation
//! goes to stdout and to `auto.md` in the run directory.

use anyhow::Context;
use graft_transfer::Strategy;
use graft_transfer::auto::{Evidence, TRIAL, TRIAL_EPOCHS, decide, wants_trial};
use serde_json::json;

use crate::args::AutoArgs;
use crate::cmd_compare::strategy_settings;
use crate::cmd_probe::probe_into;
use crate::progress::log;
use crate::run_dir;
use crate::settings::prepare;
use crate::train;

pub fn run(args: &AutoArgs, quiet: bool) -> anyhow::Result<usize> {
    anyhow::ensure!(args.epochs > 0, "--epochs must be at least 1");
    let (ds, model, dir) = prepare(&args.data, &args.model, args.out.as_deref(), "auto", quiet)?;
    let probe_dir = dir.join("probe");
    std::fs::create_dir_all(&probe_dir)
        .with_context(|| format!("cannot create {}", probe_dir.display()))?;
    log(
        quiet,
        "auto: probing every block group (a linear classifier on each)",
    );
    let (probe, failed) = probe_into(&probe_dir, &model, &args.data, &ds, 30, quiet)?;
    let names = model.net.group_names();
    let retrain = match &probe.recommendation {
        Some(r) => match r.strategy.parse::<Strategy>() {
            Ok(Strategy::Partial(n)) => n,
            _ => 0,
        },
        None => 0,
    };
    let head_accuracy = probe.groups.last().map_or(0.0, |g| g.val_accuracy);
    let trial = if wants_trial(ds.train.len(), ds.classes.len(), head_accuracy) {
        log(
            quiet,
            format!("auto: a short trial of {TRIAL} ({TRIAL_EPOCHS} epochs)"),
        );
        let settings = strategy_settings(
            &args.model,
            &args.data,
            TRIAL,
            dir.join("trial"),
            TRIAL_EPOCHS,
            TRIAL_EPOCHS,
            None,
            None,
            format!("auto trial {TRIAL}: "),
        );
        let done = train::execute(&settings, model.clone(), quiet)?;
        Some((TRIAL, done.summary["val_accuracy"].as_f64().unwrap_or(0.0)))
    } else {
        None
    };
    let evidence = Evidence {
        train_images: ds.train.len(),
        classes: ds.classes.len(),
        groups: names.len(),
        probe_retrain: retrain,
        head_accuracy,
        trial,
    };
    let decision = decide(&evidence);
    log(
        quiet,
        format!("auto: {} ({})", decision.strategy, decision.rule),
    );
    let settings = strategy_settings(
        &args.model,
        &args.data,
        decision.strategy,
        dir.clone(),
        args.epochs,
        10,
        None,
        None,
        format!("auto {}: ", decision.strategy),
    );
    let done = train::execute(&settings, model, quiet)?;
    let acc = done.summary["val_accuracy"].as_f64().unwrap_or(0.0);
    let paragraph = format!(
        "{} Result: {} reaches {:.1}% on the {} images ({}).",
        decision.explanation,
        decision.strategy,
        100.0 * acc,
        ds.val_name,
        dir.display()
    );
    let curve: String = probe
        .groups
        .iter()
        .map(|g| format!("| {} | {:.1}% |\n", g.group, 100.0 * g.val_accuracy))
        .collect();
    run_dir::write_atomic(
        &dir.join("auto.md"),
        format!(
            "# graft auto: {}\n\n{paragraph}\n\n## Evidence\n\n- training images: {}\n- classes: {}\n- rule: `{}`\n\n| group | probe accuracy |\n|---|---:|\n{curve}",
            decision.strategy, evidence.train_images, evidence.classes, decision.rule
        )
        .as_bytes(),
    )?;
    let summary = json!({
        "strategy": decision.strategy.to_string(), "rule": decision.rule, "explanation": paragraph,
        "evidence": {"train_images": evidence.train_images, "classes": evidence.classes, "groups": evidence.groups,
                     "probe_retrain": evidence.probe_retrain, "head_accuracy": evidence.head_accuracy,
                     "trial": evidence.trial.map(|(s, acc)| json!({"strategy": s.to_string(), "val_accuracy": acc}))},
        "probe": probe.groups, "result": done.summary,
    });
    run_dir::write_atomic(
        &dir.join("auto.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    if args.data.json {
        println!("{summary}");
    } else {
        println!("{paragraph}");
    }
    Ok(failed + done.failed)
}
