//! ReLU6 (`min(max(x, 0), 6)`, MobileNet and EfficientNet-Lite's activation) as one pass each
//! way. burn 0.22 builds it from `clamp_min` and `clamp_max`, each a comparison and a masked
//! fill on burn-flex, forward and backward: 15% of an EfficientNet-Lite0 training step.

use burn::tensor::activation::relu6 as burn_relu6;
use burn::tensor::{DType, Tensor, TensorData};
use burn_autodiff::Autodiff;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_backend::TensorMetadata;
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

use crate::autodiff::{contiguous, values};

/// Elements per rayon task: large enough that scheduling costs nothing.
const CHUNK: usize = 1 << 16;

/// burn's `relu6`, fused forward and backward on the burn-flex autodiff device; elsewhere burn's.
/// NaN propagates, and the gradient is PyTorch's `hardtanh_backward`: `dy` where `0 < x < 6`,
/// else 0.
pub fn relu6<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    // Inference keeps burn's: burn-flex clamps in place there, which a copy cannot beat.
    if x.dtype() != DType::F32 || !x.is_autodiff() {
        return burn_relu6(x);
    }
    match x.clone().try_into_primitive::<Autodiff<Flex>>() {
        Ok(p) => Tensor::from_primitive::<Autodiff<Flex>>(tracked(p)),
        Err(_) => burn_relu6(x),
    }
}

fn forward(x: FlexTensor) -> FlexTensor {
    let x = contiguous(x);
    let mut out = values(&x).to_vec();
    clamp(&mut out);
    FlexTensor::from_data(TensorData::new(out, x.shape()))
}

fn clamp(values: &mut [f32]) {
    values.par_chunks_mut(CHUNK).for_each(|c| {
        for v in c {
            // NaN fails both comparisons and is kept, as in PyTorch.
            *v = if *v > 6.0 {
                6.0
            } else if *v > 0.0 || v.is_nan() {
                *v
            } else {
                0.0
            };
        }
    });
}

type AdTensor = burn_backend::tensor::FloatTensor<Autodiff<Flex>>;

fn tracked(x: AdTensor) -> AdTensor {
    match Relu6
        .prepare::<NoCheckpointing>([x.node()])
        .compute_bound()
        .stateful()
    {
        // The state is the output itself (shared, not copied): `0 < y < 6` exactly where
        // `0 < x < 6`, and the next layer keeps `y` alive anyway.
        OpsKind::Tracked(prep) => {
            let y = forward(x.into_primitive());
            prep.finish(y.clone(), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(x.into_primitive())),
    }
}

#[derive(Debug)]
struct Relu6;

impl Backward<Flex, 1> for Relu6 {
    type State = FlexTensor;

    fn backward(self, ops: Ops<FlexTensor, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let y = ops.state;
        let Some(node) = node else { return };
        let mut dx = values(&dy).to_vec();
        dx.par_chunks_mut(CHUNK)
            .zip(values(&y).par_chunks(CHUNK))
            .for_each(|(d, y)| {
                for (d, y) in d.iter_mut().zip(y) {
                    if !(*y > 0.0 && *y < 6.0) {
                        *d = 0.0;
                    }
                }
            });
        grads.register::<Flex>(
            node.id,
            FlexTensor::from_data(TensorData::new(dx, dy.shape())),
        );
    }
}
