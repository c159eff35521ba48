//! graft's networks as ONNX graphs: one walk per architecture over the same modules the forward
//! pass runs, in inference mode (BatchNorm folded into the convolution before it, dropout
//! gone), so the graph computes what `Network::forward` computes.

use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::nn::{Linear, PaddingConfig2d};
use burn::prelude::*;
use graft_models::Network;
use graft_models::efficientnet_lite::EfficientNetLite;
use graft_models::layers::{ConvBn, padding_pairs};
use graft_models::resnet::ResNet;
use graft_models::vgg::Vgg;

use crate::ExportError;
use crate::graph::{Graph, Pads, Weights};

fn weights<const D: usize>(t: Tensor<D>) -> Result<Weights, ExportError> {
    let dims = t.dims().to_vec();
    let values = t
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| ExportError::Tensor(format!("{e:?}")))?;
    Ok(Weights { values, dims })
}

/// A value flowing through the graph: its name and spatial size.
#[derive(Clone)]
struct Value {
    name: String,
    size: [usize; 2],
}

/// `[top, left, bottom, right]` padding for `size`, as the forward pass pads it.
fn pads(
    padding: &PaddingConfig2d,
    kernel: [usize; 2],
    stride: [usize; 2],
    size: [usize; 2],
) -> Pads {
    let [(top, bottom), (left, right)] = padding_pairs(padding, kernel, stride, size);
    [top, left, bottom, right]
}

fn out_size(size: [usize; 2], kernel: [usize; 2], stride: [usize; 2], p: Pads) -> [usize; 2] {
    let [top, left, bottom, right] = p;
    [
        (size[0] + top + bottom - kernel[0]) / stride[0] + 1,
        (size[1] + left + right - kernel[1]) / stride[1] + 1,
    ]
}

/// The `[out, size]` matrix of adaptive average pooling along one axis: output bin `i` averages
/// inputs `floor(i size / out) .. ceil((i + 1) size / out)`, as PyTorch's does.
fn adaptive_bins(size: usize, out: usize) -> Weights {
    let mut values = vec![0.0; out * size];
    for i in 0..out {
        let (start, end) = (i * size / out, ((i + 1) * size).div_ceil(out));
        for j in start..end {
            values[i * size + j] = 1.0 / (end - start) as f32;
        }
    }
    Weights {
        values,
        dims: vec![out, size],
    }
}

fn transpose(w: &Weights, rows: usize, cols: usize) -> Weights {
    let values = (0..cols)
        .flat_map(|c| (0..rows).map(move |r| (r, c)))
        .map(|(r, c)| w.values[r * cols + c])
        .collect();
    Weights {
        values,
        dims: vec![cols, rows],
    }
}

enum Act {
    None,
    Relu,
    Relu6,
}

struct Walk {
    g: Graph,
}

impl Walk {
    fn conv(&mut self, x: &Value, conv: &Conv2d, act: Act) -> Result<Value, ExportError> {
        if conv.stride[0] != conv.stride[1] || conv.dilation != [1, 1] {
            return Err(ExportError::Unsupported(
                "a convolution with uneven stride or dilation".into(),
            ));
        }
        let p = pads(&conv.padding, conv.kernel_size, conv.stride, x.size);
        let w = weights(conv.weight.val())?;
        let out_ch = w.dims[0];
        let b = match &conv.bias {
            Some(b) => weights(b.val())?,
            None => Weights {
                values: vec![0.0; out_ch],
                dims: vec![out_ch],
            },
        };
        let name = self.g.conv(&x.name, w, b, conv.stride[0], p, conv.groups);
        let name = match act {
            Act::None => name,
            Act::Relu => self.g.relu(&name),
            Act::Relu6 => self.g.relu6(&name),
        };
        Ok(Value {
            name,
            size: out_size(x.size, conv.kernel_size, conv.stride, p),
        })
    }

    /// A convolution with its BatchNorm folded in, as the inference forward pass runs it.
    fn conv_bn(&mut self, x: &Value, layer: &ConvBn, act: Act) -> Result<Value, ExportError> {
        self.conv(x, &layer.folded(), act)
    }

    fn max_pool(&mut self, x: &Value, pool: &MaxPool2d) -> Result<Value, ExportError> {
        if pool.kernel_size[0] != pool.kernel_size[1]
            || pool.stride[0] != pool.stride[1]
            || pool.ceil_mode
        {
            return Err(ExportError::Unsupported(
                "a max pool with uneven kernel or ceil mode".into(),
            ));
        }
        let p = pads(&pool.padding, pool.kernel_size, pool.stride, x.size);
        let name = self
            .g
            .max_pool(&x.name, pool.kernel_size[0], pool.stride[0], p);
        Ok(Value {
            name,
            size: out_size(x.size, pool.kernel_size, pool.stride, p),
        })
    }

    fn add(&mut self, a: &Value, b: &Value) -> Value {
        Value {
            name: self.g.add(&a.name, &b.name),
            size: a.size,
        }
    }

