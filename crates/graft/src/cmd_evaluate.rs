//! `graft evaluate`: top-1/top-5 of a pretrained model on ImageNet-labelled images, or a
//! trained run's accuracy on a split of a dataset.

use std::path::Path;

use graft_run::evaluate::{evaluate_pretrained, evaluate_trained, labelled_images};
use graft_run::load_pretrained;
use serde_json::json;

use crate::args::EvaluateArgs;
use crate::progress::{Terminal, log};
use crate::settings;

/// Returns the number of images that could not be read.
pub fn run(args: &EvaluateArgs, quiet: bool) -> anyhow::Result<usize> {
    if let Some(dir) = &args.run {
        return run_trained(dir, args, quiet);
    }
    let mut obs = Terminal::new(quiet);
    let items = labelled_images(&args.data)?;
    anyhow::ensure!(!items.is_empty(), "{}: no images", args.data.display());
    let model = load_pretrained(&settings::model(&args.model), &mut obs)?;
    let s = evaluate_pretrained(&model, &items, &mut obs)?;
    for (p, e) in &s.failed {
        eprintln!("error: {}: {e}", p.display());
    }
    let rate = s.n as f64 / s.seconds.max(1e-9);
    if args.json {
        println!(
            "{}",
            json!({
                "model": model.spec.name,
                "weights": model.weights,
                "tensors_loaded": model.report.applied.len(),
                "data": args.data,
                "n": s.n,
                "top1": s.top1,
                "top5": s.top5,
                "seconds": s.seconds,
                "images_per_second": rate,
                "failed": s.failed.iter().map(|(p, e)| json!({"path": p, "error": e})).collect::<Vec<_>>(),
            })
        );
    } else {
        println!("model:   {} ({})", model.spec.name, model.weights.display());
        println!("data:    {}", args.data.display());
        println!("images:  {} evaluated, {} unreadable", s.n, s.failed.len());
        println!("top-1:   {:.2}%", 100.0 * s.top1);
        println!("top-5:   {:.2}%", 100.0 * s.top5);
        println!("time:    {:.1} s ({rate:.1} images/s)", s.seconds);
    }
    if !s.failed.is_empty() {
        log(
            quiet,
            format!(
                "{} of {} images could not be read (listed above)",
                s.failed.len(),
                items.len()
            ),
        );
    }
    Ok(s.failed.len())
}

/// `evaluate --run`: the run's trained model on a split of a dataset in `graft train`'s forms.
fn run_trained(dir: &Path, args: &EvaluateArgs, quiet: bool) -> anyhow::Result<usize> {
    let choice = settings::model(&args.model);
    let s = evaluate_trained(
        dir,
        &args.data,
        args.split,
        args.tta,
        &choice,
        &mut Terminal::new(quiet),
    )?;
    let c = &s.confusion;
    if args.json {
        println!(
            "{}",
            json!({
                "run_dir": dir, "data": args.data, "split": args.split.to_string(),
                "n": c.total(), "top1": c.accuracy(), "accuracy": c.accuracy(), "tta": s.tta, "seconds": s.seconds,
                "per_class": s.classes.iter().enumerate().map(|(i, name)| json!({
                    "class": name, "precision": c.precision(i), "recall": c.recall(i),
                })).collect::<Vec<_>>(),
                "confusion": c.matrix,
                "failed": s.failed.iter().map(|(p, e)| json!({"path": p, "error": e})).collect::<Vec<_>>(),
            })
        );
    } else {
        println!("run:      {}", dir.display());
        println!(
            "data:     {} ({} split, {} images)",
            args.data.display(),
            args.split,
            c.total()
        );
        println!(
            "accuracy: {:.2}% (test-time augmentation: {})\n",
            100.0 * c.accuracy(),
            s.tta
        );
        print!("{}", c.render(&s.classes));
    }
    Ok(s.failed.len())
}
