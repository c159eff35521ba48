//! EfficientNet-Lite0's convolutions one layer at a time, with ReLU6 fused, through graft's
//! slice kernels (depthwise, 1x1, stem) on rayon's workers: the graft side of a per-layer
//! comparison with ONNX Runtime's own profile of the network (`bench/ort_profile.py`).
//! `cargo run --release -p graft-kernels --example lite_layers [BATCH] [IN_CHANNELS] [REPS]`:
//! IN_CHANNELS keeps only the depthwise layers with that many channels.
//! A lone layer's output over glibc's mmap threshold (32 MiB here: the 112x112 layers at batch
//! 32) is freshly mapped on every call, which the network's recycled outputs are not, so those
//! rows overstate the in-network time.
use graft_kernels::{Epilogue, Isa};
use std::time::Instant;

#[path = "common/lite0.rs"]
mod lite0;

fn main() {
    graft_kernels::keep_freed_memory();
    let batch = lite0::arg(1, 32);
    let isa = Isa::detect();
    let (mut total, mut pw_total, mut dw_total) = (0.0, 0.0, 0.0);
    let only: Option<usize> = std::env::args().nth(2).and_then(|a| a.parse().ok());
    let reps = lite0::arg(3, 3);
    for layer in lite0::LAYERS {
        let &(cin, cout, size, k, s, dw, count) = layer;
        if only.is_some_and(|o| o != cin || !dw) {
            continue;
        }
        let g = lite0::geometry(batch, layer);
        let x = vec![0.5f32; batch * cin * size * size];
        let w = vec![0.01f32; cout * if dw { 1 } else { cin } * k * k];
        let b = vec![0.0f32; cout];
        let run = || {
            if dw {
                graft_kernels::depthwise::forward(&g, &x, &w, Some(&b), Epilogue::BiasRelu6, isa)
            } else if k == 1 {
                graft_kernels::pointwise::forward(&g, &x, &w, Some(&b), Epilogue::BiasRelu6, isa)
            } else {
                graft_kernels::stem::forward(&g, &x, &w, Some(&b), Epilogue::BiasRelu6, isa)
            }
        };
        let ms = graft_kernels::on_workers(|| {
            drop(run());
            let start = Instant::now();
            for _ in 0..reps {
                drop(std::hint::black_box(run()));
            }
            start.elapsed().as_secs_f64() / reps as f64 * 1e3
        });
        total += ms * count as f64;
        if dw {
            dw_total += ms * count as f64
        } else if k == 1 {
            pw_total += ms * count as f64
        }
        println!("{cin:5} {cout:5} {size:4} k{k} s{s} dw={dw:5} x{count}  {ms:7.2} ms");
    }
    println!("total {total:.1} ms: pointwise {pw_total:.1}, depthwise {dw_total:.1}");
}
