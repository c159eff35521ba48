//! Frozen features: every image through the frozen groups once, then from the cache.

use std::path::PathBuf;

use burn::prelude::*;
use graft_data::Preprocess;
use graft_models::Network;
use rayon::prelude::*;

use crate::cache::{CacheKey, FeatureCache, sha256_hex};

#[derive(Clone)]
pub struct Extractor<'a> {
    pub net: &'a Network,
    pub device: &'a Device,
    pub preprocess: Preprocess,
    pub cache: &'a FeatureCache,
    pub key: CacheKey,
    pub batch_size: usize,
    pub output: Output,
}

/// What an [`Extractor`] computes for each image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// The classifier's input (what `head` trains on).
    Embed,
    /// The output of groups `0..p`, flattened (`Activations(0)`: the preprocessed image).
    Activations(usize),
    /// The global average pool of every group's output but the last, concatenated in group
    /// order (the last group's is [`Output::Embed`]): what `probe` fits a classifier on.
    PooledGroups,
}

/// Global average pool of each group's output but the last, concatenated per image.
fn pooled_groups(net: &Network, x: Tensor<4>) -> Tensor<2> {
    let n = net.group_names().len();
    let mut pooled = Vec::with_capacity(n.saturating_sub(1));
    let mut x = x;
    for g in 0..n.saturating_sub(1) {
        x = net.forward_group(g, x);
        let [b, c, _, _] = x.dims();
        pooled.push(x.clone().mean_dim(3).mean_dim(2).reshape([b, c]));
    }
    Tensor::cat(pooled, 1)
}

/// The result per input path, in order: the classifier input, or why the image failed.
pub type Features = Vec<Result<Vec<f32>, String>>;

impl Extractor<'_> {
    /// The cached quantity (see [`Extractor::upto`]) for each path. `progress(n)` is called as
    /// images are done.
    pub fn embeddings(&self, paths: &[PathBuf], progress: &mut dyn FnMut(usize)) -> Features {
        let hashes: Vec<Result<String, String>> = paths
            .par_iter()
            .map(|p| {
                std::fs::read(p)
                    .map(|b| sha256_hex(&b))
                    .map_err(|e| format!("{}: {e}", p.display()))
            })
            .collect();
        let mut out: Features = hashes
            .iter()
            .map(|h| match h {
                Ok(h) => self.cache.get(&self.key, h).ok_or_else(String::new),
                Err(e) => Err(e.clone()),
            })
            .collect();
        let cached = out.iter().filter(|r| r.is_ok()).count();
        progress(cached);
        // Misses: everything that is not cached and did hash (an empty error means "to compute").
        let todo: Vec<usize> = (0..paths.len())
            .filter(|&i| matches!(&out[i], Err(e) if e.is_empty()))
            .collect();
        let size = self.preprocess.crop as usize;
        let groups = self.net.group_names().len();
        for chunk in todo.chunks(self.batch_size.max(1)) {
            let decoded: Vec<_> = if self.key.view == 0 {
                let refs: Vec<&std::path::Path> =
                    chunk.iter().map(|&i| paths[i].as_path()).collect();
                self.preprocess.files(&refs)
            } else {
                // Augmented view: seeded by the image content and the view number.
                chunk
                    .par_iter()
                    .map(|&i| {
                        let h = hashes[i].as_deref().unwrap_or_default();
                        let seed = u64::from_str_radix(h.get(..16).unwrap_or("0"), 16).unwrap_or(0)
                            ^ u64::from(self.key.view);
                        self.preprocess.augmented_file(&paths[i], seed)
                    })
                    .collect()
            };
            let mut pixels = Vec::new();
            let mut ok = Vec::new();
            for (&i, r) in chunk.iter().zip(decoded) {
                match r {
                    Ok(chw) => {
                        pixels.extend_from_slice(&chw);
                        ok.push(i);
                    }
                    Err(e) => out[i] = Err(e.to_string()),
                }
            }
            if !ok.is_empty() {
                let x = Tensor::<4>::from_data(
                    TensorData::new(pixels, [ok.len(), 3, size, size]),
                    self.device,
                );
                let computed = match self.output {
                    Output::Embed => self.net.embed(self.net.forward_groups(0..groups, x)),
                    Output::Activations(p) => {
                        let y = self.net.forward_groups(0..p, x);
                        let [b, c, h, w] = y.dims();
                        y.reshape([b, c * h * w])
                    }
                    Output::PooledGroups => pooled_groups(self.net, x),
                };
                let values = match computed.into_data().try_to_vec::<f32>() {
                    Ok(v) => v,
                    Err(e) => {
                        // Never dropped silently: every image of the batch reports it.
                        for &i in &ok {
                            out[i] = Err(format!(
                                "{}: cannot read activations: {e:?}",
                                paths[i].display()
                            ));
                        }
                        progress(chunk.len());
                        continue;
                    }
                };
                let dim = values.len() / ok.len();
                for (row, &i) in values.chunks_exact(dim.max(1)).zip(&ok) {
                    if let Ok(h) = &hashes[i]
                        && let Err(e) = self.cache.put(&self.key, h, row)
                    {
                        // A cache that cannot be written costs speed next time, not correctness.
                        eprintln!("warning: cannot write the feature cache: {e}");
                    }
                    out[i] = Ok(row.to_vec());
                }
            }
            progress(chunk.len());
        }
        out
    }
}
