//! `graft predict`: top-k ImageNet classes per image.

use graft_data::find_images;
use graft_models::imagenet::classes;
use serde_json::json;

use crate::args::PredictArgs;
use crate::infer::{classify_files, top_k};
use crate::progress::{Progress, log};
use crate::settings::load_pretrained;

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
    let model = load_pretrained(&args.model, quiet)?;
    let names = classes();
    let mut progress = Progress::new("predict", paths.len() as u64, "images", quiet);
    let mut results = Vec::new();
    let mut failed = Vec::new();
    classify_files(
        &model,
        &paths,
        &mut progress,
        |_, path, result| match result {
            Ok(probs) => {
                let top = top_k(&probs, args.top_k);
                if !args.json {
                    println!("{}", path.display());
                    for (i, p) in &top {
                        let c = &names[*i];
                        println!("  {:>6.2}%  {:>3}  {}  {}", p * 100.0, i, c.wnid, c.name);
                    }
                }
                results.push(json!({
                "path": path,
                "top": top.iter().map(|(i, p)| json!({
                    "index": i, "wnid": names[*i].wnid, "name": names[*i].name, "probability": p,
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
