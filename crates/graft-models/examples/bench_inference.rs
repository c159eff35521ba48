//! graft's side of `bench/run.sh inference`: pretrained inference throughput on a fixed input batch.
//!
//! cargo run --release -p graft-models --example bench_inference -- MODEL INPUT.safetensors ITERS [WEIGHTS]
//! BATCH=N takes the first N images of the batch (BATCH=1: latency).
//! Prints one JSON line: model, batch, images_per_second, ms_per_batch, peak_rss_mib.

use std::time::Instant;

use graft_models::default_device;

#[path = "../../../bench/common.rs"]
mod common;
#[path = "../../../bench/rss.rs"]
mod rss;
use common::{load_net, read_input};
use rss::peak_rss_mib;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // As the graft binary does at start-up.
    graft_models::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    let [_, model, input, iters, rest @ ..] = args.as_slice() else {
        return Err("usage: bench_inference MODEL INPUT.safetensors ITERS [WEIGHTS]".into());
    };
    let iters: usize = iters.parse()?;
    let device = default_device();
    let (spec, net) = load_net(model, rest.first(), &device)?;
    let take = std::env::var("BATCH").ok().map(|b| b.parse()).transpose()?;
    let x = read_input(input, take, &device)?;
    let shape = x.dims();
    // Warm-up: first-call allocations and packing.
    let _ = net.forward(x.clone()).into_data();
    let start = Instant::now();
    for _ in 0..iters {
        let _ = net.forward(x.clone()).into_data();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"impl\":\"graft\",\"model\":\"{}\",\"batch\":{},\"images_per_second\":{:.3},\"ms_per_batch\":{:.3},\"peak_rss_mib\":{:.1}}}",
        spec.name,
        shape[0],
        (shape[0] * iters) as f64 / secs,
        1000.0 * secs / iters as f64,
        peak_rss_mib()
    );
    Ok(())
}
