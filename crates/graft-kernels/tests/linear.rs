//! The small-batch fully connected kernel against the definition at every instruction set
//! level, and its tensor entry against burn's product, falling back where it does not apply.

use burn::tensor::{Device, Tensor, TensorData};
use graft_kernels::Isa;
use graft_kernels::linear::{MAX_ROWS, forward, linear};

mod common;

/// `x w + bias`, summed in f64.
fn definition(
    x: &[f32],
    rows: usize,
    w: &[f32],
    k: usize,
    n: usize,
    b: Option<&[f32]>,
) -> Vec<f32> {
    let mut y = Vec::with_capacity(rows * n);
    for r in 0..rows {
        for c in 0..n {
            let s: f64 = (0..k)
                .map(|i| x[r * k + i] as f64 * w[i * n + c] as f64)
                .sum();
            y.push((s + b.map_or(0.0, |b| b[c] as f64)) as f32);
        }
    }
    y
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4 * w.abs().max(1.0),
            "{what}: [{i}] {g} against {w}"
        );
    }
}

#[test]
fn matches_the_definition_at_every_level() {
    // Inner sizes off the 4-row step and the vector width; a band count that is not a power of two.
    for (case, &(rows, k, n)) in [
        (1, 1280, 1000),
        (3, 7, 5),
        (4, 517, 33),
        (2, 64, 16),
        (1, 1, 1),
    ]
    .iter()
    .enumerate()
    {
        let x = common::noise(rows * k, case as u64);
        let w = common::noise(k * n, 100 + case as u64);
        let b = common::noise(n, 200 + case as u64);
        for bias in [None, Some(&b[..])] {
            let want = definition(&x, rows, &w, k, n, bias);
            for isa in Isa::available() {
                let got = forward(&x, rows, &w, k, n, bias, isa);
                assert_close(
                    &got,
                    &want,
                    &format!("{rows}x{k}x{n} {isa:?} bias {}", bias.is_some()),
                );
            }
        }
    }
}

#[test]
fn the_tensor_entry_agrees_with_burn_and_falls_back_past_its_rows() {
    let device = Device::flex();
    let (k, n) = (300, 70);
    let w = Tensor::<2>::from_data(TensorData::new(common::noise(k * n, 7), [k, n]), &device);
    let b = Tensor::<1>::from_data(TensorData::new(common::noise(n, 8), [n]), &device);
    for rows in [1, MAX_ROWS, MAX_ROWS + 3] {
        let x = Tensor::<2>::from_data(
            TensorData::new(common::noise(rows * k, 9), [rows, k]),
            &device,
        );
        let burns = x.clone().matmul(w.clone()) + b.clone().unsqueeze_dim(0);
        let ours = linear(x, w.clone(), Some(b.clone()));
        assert_eq!(ours.dims(), [rows, n]);
        let vals = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().unwrap_or_default();
        assert_close(&vals(ours), &vals(burns), &format!("{rows} rows"));
    }
}

#[test]
fn a_strided_weight_gives_the_same_product() {
    // A weight seen through a transpose (as a `[out, in]` checkpoint could be held) is read in
    // place by burn's product rather than copied.
    let device = Device::flex();
    let (k, n) = (40, 24);
    let stored = Tensor::<2>::from_data(TensorData::new(common::noise(n * k, 3), [n, k]), &device);
    let w = stored.transpose();
    let x = Tensor::<2>::from_data(TensorData::new(common::noise(k, 4), [1, k]), &device);
    let vals = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().unwrap_or_default();
    let want = vals(x.clone().matmul(w.clone()));
    assert_close(&vals(linear(x, w, None)), &want, "transposed weight");
}

#[test]
fn empty_shapes_give_the_bias_or_nothing() {
    let b = [0.5f32, -1.0];
    for isa in Isa::available() {
        // No inputs: the bias, row by row; no outputs: nothing (and no panic).
        assert_eq!(
            forward(&[], 2, &[], 0, 2, Some(&b), isa),
            vec![0.5, -1.0, 0.5, -1.0]
        );
        assert_eq!(
            forward(&[1.0; 6], 2, &[], 3, 0, None, isa),
            Vec::<f32>::new()
        );
    }
}
