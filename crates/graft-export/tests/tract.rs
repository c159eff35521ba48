//! A second runtime agrees: every architecture's exported graph, run by tract (a pure-Rust ONNX
//! runtime), gives graft's own logits within 1e-4 (relative to the largest) on the fixture
//! inputs, and so PyTorch's (the fixtures' logits).

#[path = "../../../tests/fixtures/tiny.rs"]
mod tiny;
#[path = "../../../tests/common/tract.rs"]
mod tract;

use std::path::{Path, PathBuf};

use burn::prelude::{Tensor as BurnTensor, TensorData};
use graft_models::{Network, default_device};
use graft_weights::LoadPolicy;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(rel)
}

fn read(path: &Path, name: &str) -> (Vec<f32>, Vec<usize>) {
    let bytes = std::fs::read(path).expect("fixture");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let v = st.tensor(name).expect("tensor");
    let data = v
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (data, v.shape().to_vec())
}

fn graft_logits(net: &Network, input: &[f32], shape: &[usize]) -> Vec<f32> {
    let x = BurnTensor::<4>::from_data(
        TensorData::new(input.to_vec(), [shape[0], shape[1], shape[2], shape[3]]),
        &default_device(),
    );
    net.forward(x).into_data().try_to_vec::<f32>().expect("f32")
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    let err = got
        .iter()
        .zip(want)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        err <= 1e-4 * scale,
        "{what}: max error {err}, scale {scale}"
    );
}

#[test]
fn tract_runs_every_exported_architecture_to_graft_s_logits() {
    let device = default_device();
    for (name, arch) in tiny::all() {
        let (net, _) = arch
            .load(
                &fixture(&format!("models/{name}.safetensors")),
                &LoadPolicy::strict(),
                name,
                &device,
            )
            .expect("fixture");
        let io = fixture(&format!("models/{name}.io.safetensors"));
        let (input, shape) = read(&io, "input");
        let (want, _) = read(&io, "logits");
        let onnx = graft_export::onnx_bytes(&net, &net.classifier_layers(), shape[2], false, &[])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let ours = graft_logits(&net, &input, &shape);
        let theirs = tract::run(&onnx, &input, &shape);
        assert_close(&theirs, &ours, &format!("{name}: tract vs graft"));
        assert_close(&theirs, &want, &format!("{name}: tract vs PyTorch"));
        // Softmax on top: rows that sum to one, in the same order.
        let probs = graft_export::onnx_bytes(&net, &net.classifier_layers(), shape[2], true, &[])
            .expect("export");
        let p = tract::run(&probs, &input, &shape);
        for row in p.chunks(want.len() / shape[0]) {
            assert!(
                (row.iter().sum::<f32>() - 1.0).abs() < 1e-5,
                "{name}: {row:?}"
            );
        }
    }
}

/// The registry's real configurations at their real input sizes (random weights: the graph, not
/// the values, is what differs from the fixtures), one image each.
#[test]
fn tract_runs_the_real_architectures_at_their_input_sizes() {
    let device = default_device();
    for name in [
        "efficientnet_lite1",
        "efficientnet_lite2",
        "resnet50",
        "vgg16",
    ] {
        let spec = graft_models::find_model(name).expect("registry");
        device.seed(7);
        let net = spec.arch.init(&device);
        let size = spec.input_size;
        let shape = [1, 3, size, size];
        let input: Vec<f32> = (0..3 * size * size)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let onnx = graft_export::onnx_bytes(&net, &net.classifier_layers(), size, false, &[])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let theirs = tract::run(&onnx, &input, &shape);
        assert_close(&theirs, &graft_logits(&net, &input, &shape), name);
    }
}
