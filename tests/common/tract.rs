//! Running an ONNX file with tract, the pure-Rust ONNX runtime the export tests check against
//! (included with `#[path]`).
#![allow(dead_code)]

use tract_onnx::prelude::{
    Datum, Framework, InferenceFact, InferenceModelExt, Tensor, tract_ndarray, tvec,
};

/// Runs an ONNX file with tract on `input` of `shape`.
pub fn run(onnx: &[u8], input: &[f32], shape: &[usize]) -> Vec<f32> {
    let model = tract_onnx::onnx()
        .model_for_read(&mut &onnx[..])
        .expect("tract reads the file")
        .with_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), shape))
        .expect("input fact")
        .into_optimized()
        .expect("optimized")
        .into_runnable()
        .expect("runnable");
    let x = tract_ndarray::ArrayD::from_shape_vec(shape.to_vec(), input.to_vec()).expect("input");
    let out = model
        .run(tvec!(Tensor::from(x).into()))
        .expect("tract runs it");
    out[0]
        .to_array_view::<f32>()
        .expect("f32")
        .iter()
        .copied()
        .collect()
}

/// Runs `onnx` on `images` (each `[3, size, size]`, concatenated) in batches of `batch`.
pub fn run_batches(onnx: &[u8], images: &[f32], size: usize, batch: usize) -> Vec<f32> {
    let per = 3 * size * size;
    let n = images.len() / per;
    let model = tract_onnx::onnx()
        .model_for_read(&mut &onnx[..])
        .expect("tract reads the file")
        .with_input_fact(
            0,
            InferenceFact::dt_shape(f32::datum_type(), [batch, 3, size, size]),
        )
        .expect("input fact")
        .into_optimized()
        .expect("optimized")
        .into_runnable()
        .expect("runnable");
    let mut out = Vec::new();
    for start in (0..n).step_by(batch) {
        let mut x = images[start * per..(start + batch).min(n) * per].to_vec();
        let real = x.len() / per;
        x.resize(batch * per, 0.0);
        let x =
            tract_ndarray::ArrayD::from_shape_vec(vec![batch, 3, size, size], x).expect("input");
        let y = model
            .run(tvec!(Tensor::from(x).into()))
            .expect("tract runs it");
        let y: Vec<f32> = y[0]
            .to_array_view::<f32>()
            .expect("f32")
            .iter()
            .copied()
            .collect();
        let width = y.len() / batch;
        out.extend_from_slice(&y[..real * width]);
    }
    out
}
