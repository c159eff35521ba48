//! `graft evaluate`: top-1/top-5 of a pretrained model on ImageNet-labelled images.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use graft_data::{LabeledImage, Sample, SplitOptions, find_images, open_dataset, read_list_file};
use graft_models::imagenet::parse_label;
use graft_transfer::FeatureCache;
use graft_transfer::train::{Split, evaluate_head};
use serde_json::json;

use crate::args::EvaluateArgs;
use crate::infer::{classify_files, top_k};
use crate::progress::{Progress, log};
use crate::settings::load_pretrained;
use crate::train::{embed_extractor, features};
use crate::trained::load_run;

/// Images with their ImageNet class index, from a list file or a folder of class folders.
fn labelled_images(data: &Path) -> anyhow::Result<Vec<(PathBuf, usize)>> {
    let items: Vec<LabeledImage> = if data.is_dir() {
        let (paths, _) = find_images(&[data.to_path_buf()])?;
        paths
            .into_iter()
            .map(|path| {
                let label = path
                    .parent()
                    .and_then(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                LabeledImage { path, label }
            })
            .collect()
    } else {
        read_list_file(data)?
    };
    items
        .into_iter()
        .map(|item| {
            let class = parse_label(&item.label).with_context(|| {
                format!(
                    "{}: label {:?} of {} is not an ImageNet wnid (n01440764) or class index (0..999)",
                    data.display(),
                    item.label,
                    item.path.display()
                )
            })?;
            Ok((item.path, class))
        })
        .collect()
}

/// Returns the number of images that could not be read.
pub fn run(args: &EvaluateArgs, quiet: bool) -> anyhow::Result<usize> {
    if let Some(dir) = &args.run {
        return run_trained(dir, args, quiet);
    }
    let items = labelled_images(&args.data)?;
    anyhow::ensure!(!items.is_empty(), "{}: no images", args.data.display());
    let model = load_pretrained(&args.model, quiet)?;
    let paths: Vec<PathBuf> = items.iter().map(|(p, _)| p.clone()).collect();
    let start = Instant::now();
    let mut progress = Progress::new("evaluate", paths.len() as u64, "images", quiet);
    let (mut n, mut top1, mut top5) = (0usize, 0usize, 0usize);
    let mut failed = Vec::new();
    classify_files(
        &model,
        None,
        &paths,
        &mut progress,
        |i, path, result| match result {
            Ok(probs) => {
                let top = top_k(&probs, 5);
                let label = items[i].1;
                n += 1;
                top1 += usize::from(top.first().is_some_and(|(c, _)| *c == label));
                top5 += usize::from(top.iter().any(|(c, _)| *c == label));
            }
            Err(e) => {
                eprintln!("error: {e}");
                failed.push(json!({"path": path, "error": e.to_string()}));
            }
        },
    )?;
    progress.finish();
    let seconds = start.elapsed().as_secs_f64();
    let frac = |k: usize| if n == 0 { 0.0 } else { k as f64 / n as f64 };
    if args.json {
        println!(
            "{}",
            json!({
                "model": model.spec.name,
                "weights": model.weights,
                "tensors_loaded": model.report.applied.len(),
                "data": args.data,
                "n": n,
                "top1": frac(top1),
                "top5": frac(top5),
                "seconds": seconds,
                "images_per_second": n as f64 / seconds.max(1e-9),
                "failed": failed,
            })
        );
    } else {
        println!("model:   {} ({})", model.spec.name, model.weights.display());
        println!("data:    {}", args.data.display());
        println!("images:  {n} evaluated, {} unreadable", failed.len());
        println!("top-1:   {:.2}%", 100.0 * frac(top1));
        println!("top-5:   {:.2}%", 100.0 * frac(top5));
        println!(
            "time:    {seconds:.1} s ({:.1} images/s)",
            n as f64 / seconds.max(1e-9)
        );
    }
    if !failed.is_empty() {
        log(
            quiet,
            format!(
                "{} of {} images could not be read (listed above)",
                failed.len(),
                paths.len()
            ),
        );
    }
    Ok(failed.len())
}

/// `evaluate --run`: the run's classifier on a split of a dataset in `graft train`'s forms.
fn run_trained(dir: &Path, args: &EvaluateArgs, quiet: bool) -> anyhow::Result<usize> {
    let start = Instant::now();
    let run = load_run(dir, args.model.batch_size, quiet)?;
    let ds = open_dataset(
        &args.data,
        SplitOptions {
            val_fraction: run.val_fraction,
            seed: run.seed,
        },
    )?;
    // Labels by class name: the dataset's own order need not be the run's.
    let mut map = Vec::new();
    for c in &ds.classes {
        let i = run.classes.iter().position(|k| k == c).with_context(|| {
            format!(
                "{}: class {c:?} is not one the run was trained on ({})",
                args.data.display(),
                run.classes.join(", ")
            )
        })?;
        map.push(i);
    }
    let samples: Vec<Sample> = match args.split.to_ascii_lowercase().as_str() {
        "train" => ds.train.clone(),
        "val" | "test" | "valid" | "validation" => ds.val.clone(),
        "all" => ds.train.iter().chain(&ds.val).cloned().collect(),
        other => anyhow::bail!("unknown --split {other:?}: use train, val (or test) or all"),
    };
    let cache = FeatureCache::new(graft_weights::graft_home().join("features"));
    let extractor = embed_extractor(&run.model, &cache, &run.weights_sha256);
    let feats = features(&extractor, &samples, "evaluate", quiet);
    for (p, e) in &feats.failed {
        eprintln!("unreadable: {} ({e})", p.display());
    }
    let labels: Vec<usize> = feats.y.iter().map(|&c| map[c]).collect();
    let confusion = evaluate_head(
        &run.head,
        &Split {
            x: &feats.x,
            y: &labels,
        },
        run.classes.len(),
        &run.model.device,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?
    .confusion;
    let seconds = start.elapsed().as_secs_f64();
    if args.json {
        println!(
            "{}",
            json!({
                "run_dir": dir, "data": args.data, "split": args.split, "n": confusion.total(),
                "top1": confusion.accuracy(), "accuracy": confusion.accuracy(), "seconds": seconds,
                "per_class": run.classes.iter().enumerate().map(|(i, c)| json!({
                    "class": c, "precision": confusion.precision(i), "recall": confusion.recall(i),
                })).collect::<Vec<_>>(),
                "confusion": confusion.matrix,
                "failed": feats.failed.iter().map(|(p, e)| json!({"path": p, "error": e})).collect::<Vec<_>>(),
            })
        );
    } else {
        println!("run:      {}", dir.display());
        println!(
            "data:     {} ({} split, {} images)",
            args.data.display(),
            args.split,
            confusion.total()
        );
        println!("accuracy: {:.2}%\n", 100.0 * confusion.accuracy());
        print!("{}", confusion.render(&run.classes));
    }
    Ok(feats.failed.len())
}
