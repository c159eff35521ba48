//! graft's side of bench/run.sh: pretrained inference throughput on a fixed input batch.
//!
//! cargo run --release -p graft-models --example bench_inference -- MODEL INPUT.safetensors ITERS [WEIGHTS]
//! Prints one JSON line: model, batch, images_per_second, peak_rss_mib.

use std::time::Instant;

use burn::prelude::*;
use graft_models::{default_device, find_model};
use graft_weights::LoadPolicy;

#[path = "../../../bench/rss.rs"]
mod rss;
use rss::peak_rss_mib;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, model, input, iters, rest @ ..] = args.as_slice() else {
        return Err("usage: bench_inference MODEL INPUT.safetensors ITERS [WEIGHTS]".into());
    };
    let iters: usize = iters.parse()?;
    let spec = find_model(model)?;
    let device = default_device();
    let net = match rest.first() {
        Some(w) => {
            spec.arch
                .load(
                    std::path::Path::new(w),
                    &LoadPolicy::strict(),
                    spec.name,
                    &device,
                )?
                .0
        }
        None => spec.arch.init(&device),
    };
    let bytes = std::fs::read(input)?;
    let st = safetensors::SafeTensors::deserialize(&bytes)?;
    let view = st.tensor("input")?;
    let shape: [usize; 4] = view.shape().try_into().map_err(|_| "input must be 4-d")?;
    let data: Vec<f32> = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let x = Tensor::<4>::from_data(TensorData::new(data, shape), &device);
    // Warm-up: first-call allocations and packing.
    let _ = net.forward(x.clone()).into_data();
    let start = Instant::now();
    for _ in 0..iters {
        let _ = net.forward(x.clone()).into_data();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"impl\":\"graft\",\"model\":\"{}\",\"batch\":{},\"images_per_second\":{:.3},\"peak_rss_mib\":{:.1}}}",
        spec.name,
        shape[0],
        (shape[0] * iters) as f64 / secs,
        peak_rss_mib()
    );
    Ok(())
}
