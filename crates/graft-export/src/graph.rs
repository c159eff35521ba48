//! A small ONNX graph builder: one method per operator graft's networks use, each adding its
//! node (and its weights as initializers) and returning the name of its output. Shapes are
//! tracked where a later operator needs them (explicit padding for TensorFlow's "same").

use crate::onnx::{
    AttributeProto, Dimension, FLOAT, GraphProto, NodeProto, TensorProto, TensorShapeProto,
    TensorType, TypeProto, ValueInfoProto, attribute_type,
};

/// A float tensor for an initializer: its values in row-major order and its shape.
pub struct Weights {
    pub values: Vec<f32>,
    pub dims: Vec<usize>,
}

/// How a convolution's or pool's borders are padded: `[top, left, bottom, right]` (ONNX's
/// `pads` order is begin of each axis, then end of each axis).
pub type Pads = [usize; 4];

#[derive(Default)]
pub struct Graph {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    count: usize,
}

fn ints(name: &str, values: &[usize]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attribute_type::INTS),
        ints: values.iter().map(|&v| v as i64).collect(),
        ..Default::default()
    }
}

fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attribute_type::INT),
        i: Some(value),
        ..Default::default()
    }
}

fn float(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attribute_type::FLOAT),
        f: Some(value),
        ..Default::default()
    }
}

/// A float tensor value: `[batch, rest...]` with a named, dynamic batch dimension.
pub fn float_input(name: &str, dims: &[usize]) -> ValueInfoProto {
    let dim = std::iter::once(Dimension {
        dim_param: Some("batch".into()),
        ..Default::default()
    })
    .chain(dims.iter().map(|&d| Dimension {
        dim_value: Some(d as i64),
        ..Default::default()
    }))
    .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorType {
                elem_type: Some(FLOAT),
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
    }
}

impl Graph {
    fn fresh(&mut self, what: &str) -> String {
        self.count += 1;
        format!("{what}_{}", self.count)
    }

    /// Adds a constant tensor and returns its name.
    pub fn constant(&mut self, what: &str, w: Weights) -> String {
        let name = self.fresh(what);
        let raw: Vec<u8> = w.values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializers.push(TensorProto {
            dims: w.dims.iter().map(|&d| d as i64).collect(),
            data_type: Some(FLOAT),
            name: Some(name.clone()),
            raw_data: Some(raw),
        });
        name
    }

    fn node(&mut self, op: &str, inputs: Vec<String>, attributes: Vec<AttributeProto>) -> String {
        let out = self.fresh(&op.to_ascii_lowercase());
        self.nodes.push(NodeProto {
            input: inputs,
            output: vec![out.clone()],
            name: Some(format!("{op}_{}", self.count)),
            op_type: Some(op.into()),
            domain: None,
            attribute: attributes,
        });
        out
    }

    /// `Conv` with a bias (graft folds BatchNorm into it): `weight` is `[out, in/groups, kh, kw]`.
    pub fn conv(
        &mut self,
        x: &str,
        weight: Weights,
        bias: Weights,
        stride: usize,
        pads: Pads,
        groups: usize,
    ) -> String {
        let kernel = [weight.dims[2], weight.dims[3]];
        let w = self.constant("weight", weight);
        let b = self.constant("bias", bias);
        let [top, left, bottom, right] = pads;
        let attributes = vec![
            ints("kernel_shape", &kernel),
            ints("strides", &[stride, stride]),
            ints("pads", &[top, left, bottom, right]),
            ints("dilations", &[1, 1]),
            int("group", groups as i64),
        ];
        self.node("Conv", vec![x.into(), w, b], attributes)
    }

    pub fn relu(&mut self, x: &str) -> String {
        self.node("Relu", vec![x.into()], Vec::new())
    }

    /// ReLU6 as `Clip(x, 0, 6)` (opset 11 and later take the bounds as inputs).
    pub fn relu6(&mut self, x: &str) -> String {
        let lo = self.constant(
            "zero",
            Weights {
                values: vec![0.0],
                dims: Vec::new(),
            },
        );
        let hi = self.constant(
            "six",
            Weights {
                values: vec![6.0],
                dims: Vec::new(),
            },
        );
        self.node("Clip", vec![x.into(), lo, hi], Vec::new())
    }

    pub fn add(&mut self, a: &str, b: &str) -> String {
        self.node("Add", vec![a.into(), b.into()], Vec::new())
    }

    pub fn max_pool(&mut self, x: &str, kernel: usize, stride: usize, pads: Pads) -> String {
        let [top, left, bottom, right] = pads;
        let attributes = vec![
            ints("kernel_shape", &[kernel, kernel]),
            ints("strides", &[stride, stride]),
            ints("pads", &[top, left, bottom, right]),
        ];
        self.node("MaxPool", vec![x.into()], attributes)
    }

    /// `MatMul` (NumPy broadcasting: a 2-D operand applies to every `[.., m, k]` matrix).
    pub fn matmul(&mut self, a: &str, b: &str) -> String {
        self.node("MatMul", vec![a.into(), b.into()], Vec::new())
    }

    pub fn global_average_pool(&mut self, x: &str) -> String {
        self.node("GlobalAveragePool", vec![x.into()], Vec::new())
    }

    /// `[batch, c, h, w]` to `[batch, c * h * w]`, in NCHW order as PyTorch flattens.
    pub fn flatten(&mut self, x: &str) -> String {
        self.node("Flatten", vec![x.into()], vec![int("axis", 1)])
    }

    /// `Gemm`: `x W + b` with `weight` as `[in, out]` (burn's `Linear` layout).
    pub fn linear(&mut self, x: &str, weight: Weights, bias: Weights) -> String {
        let w = self.constant("weight", weight);
        let b = self.constant("bias", bias);
        let attributes = vec![float("alpha", 1.0), float("beta", 1.0), int("transB", 0)];
        self.node("Gemm", vec![x.into(), w, b], attributes)
    }

    pub fn softmax(&mut self, x: &str) -> String {
        self.node("Softmax", vec![x.into()], vec![int("axis", -1)])
    }

    /// Renames the last node's output to `name` (the graph's declared output).
    pub fn finish(mut self, input: ValueInfoProto, output: &str, outputs: usize) -> GraphProto {
        if let Some(last) = self.nodes.last_mut() {
            last.output = vec![output.to_string()];
        }
        GraphProto {
            node: self.nodes,
            name: Some("graft".into()),
            initializer: self.initializers,
            doc_string: None,
            input: vec![input],
            output: vec![float_input(output, &[outputs])],
        }
    }
}
