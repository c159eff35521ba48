//! graft's conv2d backward against burn's, through the real autodiff graph on the burn-flex
//! device: same forward, and every gradient within 1e-4 (relative to the largest entry).

use burn::tensor::activation::{relu as burn_relu, relu6 as burn_relu6};
use burn::tensor::module::conv2d as burn_conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Tensor, TensorData};

mod common;

struct Case {
    batch: usize,
    chans: [usize; 2],
    size: [usize; 2],
    kernel: usize,
    stride: usize,
    padding: [(usize, usize); 2],
    groups: usize,
    bias: bool,
    track_x: bool,
}

impl Case {
    /// The common case: two images, 3x3, stride 1, padded by 1, dense, no bias, x tracked.
    const DENSE: Case = Case {
        batch: 2,
        chans: [4, 4],
        size: [8, 8],
        kernel: 3,
        stride: 1,
        padding: [(1, 1), (1, 1)],
        groups: 1,
        bias: false,
        track_x: true,
    };
}

fn assert_close(what: &str, got: Tensor<4>, want: Tensor<4>) {
    let got = got.into_data().try_to_vec::<f32>().unwrap_or_default();
    let want = want.into_data().try_to_vec::<f32>().unwrap_or_default();
    assert!(!want.is_empty(), "{what}: no values");
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let worst = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst <= 1e-4 * scale,
        "{what}: max |diff| {worst} vs scale {scale}"
    );
}

