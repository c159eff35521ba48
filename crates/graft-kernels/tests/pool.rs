//! graft's max pool against burn's `max_pool2d`: same values for the pools the architectures
//! use (ResNet's 3x3/2 padded, VGG's 2x2/2) and odd sizes, NaN propagating; on the autodiff
//! device, the same input gradients.

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

/// On the autodiff device: the same output as burn's max pool and the same input gradient (each
/// window's gradient to its maximum), for the pools above, under a non-uniform upstream gradient.
#[test]
fn max_pool_gradients_match_burns() {
    let device = Device::flex().autodiff();
    let cases = [
        ([2, 3, 15, 13], 3, 2, (1, 1)),
        ([2, 4, 8, 8], 2, 2, (0, 0)),
        ([1, 3, 7, 10], 3, 1, (1, 1)),
        ([2, 2, 6, 6], 3, 2, (0, 1)),
    ];
    for (i, (shape, k, s, p)) in cases.into_iter().enumerate() {
        let n: usize = shape.iter().product();
        let data = TensorData::new(common::noise(n, 10 + i as u64), shape);
        let pads = [p, p];
        let o = MaxPoolOptions::new([k, k])
            .with_stride([s, s])
            .with_padding_pairs(pads);
        let run = |ours: bool| {
            let x = Tensor::<4>::from_data(data.clone(), &device).require_grad();
            let y = if ours {
                graft_kernels::max_pool2d(x.clone(), [k, k], [s, s], pads)
            } else {
                burn_max_pool2d(x.clone(), o.clone())
            };
            let m: usize = y.dims().iter().product();
            let r = TensorData::new(common::noise(m, 99), y.dims());
            let grads = (y.clone() * Tensor::<4>::from_data(r, &device))
                .sum()
                .backward();
            let dx = x
                .grad(&grads)
                .map(|g| g.into_data().try_to_vec::<f32>().unwrap_or_default());
            (vec(y.inner()), dx)
        };
        let (ours, theirs) = (run(true), run(false));
        assert_eq!(ours.0, theirs.0, "case {i} y");
        assert!(ours.1.is_some(), "case {i}: no gradient");
        assert_eq!(ours.1, theirs.1, "case {i} dx");
    }
}

/// Ties and NaN in the backward pass: a window's gradient goes to the first position (row-major)
/// holding its maximum, and to the first NaN of a window whose maximum is NaN.
#[test]
fn max_pool_gradient_goes_to_the_first_maximum_and_the_first_nan() {
    let device = Device::flex().autodiff();
    let nan = f32::NAN;
    #[rustfmt::skip]
    let v = vec![
        2.0, 2.0, 1.0, 3.0,
        2.0, 2.0, nan, nan,
        0.0, 5.0, 4.0, 4.0,
        5.0, 0.0, 4.0, 4.0,
    ];
    let x = Tensor::<4>::from_data(TensorData::new(v, [1, 1, 4, 4]), &device).require_grad();
    let y = graft_kernels::max_pool2d(x.clone(), [2, 2], [2, 2], [(0, 0); 2]);
    let grads = y.sum().backward();
    let dx = x.grad(&grads).map(vec);
    let mut want = vec![0.0f32; 16];
    for i in [0, 6, 9, 10] {
        want[i] = 1.0;
    }
    assert_eq!(dx, Some(want));
}

/// Global average pooling against burn's two `mean_dim`s, on the inference device (graft's
/// pass over each plane) and the autodiff device (burn's), with more planes than one task.
#[test]
fn global_average_pool_matches_burns_means() {
    for device in [Device::flex(), Device::flex().autodiff()] {
        let x = Tensor::<4>::random(
            [3, 300, 7, 5],
            burn::tensor::Distribution::Uniform(-3.0, 9.0),
            &device,
        );
        let want = x.clone().mean_dim(3).mean_dim(2).reshape([3, 300]);
        let got = graft_kernels::global_avg_pool(x);
        let to_vec = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().unwrap_or_default();
        let (got, want) = (to_vec(got), to_vec(want));
        assert_eq!(got.len(), 900);
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                "plane {i}: {a} against {b}"
            );
        }
    }
}
