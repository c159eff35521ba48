//! graft's side of `bench/run.sh train`: one training step (forward, cross-entropy, backward, SGD with
//! momentum 0.9 and no dampening, as PyTorch's) on a fixed batch, timed over ITERS steps.
//!
//! cargo run --release -p graft-transfer --example bench_train -- MODEL full|partial:N INPUT.safetensors ITERS [WEIGHTS]
//! `partial:N`: the frozen groups run in inference mode without autodiff (as graft trains them,
//! minus the cache that makes graft skip them after the first epoch); only the top N groups and
//! the classifier get gradients. `partial:N-cached`: as graft's `partial:N` trains, the frozen
//! groups' output computed once (graft caches it on disk) and only the top groups run per step.
//! Prints one JSON line.

use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::prelude::*;
use graft_models::{Network, default_device};

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
    let [_, model, mode, input, iters, rest @ ..] = args.as_slice() else {
        return Err(
            "usage: bench_train MODEL full|partial:N INPUT.safetensors ITERS [WEIGHTS]".into(),
        );
    };
    let iters: usize = iters.parse()?;
    let device = default_device();
    let (spec, net) = load_net(model, rest.first(), &device)?;
    let groups = net.group_names().len();
    let cached = mode.ends_with("-cached");
    let freeze = match mode.trim_end_matches("-cached") {
        "full" => 0,
        m => {
            groups
                - m.strip_prefix("partial:")
                    .ok_or("mode: full or partial:N[-cached]")?
                    .parse::<usize>()?
        }
    };
    let batch = 16;
    let x = read_input(input, Some(batch), &device)?;
    let labels: Vec<i64> = (0..batch as i64).map(|i| (i * 37) % 1000).collect();
    let ad = device.clone().autodiff();
    let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [batch]), &ad);
    let frozen = net.clone();
    let mut net = net.fork(&ad).train();
    let mut optim = SgdConfig::new()
        .with_momentum(Some(
            MomentumConfig::new().with_momentum(0.9).with_dampening(0.0),
        ))
        .init();
    let ce = CrossEntropyLossConfig::new().init(&ad);
    let once = cached.then(|| frozen.forward_groups(0..freeze, x.clone()).into_data());
    let mut step = |net: Network| -> Network {
        let input = match &once {
            Some(data) => Tensor::from_data(data.clone(), &ad),
            None if freeze == 0 => Tensor::from_data(x.clone().into_data(), &ad),
            None => Tensor::from_data(frozen.forward_groups(0..freeze, x.clone()).into_data(), &ad),
        };
        let logits = net.classify(net.embed(net.forward_groups(freeze..groups, input)));
        let loss = ce.forward(logits, y.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        optim.step(0.01, net, grads)
    };
    net = step(net); // warm-up
    let start = Instant::now();
    for _ in 0..iters {
        net = step(net);
    }
    let secs = start.elapsed().as_secs_f64();
    drop(net);
    println!(
        "{{\"impl\":\"graft\",\"model\":\"{}\",\"mode\":\"{mode}\",\"batch\":{batch},\"images_per_second\":{:.3},\"peak_rss_mib\":{:.1}}}",
        spec.name,
        (batch * iters) as f64 / secs,
        peak_rss_mib()
    );
    Ok(())
}
