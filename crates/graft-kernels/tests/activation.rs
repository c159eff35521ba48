//! graft's relu and relu6 against burn's: same values (NaN kept), same gradient, on the
//! inference device (in place) and the autodiff device (fused op).

use burn::tensor::activation::{relu as burn_relu, relu6 as burn_relu6};
use burn::tensor::{Device, Distribution, Tensor, TensorData};

fn vec(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap_or_default()
}

type Activation = fn(Tensor<2>) -> Tensor<2>;

#[test]
fn relu_and_relu6_values_and_gradients_match_burns() {
    let pairs: [(Activation, Activation); 2] = [
        (graft_kernels::relu6, burn_relu6),
        (graft_kernels::relu, burn_relu),
    ];
    for (ours, theirs) in pairs {
        for device in [Device::flex(), Device::flex().autodiff()] {
            let x = Tensor::<2>::random([37, 1000], Distribution::Uniform(-3.0, 9.0), &device);
            // A fresh tensor is uniquely owned: the inference device clamps it in place.
            let expected = vec(theirs(x.clone()));
            assert_eq!(vec(ours(x.clone() + 0.0)), expected);
            // A shared one must be left as it was.
            let kept = vec(x.clone());
            assert_eq!(vec(ours(x.clone())), expected);
            assert_eq!(vec(x), kept);
        }
        let device = Device::flex().autodiff();
        // No input at a kink (0 or 6), neither as drawn nor doubled below (so not 3 either):
        // there burn's clamp passes the gradient and PyTorch's hardtanh_backward /
        // threshold_backward (graft's) does not. A draw of exactly 3.0 failed CI once.
        let values = Tensor::<2>::random([37, 1000], Distribution::Uniform(-3.0, 9.0), &device)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap_or_default()
            .into_iter()
            .map(|v| if [0.0, 3.0, 6.0].contains(&v) { 0.5 } else { v })
            .collect::<Vec<_>>();
        let x = Tensor::<2>::from_data(TensorData::new(values, [37, 1000]), &device).require_grad();
        let r = Tensor::<2>::random([37, 1000], Distribution::Normal(0.0, 1.0), &device);
        let grad = |y: Tensor<2>| x.grad(&(y * r.clone()).sum().backward()).map(vec);
        let (g_ours, g_theirs) = (grad(ours(x.clone())), grad(theirs(x.clone())));
        assert!(g_ours.is_some());
        assert_eq!(g_ours, g_theirs);
        // A fresh op's output (as BatchNorm's in a training pass) is clamped where it lies;
        // the values and the gradient through it are the same.
        let fresh = || x.clone() * 2.0;
        assert_eq!(vec(ours(fresh()).inner()), vec(theirs(fresh()).inner()));
        let (g_ours, g_theirs) = (grad(ours(fresh())), grad(theirs(fresh())));
        assert!(g_ours.is_some());
        assert_eq!(g_ours, g_theirs);
    }
}

#[test]
fn relu_and_relu6_keep_nan_clamp_the_edges_and_stop_the_gradient_at_the_kinks() {
    let device = Device::flex().autodiff();
    let x = Tensor::<2>::from_floats([[f32::NAN, -1.0, 0.0, 3.5, 6.0, 7.0]], &device);
    let y = vec(graft_kernels::relu6(x.clone()).inner());
    assert!(y[0].is_nan());
    assert_eq!(&y[1..], &[0.0, 0.0, 3.5, 6.0, 6.0]);
    let y = vec(graft_kernels::relu(x.inner() * 1.0));
    assert!(y[0].is_nan());
    assert_eq!(&y[1..], &[0.0, 0.0, 3.5, 6.0, 7.0]);
    // At the kinks the gradient is 0, as PyTorch's hardtanh_backward / threshold_backward.
    let x = Tensor::<2>::from_floats([[0.0, 6.0, 3.0]], &device).require_grad();
    let grad = |y: Tensor<2>| x.grad(&y.sum().backward()).map(vec);
    assert_eq!(
        grad(graft_kernels::relu6(x.clone())),
        Some(vec![0.0, 0.0, 1.0])
    );
    assert_eq!(
        grad(graft_kernels::relu(x.clone())),
        Some(vec![0.0, 1.0, 1.0])
    );
}

/// `add_relu` (a residual join, formed in place on the inference device) is `relu(x + s)` on
/// both devices: NaN kept, a shared `x` left as it was, and the same gradient to both inputs.
#[test]
fn add_relu_is_relu_of_the_sum() {
    for device in [Device::flex(), Device::flex().autodiff()] {
        let x = Tensor::<2>::random([37, 1000], Distribution::Uniform(-3.0, 3.0), &device);
        let s = Tensor::<2>::random([37, 1000], Distribution::Uniform(-3.0, 3.0), &device);
        let want = vec(burn_relu(x.clone() + s.clone()));
        // Uniquely owned: formed in x's buffer.
        assert_eq!(
            vec(graft_kernels::add_relu(x.clone() + 0.0, s.clone())),
            want
        );
        // Shared: a copy, x unchanged.
        let kept = vec(x.clone());
        assert_eq!(vec(graft_kernels::add_relu(x.clone(), s.clone())), want);
        assert_eq!(vec(x), kept);
    }
    let device = Device::flex();
    let x = Tensor::<2>::from_floats([[f32::NAN, -1.0, 2.0]], &device);
    let s = Tensor::<2>::from_floats([[1.0, 0.5, -0.5]], &device);
    let y = vec(graft_kernels::add_relu(x, s));
    assert!(y[0].is_nan());
    assert_eq!(&y[1..], &[0.0, 1.5]);
    let device = Device::flex().autodiff();
    let x = Tensor::<2>::random([5, 40], Distribution::Uniform(-3.0, 3.0), &device).require_grad();
    let s = Tensor::<2>::random([5, 40], Distribution::Uniform(-3.0, 3.0), &device).require_grad();
    let r = Tensor::<2>::random([5, 40], Distribution::Normal(0.0, 1.0), &device);
    let grads = |y: Tensor<2>| {
        let g = (y * r.clone()).sum().backward();
        (x.grad(&g).map(vec), s.grad(&g).map(vec))
    };
    let ours = grads(graft_kernels::add_relu(x.clone(), s.clone()));
    assert!(ours.0.is_some() && ours.1.is_some());
    assert_eq!(ours, grads(burn_relu(x.clone() + s.clone())));
}
