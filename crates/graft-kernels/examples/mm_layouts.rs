//! Which operand layouts burn-flex's matmul (gemm) runs fast for a given [m, k] x [k, n].
use burn_backend::ops::FloatTensorOps;
use burn_backend::{Shape, TensorData};
use burn_flex::{Flex, FlexTensor};
use std::time::Instant;

fn t(r: usize, c: usize) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(vec![0.5f32; r * c], Shape::new([r, c])))
}

fn main() {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap_or(0))
        .collect();
    let (m, k, n) = (a[0], a[1], a[2]);
    let gf = 2.0 * (m * n * k) as f64 / 1e9;
    for (name, lhs_t, rhs_t) in [
        ("NN", false, false),
        ("NT", false, true),
        ("TN", true, false),
        ("TT", true, true),
    ] {
        let lhs = if lhs_t {
            t(k, m).transpose(0, 1)
        } else {
            t(m, k)
        };
        let rhs = if rhs_t {
            t(n, k).transpose(0, 1)
        } else {
            t(k, n)
        };
        let _ = Flex::float_matmul(lhs.clone(), rhs.clone());
        let s = Instant::now();
        for _ in 0..3 {
            std::hint::black_box(Flex::float_matmul(lhs.clone(), rhs.clone()));
        }
        let secs = s.elapsed().as_secs_f64() / 3.0;
        println!(
            "{m}x{k}x{n} {name}: {:.1} ms {:.0} GF/s",
            secs * 1e3,
            gf / secs
        );
    }
}