/// Runs one case through `conv` and returns (y, dx, dw, db) as plain tensors.
fn run(
    case: &Case,
    conv: fn(Tensor<4>, Tensor<4>, Option<Tensor<1>>, ConvOptions<2>) -> Tensor<4>,
) -> Vec<Option<Tensor<4>>> {
    let device = Device::flex().autodiff();
    device.seed(7);
    let [cin, cout] = case.chans;
    let x = Tensor::<4>::random(
        [case.batch, cin, case.size[0], case.size[1]],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let w = Tensor::<4>::random(
        [cout, cin / case.groups, case.kernel, case.kernel],
        Distribution::Normal(0.0, 0.3),
        &device,
    );
    let b = Tensor::<1>::random([cout], Distribution::Normal(0.0, 0.3), &device);
    let x = if case.track_x { x.require_grad() } else { x };
    let (w, b) = (w.require_grad(), b.require_grad());
    let options =
        ConvOptions::new_with_padding([case.stride; 2], case.padding, [1, 1], case.groups);
    let y = conv(x.clone(), w.clone(), case.bias.then(|| b.clone()), options);
    // A fixed, non-uniform upstream gradient, so every output position matters.
    let r = Tensor::<4>::random(y.dims(), Distribution::Normal(0.0, 1.0), &device);
    let grads = (y.clone() * r).sum().backward();
    let db = b.grad(&grads).map(|g| g.reshape([1, 1, 1, cout]));
    vec![Some(y.inner()), x.grad(&grads), w.grad(&grads), db]
}

fn cases() -> Vec<Case> {
    let sym = |p| [(p, p), (p, p)];
    vec![
        // ResNet: 7x7 stem (image untracked), 3x3, strided 3x3, strided 1x1 downsample.
        Case {
            batch: 3,
            chans: [3, 8],
            size: [23, 21],
            kernel: 7,
            stride: 2,
            padding: sym(3),
            track_x: false,
            ..Case::DENSE
        },
        Case {
            batch: 4,
            chans: [8, 8],
            size: [14, 14],
            ..Case::DENSE
        },
        Case {
            chans: [8, 16],
            size: [14, 13],
            stride: 2,
            ..Case::DENSE
        },
        // The strided input gradient runs by bands of input channels: 7 do not split evenly.
        Case {
            batch: 3,
            chans: [7, 12],
            size: [15, 17],
            stride: 2,
            padding: [(1, 0), (0, 1)],
            ..Case::DENSE
        },
        // The stem at full size: its weight gradient is summed over chunks of images.
        Case {
            batch: 3,
            chans: [3, 8],
            size: [224, 224],
            kernel: 7,
            stride: 2,
            padding: sym(3),
            track_x: false,
            ..Case::DENSE
        },
        Case {
            chans: [8, 16],
            size: [14, 14],
            kernel: 1,
            stride: 2,
            padding: sym(0),
            ..Case::DENSE
        },
        // Winograd F(4x4, 3x3) (3x3, stride 1, >= 16 input channels, for y and dx): tiles cut
        // by the map's edge, and asymmetric padding. The 7x7 case's batch has 8 tiles, too few
        // for Winograd's filter transform to pay: its forward pass is one im2col product per
        // image, its weight gradient still Winograd's (with nothing kept from the forward pass).
        Case {
            batch: 3,
            chans: [16, 24],
            size: [9, 11],
            bias: true,
            ..Case::DENSE
        },
        Case {
            chans: [32, 16],
            size: [7, 7],
            padding: [(0, 1), (2, 0)],
            ..Case::DENSE
        },
        // Several blocks of tiles (two of 60 tile rows): the weight gradient accumulates
        // across them, reading each block's slice of the forward pass's transformed input.
        Case {
            batch: 5,
            chans: [16, 24],
            size: [96, 96],
            ..Case::DENSE
        },
        // VGG: 3x3 with bias.
        Case {
            chans: [4, 6],
            size: [12, 12],
            bias: true,
            ..Case::DENSE
        },
        // EfficientNet-Lite: 1x1 expand, depthwise 3x3 / 5x5 with "same" (asymmetric) padding.
        Case {
            chans: [8, 24],
            size: [10, 10],
            kernel: 1,
            padding: sym(0),
            ..Case::DENSE
        },
        // Its weight gradient sums a product per image, the images split across threads: 5
        // do not split evenly.
        Case {
            batch: 5,
            chans: [24, 8],
            size: [9, 7],
            kernel: 1,
            padding: sym(0),
            bias: true,
            ..Case::DENSE
        },
        Case {
            chans: [12, 12],
            size: [11, 10],
            groups: 12,
            ..Case::DENSE
        },
        Case {
            batch: 3,
            chans: [12, 12],
            size: [12, 12],
            stride: 2,
            padding: [(0, 1), (0, 1)],
            groups: 12,
            ..Case::DENSE
        },
        Case {
            chans: [10, 10],
            size: [14, 14],
            kernel: 5,
            stride: 2,
            padding: [(1, 2), (1, 2)],
            groups: 10,
            bias: true,
            ..Case::DENSE
        },
        // Depthwise on a map larger than 16x16 takes the NCHW kernels.
        Case {
            chans: [6, 6],
            size: [21, 20],
            stride: 2,
            padding: [(0, 1), (0, 1)],
            groups: 6,
            ..Case::DENSE
        },
        // A grouped (not depthwise) convolution goes to burn unchanged.
        Case {
            chans: [8, 8],
            size: [9, 9],
            groups: 2,
            ..Case::DENSE
        },
    ]
}

#[test]
fn gradients_match_burns_own_conv2d() {
    for (i, case) in cases().iter().enumerate() {
        let ours = run(case, graft_kernels::conv2d);
        let theirs = run(case, burn_conv2d);
        for (name, (a, b)) in ["y", "dx", "dw", "db"]
            .iter()
            .zip(ours.into_iter().zip(theirs))
        {
            match (a, b) {
                (Some(a), Some(b)) => assert_close(&format!("case {i} {name}"), a, b),
                (None, None) => {}
                (a, b) => panic!(
                    "case {i} {name}: ours present {}, burn's present {}",
                    a.is_some(),
                    b.is_some()
                ),
            }
        }
    }
}

/// The inference device runs graft's forward kernel (im2col over a block of output positions, one
/// matrix product per block): the same output as burn's, with and without the fused ReLU, for
/// every case above, for a layer whose images are split into bands of rows, for one
/// multiplied two images at a time, and for a Winograd layer whose blocks of tile rows end
/// inside an image.
#[test]
fn inference_forward_matches_burns_conv2d() {
    let device = Device::flex();
    let tensor = |shape: Vec<usize>, seed| {
        let n = shape.iter().product();
        Tensor::<4>::from_data(TensorData::new(common::noise(n, seed), shape), &device)
    };
    let banded = Case {
        batch: 3,
        chans: [64, 5],
        size: [128, 128],
        stride: 2,
        bias: true,
        track_x: false,
        ..Case::DENSE
    };
    let paired = Case {
        batch: 3,
        chans: [4, 6],
        size: [40, 40],
        track_x: false,
        ..Case::DENSE
    };
    let winograd_blocks = Case {
        chans: [16, 8],
        size: [200, 200],
        bias: true,
        track_x: false,
        ..Case::DENSE
    };
    // Each image on its own: several bands of output rows, and 80 output channels (a band of
    // 64 and one of 16) written into the image's planes at the plane's stride.
    let strided_bands = Case {
        batch: 2,
        chans: [40, 80],
        size: [180, 180],
        stride: 2,
        bias: true,
        track_x: false,
        ..Case::DENSE
    };
    let extra = [&banded, &paired, &winograd_blocks, &strided_bands];
    for (i, case) in cases().iter().chain(extra).enumerate() {
        let [cin, cout] = case.chans;
        let x = tensor(vec![case.batch, cin, case.size[0], case.size[1]], 1);
        let w = tensor(vec![cout, cin / case.groups, case.kernel, case.kernel], 2);
        let b = case
            .bias
            .then(|| tensor(vec![1, 1, 1, cout], 3).reshape([cout]));
        let o =
            || ConvOptions::new_with_padding([case.stride; 2], case.padding, [1, 1], case.groups);
        let ours = graft_kernels::conv2d(x.clone(), w.clone(), b.clone(), o());
        let theirs = burn_conv2d(x.clone(), w.clone(), b.clone(), o());
        assert_close(&format!("inference case {i}"), ours, theirs.clone());
        // The fused ReLU epilogue (the dense kernel's, or in place after burn-flex's conv).
        let fused = graft_kernels::conv2d_relu(x.clone(), w.clone(), b.clone(), o());
        assert_close(
            &format!("inference case {i} relu"),
            fused,
            burn_relu(theirs.clone()),
        );
        let fused = graft_kernels::conv2d_relu6(x, w, b, o());
        assert_close(
            &format!("inference case {i} relu6"),
            fused,
            burn_relu6(theirs),
        );
    }
}
