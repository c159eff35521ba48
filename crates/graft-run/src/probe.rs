//! `probe`: how well each block group's features separate the user's classes. Every group but
//! the last is global-average-pooled (one forward pass, cached); the last group's point is the
//! classifier input `head` trains on, from the same cache entries, so the two agree.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::prelude::*;
use graft_data::Dataset;
use graft_report::ProbeReport;
use graft_spec::FitConfig;
use graft_spec::ProbeGroup;
use graft_transfer::CacheKey;
use graft_transfer::auto::recommend;
use graft_transfer::features::{Extractor, Output};
use graft_transfer::train::{Split, train_head};

use crate::error::{Context, Result};
use crate::observer::{Event, Observer, ObserverExt};
use crate::pretrained::LoadedModel;
use crate::study::Study;
use crate::train::{SplitFeatures, embed_extractor, extract, feature_cache, split_features};

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

/// The linear probe's accuracy on the `select` features, trained on `train` (the `head`
/// recipe, its epoch chosen on `select`).
fn fit(
    train: (&[Vec<f32>], &[usize]),
    val: (&[Vec<f32>], &[usize]),
    classes: usize,
    cfg: &FitConfig,
    device: &Device,
) -> Result<f64> {
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

/// The training and selection splits' features, in one pass.
fn train_and_select(
    ex: &Extractor<'_>,
    ds: &Dataset,
    what: &str,
    obs: &mut dyn Observer,
) -> (SplitFeatures, SplitFeatures) {
    let label = format!("probe {what} (train, {})", ds.select_name());
    let [train, select] = split_features(ex, [&ds.train, &ds.select], &label, obs);
    (train, select)
}

/// The probe curve: one accuracy per block group on the selection split (the reported split is
/// never read), the last being `head`'s; and how many images could not be read.
pub fn probe(
    model: &LoadedModel,
    ds: &Dataset,
    seed: u64,
    epochs: usize,
    obs: &mut dyn Observer,
) -> Result<(Vec<ProbeGroup>, usize)> {
    let cache = feature_cache(&model.home);
    let embed = embed_extractor(model, &cache, &model.weights_sha256);
    let pooled = Extractor {
        key: CacheKey {
            freeze_point: "pooled-groups".into(),
            ..embed.key.clone()
        },
        output: Output::PooledGroups,
        ..embed.clone()
    };
    let (pt, pv) = train_and_select(&pooled, ds, "groups", obs);
    let (et, ev) = train_and_select(&embed, ds, "classifier input", obs);
    // Both passes read the same files: an unreadable image fails in both; report it once.
    let failed: Vec<(PathBuf, String)> = et.failed.iter().chain(&ev.failed).cloned().collect();
    extract::report_unreadable(&failed, obs);
    let cfg = FitConfig {
        epochs,
        seed,
        ..FitConfig::default()
    };
    let names = model.net.group_names();
    let classes = ds.classes.len();
    obs.begin("probe: fit per group", names.len() as u64, "groups");
    let mut out = Vec::new();
    let mut from = 0;
    for (g, width) in pooled_widths(model).into_iter().enumerate() {
        let (tx, vx) = (columns(&pt.x, from, width), columns(&pv.x, from, width));
        let acc = fit((&tx, &pt.y), (&vx, &pv.y), classes, &cfg, &model.device)
            .context(|| format!("probe of group {}", names[g]))?;
        out.push(ProbeGroup {
            group: names[g].clone(),
            dim: width,
            val_accuracy: acc,
        });
        from += width;
        obs.event(Event::Advance(1));
    }
    let acc = fit((&et.x, &et.y), (&ev.x, &ev.y), classes, &cfg, &model.device)?;
    out.push(ProbeGroup {
        group: names.last().cloned().unwrap_or_default(),
        dim: model.net.embed_dim(),
        val_accuracy: acc,
    });
    obs.event(Event::Advance(1));
    obs.event(Event::End);
    Ok((out, failed.len()))
}

/// Runs the probe and writes its report (`probe.html`, `.md`, `.json`, `plots/probe.svg`)
/// into `dir`.
pub fn probe_into(
    dir: &Path,
    study: &Study,
    epochs: usize,
    obs: &mut dyn Observer,
) -> Result<(ProbeReport, usize)> {
    let start = Instant::now();
    let (groups, failed) = probe(&study.model, &study.ds, study.seed, epochs, obs)?;
    let report = ProbeReport {
        model: study.model.spec.name.to_string(),
        data: study.data.clone(),
        train_images: study.ds.train.len(),
        split: study.ds.select_name().to_string(),
        split_images: study.ds.select.len(),
        seed: study.seed,
        recommendation: recommend(&groups),
        groups,
        seconds: start.elapsed().as_secs_f64(),
    };
    graft_report::write_probe(dir, &report).context(|| "cannot write the probe report".into())?;
    obs.log(format!(
        "probe report: {}",
        dir.join("probe.html").display()
    ));
    Ok((report, failed))
}
