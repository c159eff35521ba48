//! Batched inference over image files: decode in parallel, one forward pass per batch, one
//! result per file (a file that fails is reported, never dropped).

use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::tensor::activation::softmax;
use graft_data::DataError;
use graft_transfer::head::Head;

use crate::error::{Result, RunError};
use crate::observer::{Event, Observer, ObserverExt};
use crate::pretrained::LoadedModel;

/// Class probabilities of a batch, flat: through `head` when given (a trained model, on the
/// backbone's pooled features), else the backbone's own classifier.
pub fn probabilities(model: &LoadedModel, head: Option<&Head>, x: Tensor<4>) -> Result<Vec<f32>> {
    let logits = match head {
        Some(h) => {
            let n = model.net.group_names().len();
            h.forward(model.net.embed_groups(0..n, x))
        }
        None => model.net.forward(x),
    };
    softmax(logits, 1)
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| RunError::Backend(format!("cannot read the model's output: {e:?}")))
}

/// Calls `each(index, path, probabilities or error)` for every path, in order.
/// With `head`, the backbone's pooled features go through it (a trained model) instead of the
/// backbone's own classifier.
pub fn classify_files(
    model: &LoadedModel,
    head: Option<&Head>,
    paths: &[PathBuf],
    obs: &mut dyn Observer,
    mut each: impl FnMut(usize, &PathBuf, std::result::Result<Vec<f32>, DataError>),
) -> Result<()> {
    let size = model.preprocess.crop as usize;
    let batch = model.batch_size.max(1);
    obs.begin("predict", paths.len() as u64, "images");
    for (chunk_no, chunk) in paths.chunks(batch).enumerate() {
        let refs: Vec<&Path> = chunk.iter().map(|p| p.as_path()).collect();
        let decoded = model.preprocess.files(&refs);
        let mut pixels = Vec::new();
        let mut ok = Vec::new();
        for (i, result) in decoded.iter().enumerate() {
            if let Ok(chw) = result {
                pixels.extend_from_slice(chw);
                ok.push(i);
            }
        }
        let mut probs = Vec::new();
        if !ok.is_empty() {
            let x = Tensor::<4>::from_data(
                TensorData::new(pixels, [ok.len(), 3, size, size]),
                &model.device,
            );
            probs = probabilities(model, head, x)?;
        }
        let classes = probs.len() / ok.len().max(1);
        let mut rows = probs.chunks_exact(classes.max(1));
        for (i, result) in decoded.into_iter().enumerate() {
            let index = chunk_no * batch + i;
            match result {
                Err(e) => each(index, &chunk[i], Err(e)),
                Ok(_) => {
                    let row = rows.next().map(<[f32]>::to_vec).unwrap_or_default();
                    each(index, &chunk[i], Ok(row));
                }
            }
        }
        obs.event(Event::Advance(chunk.len() as u64));
    }
    obs.event(Event::End);
    Ok(())
}

/// Indices of the `k` largest values, largest first (ties: lower index first).
pub fn top_k(values: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    idx.into_iter().take(k).map(|i| (i, values[i])).collect()
}

/// The `k` most probable of `classes`, most probable first, as labels.
pub fn labels(classes: &[String], probs: &[f32], k: usize) -> Vec<crate::Label> {
    top_k(probs, k)
        .into_iter()
        .map(|(index, score)| crate::Label {
            label: classes.get(index).cloned().unwrap_or_default(),
            score,
            index,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_by_value_then_index() {
        assert_eq!(
            top_k(&[0.1, 0.5, 0.5, 0.2], 3),
            vec![(1, 0.5), (2, 0.5), (3, 0.2)]
        );
        assert_eq!(top_k(&[0.3], 5), vec![(0, 0.3)]);
    }
}
