//! EfficientNet-Lite0's 1x1 and depthwise layers one at a time, over NCHW planes (`pointwise`,
//! `depthwise`) and over blocks of 16 channels (`blocked_pointwise`, `depthwise::forward_blocked`),
//! with ReLU6 fused, and the largest difference between the two outputs.
//! `cargo run --release -p graft-kernels --example blocked_layers [BATCH]` (default 8: about
//! the micro-batch a batch-32 pass runs the network in). A lone layer's output larger than
//! glibc's mmap threshold is mapped fresh on every call (see the `lite_layers` example).
use graft_kernels::{Epilogue, Isa, blocked, blocked_pointwise};
use std::time::Instant;

#[path = "common/lite0.rs"]
mod lite0;

fn main() {
    graft_kernels::keep_freed_memory();
    let batch = lite0::arg(1, 8);
    let isa = Isa::detect();
    let reps = 5;
    let (mut ta, mut tb) = (0.0, 0.0);
    // The 1x1 and depthwise layers (the stem has its own kernel).
    for layer in lite0::LAYERS.iter().filter(|l| l.3 == 1 || l.5) {
        let &(cin, cout, size, k, s, dw, count) = layer;
        let g = lite0::geometry(batch, layer);
        let out = g.out_size[0];
        let hw = size * size;
        let x: Vec<f32> = (0..batch * cin * hw)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let w: Vec<f32> = (0..cout * if dw { k * k } else { cin })
            .map(|i| ((i * 104729) % 997) as f32 / 997.0 - 0.5)
            .collect();
        let b: Vec<f32> = (0..cout).map(|i| i as f32 * 0.01).collect();
        let xb = blocked::to_blocks(&x, batch, cin, hw);
        let packed = blocked_pointwise::Packed::new(
            if dw { &[0.0; 0] } else { &w },
            Some(&b),
            if dw { 0 } else { cout },
            cin,
            1,
        );
        let filters = graft_kernels::depthwise::BlockedFilters::new(
            if dw { &w } else { &[0.0; 0] },
            if dw { cout } else { 0 },
            k * k,
        );
        // Each side's output is dropped inside the timing, as the network drops its layers'.
        let time = |f: &(dyn Fn() -> Box<dyn std::ops::Deref<Target = [f32]>> + Sync)| {
            graft_kernels::on_workers(|| {
                drop(f());
                let s = Instant::now();
                for _ in 0..reps {
                    drop(std::hint::black_box(f()));
                }
                s.elapsed().as_secs_f64() / reps as f64 * 1e3
            })
        };
        let plain = || {
            if dw {
                graft_kernels::depthwise::forward(&g, &x, &w, Some(&b), Epilogue::BiasRelu6, isa)
            } else {
                graft_kernels::pointwise::forward(&g, &x, &w, Some(&b), Epilogue::BiasRelu6, isa)
            }
        };
        let blk = || {
            if dw {
                graft_kernels::depthwise::forward_blocked(
                    &g,
                    &xb,
                    &filters,
                    Some(&b),
                    Epilogue::BiasRelu6,
                    isa,
                )
            } else {
                blocked_pointwise::forward(&xb, batch, hw, &packed, Epilogue::BiasRelu6, None, isa)
            }
        };
        let a = time(&|| Box::new(plain()));
        let bt = time(&|| Box::new(blk()));
        let r2 = blocked::from_blocks(&blk(), batch, cout, out * out);
        let err = plain()
            .iter()
            .zip(&r2)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        ta += a * count as f64;
        tb += bt * count as f64;
        println!(
            "{cin:5} {cout:5} {size:4} k{k} s{s} dw={dw:5} x{count}  nchw {a:7.2} ms  blocked {bt:7.2} ms  err {err:.1e}"
        );
    }
    println!("total nchw {ta:.1} blocked {tb:.1}");
}
