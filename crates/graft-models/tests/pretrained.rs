//! The real EfficientNet-Lite0 checkpoint (legacy .pth, ../shared/weights) gives the reference
//! package's logits on two ImageNet crops.

mod common;

use std::path::Path;

use burn::prelude::*;
use graft_models::{default_device, find_model};
use graft_weights::LoadPolicy;

#[test]
fn real_lite0_checkpoint_matches_reference_package() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let weights = root.join("../shared/weights/efficientnet-lite0-57934424.pth");
    let io = root.join("tests/fixtures/lite0_real.io.safetensors");
    let spec = find_model("efficientnet_lite0").expect("registry");
    let device = default_device();
    let (net, report) = spec
        .arch
        .load(&weights, &LoadPolicy::strict(), spec.name, &device)
        .expect("load");
    // 296 tensors in the file, 49 of them BatchNorm step counters (ignored).
    assert_eq!(report.applied.len(), 296 - 49, "{report}");
    assert_eq!(report.ignored.len(), 49, "{report}");
    let (input, shape) = common::read_tensor(&io, "input");
    let (want, _) = common::read_tensor(&io, "logits");
    let x = Tensor::<4>::from_data(
        TensorData::new(input, [shape[0], shape[1], shape[2], shape[3]]),
        &device,
    );
    let got: Vec<f32> = net
        .forward(x.clone())
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32");
    common::assert_close(&got, &want, 1e-4, "lite0 real");
    // One image at a time too: a batch of one runs its wide-map blocks' expansion and
    // depthwise layer fused, in bands of rows (on more than one worker).
    for i in 0..2 {
        let one = x.clone().narrow(0, i, 1);
        let got: Vec<f32> = net
            .forward(one)
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        common::assert_close(
            &got,
            &want[i * 1000..][..1000],
            1e-4,
            "lite0 real, one image",
        );
    }
    // The classes the reference predicts: tench (0) and tusker (101).
    let argmax = |row: &[f32]| {
        row.iter()
            .enumerate()
            .fold(0, |best, (i, v)| if *v > row[best] { i } else { best })
    };
    assert_eq!((argmax(&got[..1000]), argmax(&got[1000..])), (0, 101));
}
