//! EfficientNet-Lite0's classifier (1280 by 1000) at batch 1 through `graft_kernels::linear`,
//! with its weights in cache ("hot") and after 256 MiB have been read ("cold", as in a forward
//! pass, where the convolutions' weights and activations pass through the caches in between).
//! `cargo run --release -p graft-kernels --example classifier_gemv`
use std::time::Instant;
fn main() {
    // The 4-row pass (linear.rs) measured 0.086 ms hot and 0.30 ms cold here on 2 threads; a
    // 2-row pass 0.13 and 0.42; burn's product (gemm) took about 0.30 ms inside the network.
    let (k, n) = (1280usize, 1000usize);
    let w: Vec<f32> = (0..k * n).map(|i| (i % 97) as f32 * 0.01).collect();
    let x: Vec<f32> = (0..k).map(|i| (i % 13) as f32 * 0.1).collect();
    let big: Vec<f32> = vec![1.0; 64 << 20];
    let isa = graft_kernels::Isa::detect();
    graft_kernels::on_workers(|| {
        for cold in [false, true] {
            let mut t = 0.0;
            for _ in 0..50 {
                if cold {
                    std::hint::black_box(big.iter().sum::<f32>());
                }
                let s = Instant::now();
                std::hint::black_box(graft_kernels::linear::forward(&x, 1, &w, k, n, None, isa));
                t += s.elapsed().as_secs_f64();
            }
            println!("cold {cold}: {:.3} ms", t / 50.0 * 1e3);
        }
    });
}
