//! `graft predict`: top-k ImageNet classes per image.

use graft_data::find_images;
use graft_models::imagenet::classes;
use serde_json::json;

use crate::args::PredictArgs;
use crate::infer::{classify_files, top_k};
use crate::progress::{Progress, log};
use crate::settings::{LoadedModel, load_pretrained};
use crate::trained::load_run;

/// Returns the number of images that could not be read.
pub fn run(args: &PredictArgs, quiet: bool) -> anyhow::Result<usize> {
    let (paths, skipped) = find_images(&args.inputs)?;
    for p in &skipped {
        log(
            quiet,
            format!("skipped {} (not an image file extension)", p.display()),
        );
    }
    anyhow::ensure!(
        !paths.is_empty(),
        "no image files found in {:?}",
        args.inputs
    );
    let run = args
        .run
        .as_deref()
        .map(|d| load_run(d, args.model.batch_size, quiet))
        .transpose()?;
    let loaded;
    let (model, head, names): (&LoadedModel, _, Vec<(String, String)>) = match &run {
        Some(r) => (
            &r.model,
            Some(&r.head),
            r.classes
                .iter()
                .map(|c| (String::new(), c.clone()))
                .collect(),
        ),
        None => {
            loaded = load_pretrained(&args.model, quiet)?;
            (
                &loaded,
                None,
                classes()
                    .iter()
                    .map(|c| (c.wnid.clone(), c.name.clone()))
                    .collect(),
            )
        }
    };
    let mut progress = Progress::new("predict", paths.len() as u64, "images", quiet);
    let mut results = Vec::new();
    let mut failed = Vec::new();
    classify_files(
        model,
        head,
        &paths,
        &mut progress,
        |_, path, result| match result {
            Ok(probs) => {
                let top = top_k(&probs, args.top_k);
                if !args.json {
                    println!("{}", path.display());
                    for (i, p) in &top {
                        let (wnid, name) = &names[*i];
                        let wnid = if wnid.is_empty() {
                            String::new()
                        } else {
                            format!("{wnid}  ")
                        };
                        println!("  {:>6.2}%  {:>3}  {wnid}{name}", p * 100.0, i);
                    }
                }
                results.push(json!({
                    "path": path,
                    "top": top.iter().map(|(i, p)| json!({
                        "index": i, "wnid": names[*i].0, "name": names[*i].1, "probability": p,
                    })).collect::<Vec<_>>(),
                }));
            }
            Err(e) => {
                eprintln!("error: {e}");
                failed.push(json!({"path": path, "error": e.to_string()}));
            }
        },
    )?;
    progress.finish();
    if args.json {
        println!(
            "{}",
            json!({"model": model.spec.name, "predictions": results, "failed": failed})
        );
    }
    if !failed.is_empty() {
        eprintln!(
            "{} of {} images could not be read (listed above)",
            failed.len(),
            paths.len()
        );
    }
    Ok(failed.len())
}
