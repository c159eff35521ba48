//! A registry model with seeded random weights, written as safetensors under the original
//! checkpoint's names: what benchmarks serve when the real weights cannot be downloaded (speed
//! does not depend on the values).
//!
//! cargo run --release -p graft-run --example random_weights -- MODEL OUT.safetensors

use graft_run::artifact::{network_state, safetensors_bytes};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, model, out] = args.as_slice() else {
        return Err("usage: random_weights MODEL OUT.safetensors".into());
    };
    let spec = graft_models::find_model(model)?;
    let device = graft_models::default_device();
    device.seed(0);
    let net = spec.arch.init(&device);
    graft_spec::write_atomic(
        std::path::Path::new(out),
        &safetensors_bytes(&network_state(&spec.arch, &net, true)?)?,
    )?;
    Ok(())
}
