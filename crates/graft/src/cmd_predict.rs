//! `graft predict`: top-k classes per image, ImageNet's or a trained run's.

use graft_data::find_images;
use graft_models::imagenet::classes;
use graft_run::infer::{classify_files, top_k};
use graft_run::{TrainedModel, load_pretrained};
use graft_spec::files::MODEL_CARD;
use serde_json::json;

use crate::args::PredictArgs;
use crate::progress::{Terminal, log};
use crate::settings;

/// Returns the number of images that could not be read.
pub fn run(args: &PredictArgs, quiet: bool) -> anyhow::Result<usize> {
    // `graft export` and `graft serve` take a run directory first; here it would be searched
    // for images, hold none, and leave ImageNet's classes for the images listed after it.
    if let Some(dir) = args.inputs.iter().find(|p| p.join(MODEL_CARD).is_file()) {
        anyhow::bail!(
            "{} is a run directory from `graft train` ({MODEL_CARD}), not images: to predict its \
             classes, give it with --run (graft predict --run {} IMAGE_OR_DIR...)",
            dir.display(),
            dir.display()
        );
    }
    let mut obs = Terminal::new(quiet);
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
    let choice = settings::model(&args.model);
    let trained = args.run.as_deref().map(TrainedModel::load).transpose()?;
    let (model, head, names): (_, _, Vec<(String, String)>) = match &trained {
        Some(t) => (
            t.as_loaded(&choice),
            Some(&t.head),
            t.card
                .classes
                .iter()
                .map(|c| (String::new(), c.clone()))
                .collect(),
        ),
        None => (
            load_pretrained(&choice, &mut obs)?,
            None,
            classes()
                .iter()
                .map(|c| (c.wnid.clone(), c.name.clone()))
                .collect(),
        ),
    };
    let mut results = Vec::new();
    let mut failed = Vec::new();
    classify_files(
        &model,
        head,
        &paths,
        &mut obs,
        |_, path, result| match result {
            Ok(probs) => {
                let top = top_k(&probs, usize::from(args.top_k));
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
