//! graft's inference max pool against burn's `max_pool2d`: same values for the pools the
//! architectures use (ResNet's 3x3/2 padded, VGG's 2x2/2) and odd sizes; NaN propagates.

use burn::tensor::module::max_pool2d as burn_max_pool2d;
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Device, Tensor, TensorData};

mod common;

fn vec(t: Tensor<4>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap_or_default()
}

#[test]
fn max_pool_matches_burns_on_the_architectures_pools() {
    let device = Device::flex();
    // (shape, kernel, stride, padding)
    let cases = [
        ([2, 3, 15, 13], 3, 2, (1, 1)),
        ([2, 4, 8, 8], 2, 2, (0, 0)),
        ([1, 2, 9, 7], 2, 2, (0, 0)),
        ([1, 3, 7, 10], 3, 1, (1, 1)),
        ([2, 2, 6, 6], 3, 2, (0, 1)),
    ];
    for (i, (shape, k, s, p)) in cases.into_iter().enumerate() {
        let n = shape.iter().product();
        let x = Tensor::<4>::from_data(TensorData::new(common::noise(n, i as u64), shape), &device);
        let pads = [p, p];
        let ours = graft_kernels::max_pool2d(x.clone(), [k, k], [s, s], pads);
        let o = MaxPoolOptions::new([k, k])
            .with_stride([s, s])
            .with_padding_pairs(pads);
        assert_eq!(vec(ours), vec(burn_max_pool2d(x, o)), "case {i}");
    }
}

#[test]
fn max_pool_propagates_nan() {
    let device = Device::flex();
    let mut v = vec![1.0f32; 16];
    v[5] = f32::NAN;
    let x = Tensor::<4>::from_data(TensorData::new(v, [1, 1, 4, 4]), &device);
    let y = vec(graft_kernels::max_pool2d(x, [2, 2], [2, 2], [(0, 0); 2]));
    assert!(y[0].is_nan());
    assert_eq!(&y[1..], &[1.0, 1.0, 1.0]);
}
