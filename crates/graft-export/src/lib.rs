//! graft's networks as ONNX files (opset 17), for the runtimes users deploy with: ONNX
//! Runtime, TensorRT, OpenVINO, onnxruntime-web. burn reads ONNX but cannot write it, so this
//! crate holds the few protobuf messages needed ([`onnx`]), a graph builder with one method per
//! operator ([`graph`]), and one walk over graft's `Network` ([`walk`]).
//!
//! The graph uses standard operators only: Conv (BatchNorm folded in), Relu, Clip (ReLU6),
//! Add, MaxPool, GlobalAveragePool, Flatten, Gemm, and Softmax when asked. The batch dimension
//! is dynamic; the image size is fixed at export.

pub mod graph;
pub mod onnx;
mod walk;

use burn::nn::Linear;
use graft_models::Network;
use prost::Message;

pub use walk::network_graph;

/// ONNX's operator set graft targets, and the IR version that goes with it.
pub const OPSET: i64 = 17;
pub const IR_VERSION: i64 = 8;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot export {0}")]
    Unsupported(String),
    #[error("cannot read a tensor: {0}")]
    Tensor(String),
}

/// The ONNX file of `net` followed by `classifier` (logits, or probabilities), at
/// `size x size` input, with `metadata` as the model's `metadata_props`.
pub fn onnx_bytes(
    net: &Network,
    classifier: &[&Linear],
    size: usize,
    probabilities: bool,
    metadata: &[(String, String)],
) -> Result<Vec<u8>, ExportError> {
    let graph = network_graph(net, classifier, size, probabilities)?;
    let model = onnx::ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import: vec![onnx::OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(OPSET),
        }],
        producer_name: Some("graft".into()),
        producer_version: Some(graft_spec::VERSION.into()),
        domain: None,
        model_version: None,
        doc_string: None,
        graph: Some(graph),
        metadata_props: metadata
            .iter()
            .map(|(k, v)| onnx::StringStringEntryProto {
                key: Some(k.clone()),
                value: Some(v.clone()),
            })
            .collect(),
    };
    Ok(model.encode_to_vec())
}
