//! `graft probe`: how well each block group's features separate the user's classes. Every group
//! but the last is global-average-pooled (one forward pass, cached); the last group's point is
//! the classifier input `head` trains on, from the same cache entries, so the two agree.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use burn::prelude::*;
use graft_data::Dataset;
use graft_report::{ProbeGroup, ProbeReport, recommend};
use graft_transfer::features::{Extractor, Output};
use graft_transfer::train::{HeadConfig, Split, train_head};
use graft_transfer::{CacheKey, FeatureCache};
use graft_weights::sha256_file;

use crate::args::{DataArgs, ProbeArgs};
use crate::progress::{Progress, log};
use crate::settings::{LoadedModel, prepare};
use crate::train::{SplitFeatures, embed_extractor, features};

/// Channels of every group's output but the last (the widths of the pooled features).
fn pooled_widths(model: &LoadedModel) -> Vec<usize> {
    let s = model.preprocess.crop as usize;
    let mut x = Tensor::<4>::zeros([1, 3, s, s], &model.device);
    let n = model.net.group_names().len();
    (0..n.saturating_sub(1))
        .map(|g| {
            x = model.net.forward_group(g, x.clone());
            x.dims()[1]
        })
        .collect()
}

fn columns(rows: &[Vec<f32>], from: usize, width: usize) -> Vec<Vec<f32>> {
    rows.iter()
        .map(|r| r[from..from + width].to_vec())
        .collect()
}

/// The linear probe's validation accuracy on `train`/`val` features (the `head` recipe).
fn fit(
    train: (&[Vec<f32>], &[usize]),
    val: (&[Vec<f32>], &[usize]),
    classes: usize,
    cfg: &HeadConfig,
    device: &Device,
) -> anyhow::Result<f64> {
    let out = train_head(
        &[Split {
            x: train.0,
            y: train.1,
        }],
        &Split { x: val.0, y: val.1 },
        classes,
        cfg,
        device,
        None,
        &mut |_| Ok(()),
    )?;
    Ok(out.fit.best_val_accuracy)
}

/// The probe curve: one accuracy per block group, the last being `head`'s.
pub fn probe(
    model: &LoadedModel,
    data: &DataArgs,
    ds: &Dataset,
    epochs: usize,
    quiet: bool,
) -> anyhow::Result<(Vec<ProbeGroup>, usize)> {
    let weights_sha256 = sha256_file(&model.weights)?;
    let cache = FeatureCache::new(graft_weights::graft_home().join("features"));
    let embed = embed_extractor(model, &cache, &weights_sha256);
    let pooled = Extractor {
        key: CacheKey {
            freeze_point: "pooled-groups".into(),
            ..embed.key.clone()
        },
        output: Output::PooledGroups,
        ..embed.clone()
    };
    let get = |ex: &Extractor<'_>, what: &str| -> (SplitFeatures, SplitFeatures) {
        (
            features(ex, &ds.train, &format!("probe {what} (train)"), quiet),
            features(
                ex,
                &ds.val,
                &format!("probe {what} ({})", ds.val_name),
                quiet,
            ),
        )
    };
    let (pt, pv) = get(&pooled, "groups");
    let (et, ev) = get(&embed, "classifier input");
    // Both passes read the same files: an unreadable image fails in both; report it once.
    let failed: Vec<&(PathBuf, String)> = et.failed.iter().chain(&ev.failed).collect();
    for (p, e) in &failed {
        eprintln!("unreadable: {} ({e})", p.display());
    }
    let cfg = HeadConfig {
        epochs,
        seed: data.seed,
        ..HeadConfig::default()
    };
    let names = model.net.group_names();
    let classes = ds.classes.len();
    let mut progress = Progress::new("probe: fit per group", names.len() as u64, "groups", quiet);
    let mut out = Vec::new();
    let mut from = 0;
    for (g, width) in pooled_widths(model).into_iter().enumerate() {
        let (tx, vx) = (columns(&pt.x, from, width), columns(&pv.x, from, width));
        let acc = fit((&tx, &pt.y), (&vx, &pv.y), classes, &cfg, &model.device)
            .with_context(|| format!("probe of group {}", names[g]))?;
        out.push(ProbeGroup {
            group: names[g].clone(),
            dim: width,
            val_accuracy: acc,
        });
        from += width;
        progress.inc(1);
    }
    let acc = fit((&et.x, &et.y), (&ev.x, &ev.y), classes, &cfg, &model.device)?;
    out.push(ProbeGroup {
        group: names.last().cloned().unwrap_or_default(),
        dim: model.net.embed_dim(),
        val_accuracy: acc,
    });
    progress.finish();
    Ok((out, failed.len()))
}

/// Runs the probe and writes its report into `dir`.
pub fn probe_into(
    dir: &Path,
    model: &LoadedModel,
    data: &DataArgs,
    ds: &Dataset,
    epochs: usize,
    quiet: bool,
) -> anyhow::Result<(ProbeReport, usize)> {
    let start = Instant::now();
    let (groups, failed) = probe(model, data, ds, epochs, quiet)?;
    let report = ProbeReport {
        model: model.spec.name.to_string(),
        data: data.data.clone(),
        train_images: ds.train.len(),
        val_images: ds.val.len(),
        seed: data.seed,
        recommendation: recommend(&groups),
        groups,
        seconds: start.elapsed().as_secs_f64(),
    };
    graft_report::write_probe(dir, &report).context("cannot write the probe report")?;
    Ok((report, failed))
}

pub fn run(args: &ProbeArgs, quiet: bool) -> anyhow::Result<usize> {
    anyhow::ensure!(args.epochs > 0, "--epochs must be at least 1");
    let (ds, model, dir) = prepare(&args.data, &args.model, args.out.as_deref(), "probe", quiet)?;
    let (report, failed) = probe_into(&dir, &model, &args.data, &ds, args.epochs, quiet)?;
    log(
        quiet,
        format!("probe report: {}", dir.join("probe.html").display()),
    );
    if args.data.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
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
    }
    Ok(failed)
}
