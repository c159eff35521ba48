//! The freeze contract: after `partial:2` training, frozen parameters and BatchNorm statistics
//! are bit-identical, trained ones have changed (tiny ResNet fixture in torchvision's layout).

use std::collections::BTreeMap;
use std::path::Path;

use burn::prelude::*;
use burn_store::ModuleSnapshot;
use graft_models::resnet::{BlockKind, ResNetConfig};
use graft_models::{Arch, Network, default_device};
use graft_transfer::Strategy;
use graft_transfer::finetune::{Activations, FinetuneConfig, finetune};
use graft_transfer::train::HeadConfig;
use graft_weights::LoadPolicy;

fn snapshot(net: &Network) -> BTreeMap<String, Vec<u8>> {
    net.collect(None, None, true)
        .into_iter()
        .map(|t| {
            let name = t.name.clone();
            (name, t.into_bytes().map(|b| b.to_vec()).unwrap_or_default())
        })
        .collect()
}

#[test]
fn partial_training_leaves_frozen_groups_bit_identical_and_changes_the_trained_ones() {
    let device = default_device();
    let arch = Arch::ResNet(ResNetConfig {
        block: BlockKind::Basic,
        layers: [2, 2, 2, 2],
        stem: 8,
        widths: [8, 16, 32, 64],
        num_classes: 10,
    });
    let weights =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/models/resnet18_tiny.pth");
    let (net, _) = arch
        .load(&weights, &LoadPolicy::strict(), "resnet18_tiny", &device)
        .expect("fixture");
    let groups = net.group_names();
    let plan = Strategy::Partial(2).plan(&groups).expect("plan");
    assert_eq!(plan.trainable, vec!["layer3", "layer4"]);
    let before = snapshot(&net);

    // Activations at the freeze point, as the cache would hold them.
    let x = Tensor::<4>::random(
        [12, 3, 64, 64],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    let acts = net.forward_groups(0..plan.freeze_point, x);
    let [b, c, h, w] = acts.dims();
    let flat: Vec<f32> = acts
        .reshape([b, c * h * w])
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32");
    let rows: Vec<Vec<f32>> = flat.chunks_exact(c * h * w).map(<[f32]>::to_vec).collect();
    let labels: Vec<usize> = (0..b).map(|i| i % 2).collect();
    let data = Activations {
        x: &rows,
        y: &labels,
        shape: [c, h, w],
    };
    let cfg = FinetuneConfig {
        head: HeadConfig {
            epochs: 2,
            batch_size: 4,
            lr: 1e-2,
            warmup_epochs: 0,
            ..HeadConfig::default()
        },
        backbone_lr_scale: 0.1,
        head_init: None,
    };
    let out = finetune(
        net,
        plan.freeze_point,
        std::slice::from_ref(&data),
        &data,
        2,
        &cfg,
        &device,
        None,
        &mut |_| Ok(()),
    )
    .expect("train");
    let after = snapshot(&out.net);

    let frozen = ["stem.", "layers.0.", "layers.1."];
    let trained = ["layers.2.", "layers.3."];
    let mut checked = (0, 0);
    for (name, bytes) in &before {
        if frozen.iter().any(|p| name.starts_with(p)) {
            assert_eq!(after.get(name), Some(bytes), "frozen {name} changed");
            checked.0 += 1;
        }
        let is_trained_param = trained.iter().any(|p| name.starts_with(p))
            && (name.ends_with("weight")
                || name.ends_with("gamma")
                || name.ends_with("running_mean"));
        if is_trained_param {
            assert_ne!(
                after.get(name),
                Some(bytes),
                "trained {name} did not change"
            );
            checked.1 += 1;
        }
    }
    assert!(checked.0 > 20 && checked.1 > 10, "{checked:?}");
}
