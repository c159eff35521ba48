//! The new classifier a transfer strategy trains: linear by default, or VGG's style of MLP
//! (Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear) with a chosen hidden width.

use burn::module::Param;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;
pub use graft_spec::HeadKind;
use graft_spec::SplitMix64;

#[derive(Module, Debug)]
pub struct Head {
    pub layers: Vec<Linear>,
    pub dropout: Dropout,
}

impl Head {
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let last = self.layers.len().saturating_sub(1);
        self.layers.iter().enumerate().fold(x, |x, (i, l)| {
            let y = l.forward(x);
            if i < last {
                self.dropout.forward(relu(y))
            } else {
                y
            }
        })
    }
}

/// Builds the [`Head`] a [`HeadKind`] describes (the kind itself is plain data in graft-spec).
pub trait BuildHead {
    fn init(self, input: usize, classes: usize, seed: u64, device: &Device) -> Head;
    fn shell(self, input: usize, classes: usize, device: &Device) -> Head;
}

impl BuildHead for HeadKind {
    /// PyTorch's `nn.Linear` initialisation, U(-1/sqrt(in), 1/sqrt(in)), from the run's own
    /// seeded generator: the device RNG is process-global, so runs in parallel threads would
    /// share it.
    fn init(self, input: usize, classes: usize, seed: u64, device: &Device) -> Head {
        let mut rng = SplitMix64(seed ^ 0x6865_6164); // "head"
        let layers = self
            .widths(input, classes)
            .into_iter()
            .map(|[din, dout]| {
                let bound = 1.0 / (din.max(1) as f32).sqrt();
                let mut draw = |n: usize| -> Vec<f32> {
                    (0..n)
                        .map(|_| {
                            ((rng.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * bound
                        })
                        .collect()
                };
                let mut l = LinearConfig::new(din, dout).init(device);
                l.weight = Param::from_tensor(Tensor::from_data(
                    TensorData::new(draw(din * dout), [din, dout]),
                    device,
                ));
                l.bias = Some(Param::from_tensor(Tensor::from_data(
                    TensorData::new(draw(dout), [dout]),
                    device,
                )));
                l
            })
            .collect();
        Head {
            layers,
            dropout: DropoutConfig::new(0.5).init(),
        }
    }

    /// The same shapes with throwaway values, to load a saved head into.
    fn shell(self, input: usize, classes: usize, device: &Device) -> Head {
        self.init(input, classes, 0, device)
    }
}