    fn efficientnet(&mut self, m: &EfficientNetLite, x: Value) -> Result<String, ExportError> {
        let mut x = self.conv_bn(&x, &m.stem, Act::Relu6)?;
        for block in &m.blocks {
            let input = x.clone();
            if let Some(expand) = &block.expand {
                x = self.conv_bn(&x, expand, Act::Relu6)?;
            }
            x = self.conv_bn(&x, &block.depthwise, Act::Relu6)?;
            x = self.conv_bn(&x, &block.project, Act::None)?;
            if block.residual {
                x = self.add(&x, &input);
            }
        }
        x = self.conv_bn(&x, &m.head, Act::Relu6)?;
        let pooled = self.g.global_average_pool(&x.name);
        Ok(self.g.flatten(&pooled))
    }

    fn resnet(&mut self, m: &ResNet, x: Value) -> Result<String, ExportError> {
        let x = self.conv_bn(&x, &m.stem, Act::Relu)?;
        let mut x = self.max_pool(&x, &m.pool)?;
        for block in m.layers.iter().flat_map(|l| &l.blocks) {
            let input = x.clone();
            let mut y = self.conv_bn(&x, &block.conv1, Act::Relu)?;
            y = match &block.conv3 {
                Some(conv3) => {
                    let y = self.conv_bn(&y, &block.conv2, Act::Relu)?;
                    self.conv_bn(&y, conv3, Act::None)?
                }
                None => self.conv_bn(&y, &block.conv2, Act::None)?,
            };
            let shortcut = match &block.downsample {
                Some(d) => self.conv_bn(&input, d, Act::None)?,
                None => input,
            };
            let sum = self.add(&y, &shortcut);
            x = Value {
                name: self.g.relu(&sum.name),
                size: sum.size,
            };
        }
        let pooled = self.g.global_average_pool(&x.name);
        Ok(self.g.flatten(&pooled))
    }

    fn vgg(&mut self, m: &Vgg, mut x: Value) -> Result<String, ExportError> {
        for block in &m.blocks {
            for c in &block.convs {
                x = match &c.bn {
                    Some(bn) => self.conv_bn(
                        &x,
                        &ConvBn {
                            conv: c.conv.clone(),
                            bn: bn.clone(),
                            fold: Default::default(),
                        },
                        Act::Relu,
                    )?,
                    None => self.conv(&x, &c.conv, Act::Relu)?,
                };
            }
            x = self.max_pool(&x, &block.pool)?;
        }
        // torchvision's AdaptiveAvgPool2d((7, 7)): the identity at 224x224 input, else
        // `A_h x A_w^T` with each row of A averaging one output bin.
        let [h, w] = x.size;
        let name = if h == 7 && w == 7 {
            x.name
        } else {
            let right = self
                .g
                .constant("pool_w", transpose(&adaptive_bins(w, 7), 7, w));
            let rows = self.g.matmul(&x.name, &right);
            let left = self.g.constant("pool_h", adaptive_bins(h, 7));
            self.g.matmul(&left, &rows)
        };
        Ok(self.g.flatten(&name))
    }

    fn linears(&mut self, x: String, layers: &[&Linear]) -> Result<String, ExportError> {
        let mut x = x;
        for (i, l) in layers.iter().enumerate() {
            let w = weights(l.weight.val())?;
            let out = w.dims[1];
            let b = match &l.bias {
                Some(b) => weights(b.val())?,
                None => Weights {
                    values: vec![0.0; out],
                    dims: vec![out],
                },
            };
            x = self.g.linear(&x, w, b);
            if i + 1 < layers.len() {
                x = self.g.relu(&x);
            }
        }
        Ok(x)
    }
}

/// The graph of `net` (at `size x size` input) followed by `classifier`'s linear layers
/// (ReLU between them), ending in logits or, with `probabilities`, their softmax.
pub fn network_graph(
    net: &Network,
    classifier: &[&Linear],
    size: usize,
    probabilities: bool,
) -> Result<crate::onnx::GraphProto, ExportError> {
    let mut walk = Walk {
        g: Graph::default(),
    };
    let input = Value {
        name: "input".into(),
        size: [size, size],
    };
    let features = match net {
        Network::EfficientNetLite(m) => walk.efficientnet(m, input)?,
        Network::ResNet(m) => walk.resnet(m, input)?,
        Network::Vgg(m) => walk.vgg(m, input)?,
    };
    let logits = walk.linears(features, classifier)?;
    if probabilities {
        walk.g.softmax(&logits);
    }
    let classes = classifier
        .last()
        .map(|l| l.weight.dims()[1])
        .ok_or_else(|| ExportError::Unsupported("a classifier with no layer".into()))?;
    let output = if probabilities {
        "probabilities"
    } else {
        "logits"
    };
    Ok(walk.g.finish(
        crate::graph::float_input("input", &[3, size, size]),
        output,
        classes,
    ))
}
