//! The blocked 1x1 kernel on one small layer again and again (inputs in L2, weights in L1):
//! its rate with memory out of the way, against the machine's peak (bench/peak.c).
//! `RAYON_NUM_THREADS=1 cargo run --release -p graft-kernels --example kernel_peak [CIN COUT PIXELS]`
use graft_kernels::blocked::to_blocks;
use graft_kernels::blocked_pointwise::{self, Packed};
use graft_kernels::{Epilogue, Isa};
use std::time::Instant;

fn main() {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let (cin, cout, pixels) = match a[..] {
        [c, o, p] => (c, o, p),
        _ => (64, 64, 600),
    };
    let x: Vec<f32> = (0..cin * pixels).map(|i| (i % 97) as f32 / 97.0).collect();
    let w: Vec<f32> = (0..cin * cout).map(|i| (i % 89) as f32 / 89.0).collect();
    let xb = to_blocks(&x, 1, cin, pixels);
    let packed = Packed::new(&w, None, cout, cin, 1);
    let isa = Isa::detect();
    let reps = 2000;
    let secs = graft_kernels::on_workers(|| {
        let s = Instant::now();
        for _ in 0..reps {
            let y = blocked_pointwise::forward(&xb, 1, pixels, &packed, Epilogue::Bias, None, isa);
            drop(std::hint::black_box(y));
        }
        s.elapsed().as_secs_f64()
    });
    let gflop = 2.0 * (cin * cout * pixels * reps) as f64 / 1e9;
    println!(
        "{cin}>{cout} on {pixels} pixels: {:.0} GFLOP/s",
        gflop / secs
    );
}
