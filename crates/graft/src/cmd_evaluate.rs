//! `graft evaluate`: top-1/top-5 of a pretrained model on ImageNet-labelled images.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use graft_data::{LabeledImage, find_images, read_list_file};
use graft_models::imagenet::parse_label;
use serde_json::json;

use crate::args::EvaluateArgs;
use crate::infer::{classify_files, top_k};
use crate::progress::{Progress, log};
use crate::settings::load_pretrained;

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
