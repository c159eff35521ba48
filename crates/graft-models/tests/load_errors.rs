//! A checkpoint that does not fit is refused with the load report's tensor names.

mod common;

use graft_models::resnet::{BlockKind, ResNetConfig};
use graft_models::{Arch, default_device, find_model};
use graft_weights::{LoadPolicy, WeightsError};

fn resnet18_tiny(classes: usize) -> Arch {
    Arch::ResNet(ResNetConfig {
        block: BlockKind::Basic,
        layers: [2, 2, 2, 2],
        stem: 8,
        widths: [8, 16, 32, 64],
        num_classes: classes,
    })
}

#[test]
fn checkpoint_for_another_architecture_names_missing_and_unused_tensors() {
    let path = common::fixtures().join("models/resnet18_tiny.pth");
    let lite = find_model("efficientnet_lite0").expect("registry").arch;
    let err = lite
        .load(
            &path,
            &LoadPolicy::strict(),
            "efficientnet_lite0",
            &default_device(),
        )
        .expect_err("refused");
    let WeightsError::Incompatible { report, .. } = &err else {
        panic!("wrong error: {err}")
    };
    assert!(
        report.missing.iter().any(|n| n == "stem.conv.weight") || !report.mismatched.is_empty(),
        "{report}"
    );
    assert!(
        report.unused.iter().any(|n| n == "layer1.0.conv1.weight"),
        "{report}"
    );
    let text = err.to_string();
    assert!(
        text.contains("resnet18_tiny.pth") && text.contains("efficientnet_lite0"),
        "{text}"
    );
    assert!(text.contains("in the file but not in the model"), "{text}");
}

#[test]
fn shape_mismatch_names_the_tensor_with_both_shapes() {
    let path = common::fixtures().join("models/resnet18_tiny.safetensors");
    let err = resnet18_tiny(5)
        .load(&path, &LoadPolicy::strict(), "resnet18", &default_device())
        .expect_err("refused");
    let text = err.to_string();
    // burn's Linear stores [in, out]: the file's [10, 64] head arrives as [64, 10].
    assert!(
        text.contains("fc.weight: model expects [64, 5], file has [64, 10]"),
        "{text}"
    );
}

#[test]
fn replaced_head_may_be_missing_or_mismatched_when_the_policy_says_so() {
    let path = common::fixtures().join("models/resnet18_tiny.pth");
    let arch = resnet18_tiny(5);
    let policy = LoadPolicy::replacing_head(arch.classifier_prefixes());
    let (_, report) = arch
        .load(&path, &policy, "resnet18", &default_device())
        .expect("loads");
    assert!(
        report.mismatched.iter().all(|m| m.name.starts_with("fc.")),
        "{report}"
    );
    assert!(report.applied.iter().any(|n| n == "stem.conv.weight"));
}
