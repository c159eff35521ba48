//! graft's side of bench/train.sh: one training step (forward, cross-entropy, backward, SGD with
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
use graft_models::{Network, default_device, find_model};
use graft_weights::LoadPolicy;

#[path = "../../../bench/rss.rs"]
mod rss;
use rss::peak_rss_mib;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, model, mode, input, iters, rest @ ..] = args.as_slice() else {
        return Err(
            "usage: bench_train MODEL full|partial:N INPUT.safetensors ITERS [WEIGHTS]".into(),
        );
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
    let bytes = std::fs::read(input)?;
    let st = safetensors::SafeTensors::deserialize(&bytes)?;
    let view = st.tensor("input")?;
    let [_, c, h, w]: [usize; 4] = view.shape().try_into().map_err(|_| "input must be 4-d")?;
    let batch = 16;
    let data: Vec<f32> = view
        .data()
        .chunks_exact(4)
        .take(batch * c * h * w)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let x = Tensor::<4>::from_data(TensorData::new(data, [batch, c, h, w]), &device);
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
