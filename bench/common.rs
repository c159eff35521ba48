//! What the model bench examples share (`#[path]`-included, so no crate depends on another for
//! it): the model under test and the input batch. Peak memory is in `rss.rs`.

use burn::prelude::*;
use graft_models::{ModelSpec, Network, find_model};
use graft_weights::LoadPolicy;

/// The model, with `weights` when given, else randomly initialised (speed does not depend on it).
pub fn load_net(
    model: &str,
    weights: Option<&String>,
    device: &Device,
) -> Result<(ModelSpec, Network), Box<dyn std::error::Error>> {
    let spec = find_model(model)?;
    let net = match weights {
        Some(w) => {
            spec.arch
                .load(
                    std::path::Path::new(w),
                    &LoadPolicy::strict(),
                    spec.name,
                    device,
                )?
                .0
        }
        None => spec.arch.init(device),
    };
    Ok((spec, net))
}

/// The first `take` images (all when `None`) of the batch `bench/make_input.py` wrote.
pub fn read_input(
    path: &str,
    take: Option<usize>,
    device: &Device,
) -> Result<Tensor<4>, Box<dyn std::error::Error>> {
    let bytes = std::fs::read(path)?;
    let st = safetensors::SafeTensors::deserialize(&bytes)?;
    let view = st.tensor("input")?;
    let [n, c, h, w]: [usize; 4] = view.shape().try_into().map_err(|_| "input must be 4-d")?;
    let n = take.map_or(n, |t| t.min(n));
    let data: Vec<f32> = view
        .data()
        .chunks_exact(4)
        .take(n * c * h * w)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(Tensor::from_data(
        TensorData::new(data, [n, c, h, w]),
        device,
    ))
}
