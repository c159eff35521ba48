//! Frozen features: every image through the frozen groups once, then from the cache.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use burn::prelude::*;
use graft_data::Preprocess;
use graft_models::Network;
use rayon::prelude::*;

use crate::cache::{CacheKey, FeatureCache, sha256_hex};

/// The cache view id of the evaluation view mirrored left to right (test-time augmentation).
/// Training views count up from 1, so the top id cannot collide with them.
pub const MIRRORED_VIEW: u32 = u32::MAX;

#[derive(Clone)]
pub struct Extractor<'a> {
    pub net: &'a Network,
    pub device: &'a Device,
    pub preprocess: Preprocess,
    pub cache: &'a FeatureCache,
    pub key: CacheKey,
    pub batch_size: usize,
    pub output: Output,
    /// Activations cached at an earlier freeze point (by another strategy): images found there
    /// start from them instead of from the pixels, so frozen prefixes are computed once.
    pub base: Option<Base>,
}

/// Where an [`Extractor`] may start: the output of groups `0..upto`, cached under `key` (same
/// model, weights, preprocessing and view), each row an image's `shape` activations.
#[derive(Clone, Debug)]
pub struct Base {
    pub upto: usize,
    pub key: CacheKey,
    pub shape: [usize; 3],
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

/// Why an image has no features.
#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Decode(#[from] graft_data::DataError),
    #[error("{path}: cannot read activations: {message}")]
    Backend { path: PathBuf, message: String },
}

/// The result per input path, in order: the classifier input, or why the image failed.
pub type Features = Vec<Result<Vec<f32>, FeatureError>>;

/// One image on its way through [`Extractor::embeddings`].
enum Slot {
    /// Not in the cache (or stale there): to compute.
    Todo,
    Done(Result<Vec<f32>, FeatureError>),
}

/// A batch ready for the network: its images' pixels, one after another, the indices of those
/// images, and the indices that failed to decode, with why.
#[derive(Default)]
struct Batch {
    pixels: Vec<f32>,
    ok: Vec<usize>,
    failed: Vec<(usize, graft_data::DataError)>,
}

