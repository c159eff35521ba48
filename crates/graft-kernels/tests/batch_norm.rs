//! graft's fused training-mode BatchNorm against burn's `batch_norm_train`, through the autodiff
//! graph on the burn-flex device: output, batch statistics and every gradient within 1e-4.

use burn::tensor::module::batch_norm_train as burn_batch_norm_train;
use burn::tensor::{Device, Tensor, TensorData};

mod common;

/// max |a - b| relative to the largest |b|.
fn rel_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    let a = a.into_data().try_to_vec::<f32>().unwrap_or_default();
    let b = b.into_data().try_to_vec::<f32>().unwrap_or_default();
    assert!(
        !b.is_empty() && a.len() == b.len(),
        "lengths {} vs {}",
        a.len(),
        b.len()
    );
    let scale = b
        .iter()
        .fold(0.0f32, |m, v| m.max(v.abs()))
        .max(f32::MIN_POSITIVE);
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
        / scale
}

struct Run {
    y: Tensor<4>,
    mean: Tensor<1>,
    var: Tensor<1>,
    dx: Option<Tensor<4>>,
    dgamma: Option<Tensor<1>>,
    dbeta: Option<Tensor<1>>,
}

fn run(shape: [usize; 4], track_x: bool, ours: bool) -> Run {
    let device = Device::flex().autodiff();
    let n: usize = shape.iter().product();
    let c = shape[1];
    // A large per-tensor offset, so a one-pass variance would lose digits.
    let x: Vec<f32> = common::noise(n, 1).iter().map(|v| 3.0 * v + 20.0).collect();
    let x = Tensor::<4>::from_data(TensorData::new(x, shape), &device);
    let x = if track_x { x.require_grad() } else { x };
    let vector = |seed, shift: f32| {
        let v: Vec<f32> = common::noise(c, seed).iter().map(|v| v + shift).collect();
        Tensor::<1>::from_data(TensorData::new(v, [c]), &device).require_grad()
    };
    let (gamma, beta) = (vector(2, 1.0), vector(3, 0.0));
    let eps = 1e-3;
    let (y, mean, var) = if ours {
        let r = graft_kernels::batch_norm_train(x.clone(), gamma.clone(), beta.clone(), eps);
        (r.output, r.mean, r.variance)
    } else {
        let r = burn_batch_norm_train(x.clone(), gamma.clone(), beta.clone(), eps);
        (r.output, r.mean.detach(), r.variance.detach())
    };
    let r = Tensor::<4>::from_data(TensorData::new(common::noise(n, 4), shape), &device);
    let grads = (y.clone() * r).sum().backward();
    Run {
        y: y.inner(),
        mean: mean.inner(),
        var: var.inner(),
        dx: x.grad(&grads),
        dgamma: gamma.grad(&grads),
        dbeta: beta.grad(&grads),
    }
}

#[test]
fn fused_batch_norm_matches_burns_values_statistics_and_gradients() {
    // (Two samples per channel would make dx pure cancellation, equal to rounding on both sides.)
    for (shape, track_x) in [
        ([4, 6, 9, 7], true),
        ([8, 3, 1, 1], true),
        ([3, 5, 8, 8], false),
    ] {
        let (a, b) = (run(shape, track_x, true), run(shape, track_x, false));
        let what = format!("{shape:?}");
        assert!(rel_diff(a.y, b.y) <= 1e-4, "{what} y");
        assert!(rel_diff(a.mean, b.mean) <= 1e-4, "{what} mean");
        assert!(rel_diff(a.var, b.var) <= 1e-4, "{what} variance");
        match (a.dx, b.dx) {
            (Some(a), Some(b)) => assert!(rel_diff(a, b) <= 1e-4, "{what} dx"),
            (None, None) => assert!(!track_x),
            _ => panic!("{what}: dx present on one side only"),
        }
        let (ga, gb) = (a.dgamma.expect("dgamma"), b.dgamma.expect("burn dgamma"));
        assert!(rel_diff(ga, gb) <= 1e-4, "{what} dgamma");
        let (ba, bb) = (a.dbeta.expect("dbeta"), b.dbeta.expect("burn dbeta"));
        assert!(rel_diff(ba, bb) <= 1e-4, "{what} dbeta");
    }
}
