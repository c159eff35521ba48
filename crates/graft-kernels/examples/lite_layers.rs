//! EfficientNet-Lite0's convolutions one layer at a time, with ReLU6 fused, through graft's
//! slice kernels (depthwise, 1x1, stem) on rayon's workers: the graft side of a per-layer
//! comparison with ONNX Runtime's own profile of the network (`bench/ort_profile.py`).
//! `cargo run --release -p graft-kernels --example lite_layers [BATCH] [IN_CHANNELS] [REPS]`:
//! IN_CHANNELS keeps only the depthwise layers with that many channels.
//! A lone layer's output over glibc's mmap threshold (32 MiB here: the 112x112 layers at batch
//! 32) is freshly mapped on every call, which the network's recycled outputs are not, so those
//! rows overstate the in-network time.
use graft_kernels::grad::Geometry;
use graft_kernels::{Epilogue, Isa};
use std::time::Instant;

fn main() {
    graft_kernels::keep_freed_memory();
    let batch: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(32);
    let isa = Isa::detect();
    // (in, out, input size, kernel, stride, depthwise, times in the network)
    let rows: &[(usize, usize, usize, usize, usize, bool, usize)] = &[
        (3, 32, 224, 3, 2, false, 1),
        (32, 32, 112, 3, 1, true, 1),
        (32, 16, 112, 1, 1, false, 1),
        (16, 96, 112, 1, 1, false, 1),
        (96, 96, 112, 3, 2, true, 1),
        (96, 24, 56, 1, 1, false, 1),
        (24, 144, 56, 1, 1, false, 2),
        (144, 144, 56, 3, 1, true, 1),
        (144, 24, 56, 1, 1, false, 1),
        (144, 144, 56, 5, 2, true, 1),
        (144, 40, 28, 1, 1, false, 1),
        (40, 240, 28, 1, 1, false, 2),
        (240, 240, 28, 5, 1, true, 1),
        (240, 40, 28, 1, 1, false, 1),
        (240, 240, 28, 3, 2, true, 1),
        (240, 80, 14, 1, 1, false, 1),
        (80, 480, 14, 1, 1, false, 3),
        (480, 480, 14, 3, 1, true, 2),
        (480, 80, 14, 1, 1, false, 2),
        (480, 480, 14, 5, 1, true, 1),
        (480, 112, 14, 1, 1, false, 1),
        (112, 672, 14, 1, 1, false, 3),
        (672, 672, 14, 5, 1, true, 2),
        (672, 112, 14, 1, 1, false, 2),
        (672, 672, 14, 5, 2, true, 1),
        (672, 192, 7, 1, 1, false, 1),
        (192, 1152, 7, 1, 1, false, 4),
        (1152, 1152, 7, 5, 1, true, 3),
        (1152, 192, 7, 1, 1, false, 3),
        (1152, 1152, 7, 3, 1, true, 1),
        (1152, 320, 7, 1, 1, false, 1),
        (320, 1280, 7, 1, 1, false, 1),
    ];
    let (mut total, mut pw_total, mut dw_total) = (0.0, 0.0, 0.0);
    let only: Option<usize> = std::env::args().nth(2).and_then(|a| a.parse().ok());
    let reps: usize = std::env::args()
        .nth(3)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    for &(cin, cout, size, k, s, dw, count) in rows {
        if only.is_some_and(|o| o != cin || !dw) {
            continue;
        }
        let out = size.div_ceil(s);
        let pad = ((out - 1) * s + k).saturating_sub(size) / 2;
        let g = Geometry {
            batch,
            in_channels: cin,
            in_size: [size, size],
            out_channels: cout,
            out_size: [out, out],
            kernel: [k, k],
            stride: [s, s],
            padding: [pad, pad],
            dilation: [1, 1],
        };
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
