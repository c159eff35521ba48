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
    /// The gradient of a tensor added to the output, when there is one (it shares `dy`).
    dtwin: Option<Tensor<4>>,
}

/// `twin`: a tracked tensor is added to the output first, so the output's gradient is the same
/// buffer as the twin's (burn's add hands both parents one tensor): the op must not write its
/// `dx` over it.
fn run(shape: [usize; 4], track_x: bool, twin: bool, ours: bool) -> Run {
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
    let twin = twin.then(|| Tensor::<4>::zeros(shape, &device).require_grad());
    let sum = match &twin {
        Some(t) => y.clone() + t.clone(),
        None => y.clone(),
    };
    let grads = (sum * r).sum().backward();
    Run {
        y: y.inner(),
        mean: mean.inner(),
        var: var.inner(),
        dx: x.grad(&grads),
        dgamma: gamma.grad(&grads),
        dbeta: beta.grad(&grads),
        dtwin: twin.and_then(|t| t.grad(&grads)),
    }
}

#[test]
fn fused_batch_norm_matches_burns_values_statistics_and_gradients() {
    // (Two samples per channel would make dx pure cancellation, equal to rounding on both sides.)
    for (shape, track_x, twin) in [
        ([4, 6, 9, 7], true, false),
        ([4, 6, 9, 7], true, true),
        ([8, 3, 1, 1], true, false),
        ([3, 5, 8, 8], false, false),
    ] {
        let (a, b) = (
            run(shape, track_x, twin, true),
            run(shape, track_x, twin, false),
        );
        let what = format!("{shape:?} twin {twin}");
        match (a.dtwin, b.dtwin) {
            // The twin's gradient is the product's other factor, untouched by BatchNorm's.
            (Some(a), Some(b)) => assert!(rel_diff(a, b) <= 1e-6, "{what} twin's gradient"),
            (None, None) => assert!(!twin),
            _ => panic!("{what}: twin's gradient on one side only"),
        }
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