impl Extractor<'_> {
    /// The same extractor for another view of the images (its base too).
    pub fn viewing(&self, view: u32) -> Self {
        let mut ex = self.clone();
        ex.key.view = view;
        if let Some(base) = &mut ex.base {
            base.key.view = view;
        }
        ex
    }

    /// The base, when this extractor's output lies above it.
    fn usable_base(&self) -> Option<&Base> {
        let base = self.base.as_ref()?;
        let groups = self.net.group_names().len();
        let usable = match self.output {
            Output::Embed => base.upto <= groups,
            Output::Activations(p) => base.upto < p,
            Output::PooledGroups => false,
        };
        usable.then_some(base)
    }

    /// This extractor's output from the activations of groups `0..start` (`0`: the image).
    fn compute(&self, start: usize, x: Tensor<4>) -> Tensor<2> {
        let groups = self.net.group_names().len();
        match self.output {
            Output::Embed => self.net.embed_groups(start..groups, x),
            Output::Activations(p) => {
                let y = self.net.forward_groups(start..p, x);
                let [b, c, h, w] = y.dims();
                y.reshape([b, c * h * w])
            }
            Output::PooledGroups => pooled_groups(self.net, x),
        }
    }

    /// Reads `computed` back into `out`, one row per index in `ok`, and returns the indices
    /// that now hold activations. A failure to read is reported for every image of the batch,
    /// never dropped.
    fn read_back(
        &self,
        ok: Vec<usize>,
        computed: Tensor<2>,
        paths: &[PathBuf],
        out: &mut [Slot],
    ) -> Vec<usize> {
        let values = match computed.into_data().try_to_vec::<f32>() {
            Ok(v) => v,
            Err(e) => {
                for &i in &ok {
                    out[i] = Slot::Done(Err(FeatureError::Backend {
                        path: paths[i].clone(),
                        message: format!("{e:?}"),
                    }));
                }
                return Vec::new();
            }
        };
        let dim = values.len() / ok.len().max(1);
        for (row, &i) in values.chunks_exact(dim.max(1)).zip(&ok) {
            out[i] = Slot::Done(Ok(row.to_vec()));
        }
        ok
    }

    /// Writes the activations of the images `done` (indices into `out`) to the cache.
    fn cache_rows(&self, done: &[usize], hashes: &[Option<String>], out: &[Slot]) {
        for &i in done {
            let (Some(h), Slot::Done(Ok(row))) = (&hashes[i], &out[i]) else {
                continue;
            };
            if let Err(e) = self.cache.put(&self.key, h, row)
                && self
                    .cache
                    .stats
                    .write_failures
                    .fetch_add(1, Ordering::Relaxed)
                    == 0
            {
                // A cache that cannot be written costs speed next time, not correctness: the
                // run goes on and says so once, as pip does with a cache folder it cannot write.
                eprintln!("warning: cannot write the feature cache, going on without it: {e}");
            }
        }
    }

    /// Each image's content hash, and its slot: done from the cache, failed, or to compute.
    fn lookup(&self, paths: &[PathBuf]) -> (Vec<Option<String>>, Vec<Slot>) {
        let read: Vec<Result<String, FeatureError>> = paths
            .par_iter()
            .map(|p| {
                std::fs::read(p)
                    .map(|b| sha256_hex(&b))
                    .map_err(|source| FeatureError::Read {
                        path: p.clone(),
                        source,
                    })
            })
            .collect();
        let hashes = read.iter().map(|r| r.as_ref().ok().cloned()).collect();
        let slots = read
            .into_iter()
            .map(|r| match r {
                Ok(h) => match self.cache.get(&self.key, &h) {
                    Some(v) => Slot::Done(Ok(v)),
                    None => Slot::Todo,
                },
                Err(e) => Slot::Done(Err(e)),
            })
            .collect();
        (hashes, slots)
    }

    /// Computes the images in `todo` whose activations at the base freeze point are cached,
    /// from there; returns the others.
    fn start_from_base(
        &self,
        todo: Vec<usize>,
        paths: &[PathBuf],
        hashes: &[Option<String>],
        out: &mut [Slot],
        progress: &mut dyn FnMut(usize),
    ) -> Vec<usize> {
        let Some(base) = self.usable_base() else {
            return todo;
        };
        let mut found = Vec::new();
        let mut rest = Vec::new();
        for i in todo {
            let hit = hashes[i]
                .as_ref()
                .and_then(|h| self.cache.get_if_cached(&base.key, h));
            match hit {
                Some(row) => found.push((i, row)),
                None => rest.push(i),
            }
        }
        let [c, h, w] = base.shape;
        for chunk in found.chunks(self.batch_size.max(1)) {
            let rows: Vec<f32> = chunk.iter().flat_map(|(_, r)| r.iter().copied()).collect();
            let ok: Vec<usize> = chunk.iter().map(|(i, _)| *i).collect();
            let x =
                Tensor::<4>::from_data(TensorData::new(rows, [chunk.len(), c, h, w]), self.device);
            let done = self.read_back(ok, self.compute(base.upto, x), paths, out);
            self.cache_rows(&done, hashes, out);
            progress(chunk.len());
        }
        rest
    }

    /// The images of `chunk` decoded and preprocessed: the evaluation view (or its mirror
    /// image), or an augmented view seeded by the image content and the view number.
    fn decode(
        &self,
        chunk: &[usize],
        paths: &[PathBuf],
        hashes: &[Option<String>],
    ) -> Vec<Result<Vec<f32>, graft_data::DataError>> {
        let refs =
            || -> Vec<&std::path::Path> { chunk.iter().map(|&i| paths[i].as_path()).collect() };
        match self.key.view {
            0 => return self.preprocess.files(&refs()),
            MIRRORED_VIEW => return self.preprocess.mirrored_files(&refs()),
            _ => {}
        }
        chunk
            .par_iter()
            .map(|&i| {
                let h = hashes[i].as_deref().unwrap_or_default();
                let seed = u64::from_str_radix(h.get(..16).unwrap_or("0"), 16).unwrap_or(0)
                    ^ u64::from(self.key.view);
                self.preprocess.augmented_file(&paths[i], seed)
            })
            .collect()
    }

    /// The images of `chunk` decoded into one buffer, image after image, with the indices of
    /// those in it and the failures. Gathering them here, on the decoding side of the
    /// pipeline, keeps the copy (a batch of 32 is 19 MB) off the pass's critical path: done
    /// between passes it took 3% of `graft train --strategy head`.
    fn batch(&self, chunk: &[usize], paths: &[PathBuf], hashes: &[Option<String>]) -> Batch {
        let decoded = self.decode(chunk, paths, hashes);
        let image = 3 * (self.preprocess.crop as usize).pow(2);
        let fine = decoded.iter().filter(|r| r.is_ok()).count();
        let mut b = Batch {
            pixels: Vec::with_capacity(fine * image),
            ..Batch::default()
        };
        for (&i, r) in chunk.iter().zip(decoded) {
            match r {
                Ok(chw) => {
                    b.pixels.extend_from_slice(&chw);
                    b.ok.push(i);
                }
                Err(e) => b.failed.push((i, e)),
            }
        }
        b
    }

    /// The cached quantity (see [`Extractor::output`]) for each path. `progress(n)` is called
    /// as images are done.
    pub fn embeddings(&self, paths: &[PathBuf], progress: &mut dyn FnMut(usize)) -> Features {
        let (hashes, mut out) = self.lookup(paths);
        let cached = out
            .iter()
            .filter(|s| matches!(s, Slot::Done(Ok(_))))
            .count();
        progress(cached);
        let todo: Vec<usize> = (0..paths.len())
            .filter(|&i| matches!(out[i], Slot::Todo))
            .collect();
        let todo = self.start_from_base(todo, paths, &hashes, &mut out, progress);
        let size = self.preprocess.crop as usize;
        let chunks: Vec<&[usize]> = todo.chunks(self.batch_size.max(1)).collect();
        let decode = |k: usize| {
            chunks
                .get(k)
                .map_or_else(Batch::default, |c| self.batch(c, paths, &hashes))
        };
        let mut next = decode(0);
        // The batch before this one, computed and not yet written to the cache.
        let mut unwritten = Vec::new();
        for (k, chunk) in chunks.iter().enumerate() {
            let Batch { pixels, ok, failed } = std::mem::take(&mut next);
            for (i, e) in failed {
                out[i] = Slot::Done(Err(e.into()));
            }
            // The next batch decodes (and is gathered into one buffer), and the last one is
            // written to the cache, while this one runs through the network: the pass's
            // parallel loops leave gaps on the other core that decoding and writing fill.
            // Written between passes, the cache's files (their creation is 6% of strategy 2's
            // CPU time on hymenoptera) left the other core idle.
            let (computed, decoded) = rayon::join(
                || {
                    (!ok.is_empty()).then(|| {
                        let shape = [ok.len(), 3, size, size];
                        self.compute(
                            0,
                            Tensor::<4>::from_data(TensorData::new(pixels, shape), self.device),
                        )
                    })
                },
                || {
                    self.cache_rows(&unwritten, &hashes, &out);
                    decode(k + 1)
                },
            );
            next = decoded;
            unwritten = computed.map_or_else(Vec::new, |y| self.read_back(ok, y, paths, &mut out));
            progress(chunk.len());
        }
        self.cache_rows(&unwritten, &hashes, &out);
        // Every image to compute was computed above or failed with its reason; one left over
        // would be a bug here, reported as that image's failure rather than a crash.
        out.into_iter()
            .zip(paths)
            .map(|(s, p)| match s {
                Slot::Done(r) => r,
                Slot::Todo => Err(FeatureError::Backend {
                    path: p.clone(),
                    message: "no activations were computed".into(),
                }),
            })
            .collect()
    }
}
