//! Logits agree with PyTorch (torchvision / the EfficientNet-Lite reference) on fixture
//! checkpoints in every weight format. Fixtures: tests/fixtures/make_fixtures.py.

mod common;
#[path = "../../../tests/fixtures/tiny.rs"]
mod tiny;

use common::{assert_close, fixtures, read_tensor};
use tiny::{lite_tiny, resnet_tiny, vgg_tiny};

use burn::prelude::*;
use graft_models::resnet::BlockKind;
use graft_models::{Arch, default_device};
use graft_weights::LoadPolicy;

fn check(arch: Arch, name: &str) {
    let device = default_device();
    let io = fixtures().join(format!("models/{name}.io.safetensors"));
    let (input, shape) = read_tensor(&io, "input");
    let (want, _) = read_tensor(&io, "logits");
    for ext in ["pth", "legacy.pth", "safetensors"] {
        let path = fixtures().join(format!("models/{name}.{ext}"));
        let (net, report) = arch
            .load(&path, &LoadPolicy::strict(), name, &device)
            .unwrap_or_else(|e| panic!("{name}.{ext}: {e}"));
        assert!(
            report.missing.is_empty() && report.unused.is_empty(),
            "{name}.{ext}: {report}"
        );
        let x = Tensor::<4>::from_data(
            TensorData::new(input.clone(), [shape[0], shape[1], shape[2], shape[3]]),
            &device,
        );
        let got: Vec<f32> = net
            .forward(x)
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32 logits");
        assert_close(&got, &want, 1e-4, &format!("{name}.{ext}"));
    }
}

#[test]
fn efficientnet_lite_matches_pytorch_with_tf_same_padding() {
    check(
        Arch::EfficientNetLite(lite_tiny()),
        "efficientnet_lite_tiny",
    );
}

#[test]
fn vgg16_matches_torchvision() {
    check(Arch::Vgg(vgg_tiny(false)), "vgg16_tiny");
}

#[test]
fn vgg16_bn_matches_torchvision() {
    check(Arch::Vgg(vgg_tiny(true)), "vgg16_bn_tiny");
}

#[test]
fn resnet18_matches_torchvision() {
    check(
        Arch::ResNet(resnet_tiny(BlockKind::Basic, [2, 2, 2, 2])),
        "resnet18_tiny",
    );
}

#[test]
fn resnet50_matches_torchvision() {
    check(
        Arch::ResNet(resnet_tiny(BlockKind::Bottleneck, [3, 4, 6, 3])),
        "resnet50_tiny",
    );
}
