//! graft's fused relu6 against burn's: same values (NaN kept), same gradient.

use burn::tensor::activation::relu6 as burn_relu6;
use burn::tensor::{Device, Distribution, Tensor};

fn vec(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap_or_default()
}

#[test]
fn relu6_values_and_gradient_match_burns() {
    for device in [Device::flex(), Device::flex().autodiff()] {
        let x = Tensor::<2>::random([37, 1000], Distribution::Uniform(-3.0, 9.0), &device);
        assert_eq!(vec(graft_kernels::relu6(x.clone())), vec(burn_relu6(x)));
    }
    let device = Device::flex().autodiff();
    let x =
        Tensor::<2>::random([37, 1000], Distribution::Uniform(-3.0, 9.0), &device).require_grad();
    let r = Tensor::<2>::random([37, 1000], Distribution::Normal(0.0, 1.0), &device);
    let grad = |y: Tensor<2>| x.grad(&(y * r.clone()).sum().backward()).map(vec);
    let (ours, theirs) = (
        grad(graft_kernels::relu6(x.clone())),
        grad(burn_relu6(x.clone())),
    );
    assert!(ours.is_some());
    assert_eq!(ours, theirs);
}

#[test]
fn relu6_keeps_nan_and_clamps_the_edges() {
    let device = Device::flex().autodiff();
    let x = Tensor::<2>::from_floats([[f32::NAN, -1.0, 0.0, 3.5, 6.0, 7.0]], &device);
    let y = vec(graft_kernels::relu6(x).inner());
    assert!(y[0].is_nan());
    assert_eq!(&y[1..], &[0.0, 0.0, 3.5, 6.0, 6.0]);
}
