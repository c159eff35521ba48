//! Inference kernels write their outputs over recycled buffers (the inputs earlier layers
//! consumed) without zeroing them first, so each kernel must write every element. Here each
//! forward path gets a buffer full of NaN, the exact size of its output, and must still match
//! the definition of a convolution. One test alone in this binary: the buffers are shared by
//! the whole process, and another test could take the poisoned one first.

mod common;

use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};
use common::conv::{forward, geometry};
use common::noise;
use graft_kernels::grad::Geometry;

fn tensor<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values, shape), &Device::flex())
}

/// Leaves a NaN-filled buffer of `len` floats in the pool: a residual join consumes its
/// shortcut, which no one else holds.
fn poison(len: usize) {
    let sum = graft_kernels::add(
        tensor(vec![0.0; len], [len]),
        tensor(vec![f32::NAN; len], [len]),
    );
    drop(sum);
}

fn check(what: &str, g: &Geometry, groups: usize) {
    let x = noise(g.batch * g.in_channels * g.in_len(), 1);
    let per_group = g.in_channels / groups;
    let [kh, kw] = g.kernel;
    let w = noise(g.out_channels * per_group * kh * kw, 2);
    let b = noise(g.out_channels, 3);
    let want = forward(g, groups, &x, &w, Some(&b));
    let options = ConvOptions::new(g.stride, g.padding, g.dilation, groups);
    let [h, wid] = g.in_size;
    let xs = tensor(x, [g.batch, g.in_channels, h, wid]);
    let ws = tensor(w, [g.out_channels, per_group, kh, kw]);
    poison(want.len());
    let got = graft_kernels::conv2d(xs, ws, Some(tensor(b, [g.out_channels])), options);
    let got = got.into_data().try_to_vec::<f32>().unwrap_or_default();
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        assert!(
            (a - b).abs() <= 1e-4 * scale,
            "{what}: value {i} is {a}, want {b}"
        );
    }
}

#[test]
fn every_forward_path_writes_its_whole_output() {
    let cases: [(&str, Geometry, usize); 8] = [
        (
            "depthwise",
            geometry(2, [8, 8], [10, 10], [3, 3], 1, [1, 1], 1, [1, 1]),
            8,
        ),
        (
            "depthwise, stride 2",
            geometry(2, [8, 8], [11, 11], [5, 5], 2, [2, 2], 1, [2, 2]),
            8,
        ),
        (
            "1x1",
            geometry(2, [16, 24], [7, 9], [1, 1], 1, [0, 0], 1, [0, 0]),
            1,
        ),
        (
            "RGB stem",
            geometry(2, [3, 16], [17, 17], [3, 3], 2, [1, 1], 1, [1, 1]),
            1,
        ),
        (
            "Winograd",
            geometry(2, [16, 12], [18, 18], [3, 3], 1, [1, 1], 1, [1, 1]),
            1,
        ),
        (
            "3x3, too few tiles",
            geometry(1, [16, 12], [5, 5], [3, 3], 1, [1, 1], 1, [1, 1]),
            1,
        ),
        (
            "3x3 stride 2, small map",
            geometry(3, [16, 8], [9, 9], [3, 3], 2, [1, 1], 1, [1, 1]),
            1,
        ),
        (
            "3x3 stride 2, large map",
            geometry(1, [8, 8], [60, 60], [3, 3], 2, [1, 1], 1, [1, 1]),
            1,
        ),
    ];
    for (what, g, groups) in cases {
        check(what, &g, groups);
    }
}
