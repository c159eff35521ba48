//! Dense convolutions one at a time over NCHW planes (`graft_kernels::conv2d`: Winograd, im2col
//! products, the 1x1 product) and over blocks of 16 channels (`blocked_direct`, 1x1 layers
//! included; a stem from planes into blocks, `blocked_stem`; 3x3 stride-1 layers also by
//! Winograd over blocks, `blocked_winograd`, in a third column), with ReLU fused; the
//! shapes from a layer table such as bench/resnet50_convs.tsv. `bench/conv_profile.py` puts
//! them beside ONNX Runtime's with `GRAFT_KERNELS=blocked`.
//! `cargo run --release -p graft-kernels --example blocked_convs FILE [BATCH]` (default 16:
//! the part of a batch-32 micro-batch one worker runs).
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor};
use graft_kernels::blocked::to_blocks;
use graft_kernels::blocked_direct::{self, Packed};
use graft_kernels::grad::Geometry;
use graft_kernels::{Epilogue, Isa};
use std::time::Instant;

fn main() {
    graft_kernels::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: blocked_convs FILE [BATCH]");
        std::process::exit(2);
    };
    let batch: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(16);
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        eprintln!("{path}: {e}");
        std::process::exit(2)
    });
    let (isa, device) = (Isa::detect(), Device::flex());
    let reps = std::env::var("REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let (mut total_planes, mut total_blocks) = (0.0, 0.0);
    // BLOCKS_ONLY=1: the blocked kernels alone (for `perf stat`).
    let skip_planes = std::env::var_os("BLOCKS_ONLY").is_some();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let mut f = line.split('\t');
        let name = f.next().unwrap_or_default();
        let v: Vec<usize> = f.filter_map(|v| v.parse().ok()).collect();
        let [cin, cout, size, k, s, p, count, ..] = v[..] else {
            continue;
        };
        let g = Geometry::new(
            [batch, cin, size, size],
            cout,
            [k, k],
            [s, s],
            [(p, p); 2],
            [1, 1],
        );
        let x: Vec<f32> = (0..batch * cin * size * size)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let w: Vec<f32> = (0..cout * cin * k * k)
            .map(|i| ((i * 104729) % 997) as f32 / 997.0 - 0.5)
            .collect();
        let xt = Tensor::<4>::from_data(
            burn::tensor::TensorData::new(x.clone(), [batch, cin, size, size]),
            &device,
        );
        let wt = Tensor::<4>::from_data(
            burn::tensor::TensorData::new(w.clone(), [cout, cin, k, k]),
            &device,
        );
        let o = ConvOptions::new([s, s], [p, p], [1, 1], 1);
        let xb = to_blocks(&x, batch, cin, size * size);
        let packed = Packed::new(&w, None, cout, cin, k * k);
        // A stem (few input channels) goes from planes into blocks with its own kernel.
        let stem = graft_kernels::blocked_stem::applies(&g)
            .then(|| graft_kernels::blocked_stem::Packed::new(&g, &w, None));
        // A 3x3 stride-1 layer also by Winograd over blocks (`blocked_winograd`).
        let winograd = graft_kernels::blocked_winograd::applies(&g)
            .then(|| graft_kernels::blocked_winograd::Packed::new(&w, None, cout, cin));
        let time = |f: &(dyn Fn() + Sync)| {
            graft_kernels::on_workers(|| {
                f();
                let start = Instant::now();
                for _ in 0..reps {
                    f();
                }
                start.elapsed().as_secs_f64() / reps as f64 * 1e3
            })
        };
        let planes = time(&|| {
            if skip_planes {
                return;
            }
            let y = graft_kernels::conv2d_relu(xt.clone(), wt.clone(), None, o.clone());
            drop(std::hint::black_box(y));
        });
        let blocks = time(&|| {
            let y = if let Some(stem) = &stem {
                graft_kernels::blocked_stem::forward(&g, &x, stem, Epilogue::BiasRelu, isa)
            } else {
                blocked_direct::forward(&g, &xb, &packed, Epilogue::BiasRelu, None, isa)
            };
            drop(std::hint::black_box(y));
        });
        let wino = winograd.as_ref().map(|p| {
            time(&|| {
                let y = graft_kernels::blocked_winograd::forward(
                    &g,
                    &xb,
                    p,
                    Epilogue::BiasRelu,
                    None,
                    isa,
                );
                drop(std::hint::black_box(y));
            })
        });
        let gflop = 2.0 * (g.batch * cout * g.out_len() * cin * k * k) as f64 / 1e9;
        total_planes += planes * count as f64;
        total_blocks += blocks * count as f64;
        let mut blocks_rate = format!("blocks {blocks:7.2} ms {:4.0} GF/s", gflop / blocks * 1e3);
        if let Some(t) = wino {
            blocks_rate += &format!("  winograd {t:7.2} ms {:4.0} GF/s", gflop / t * 1e3);
        }
        if skip_planes {
            println!("{name:20} x{count}  {blocks_rate}");
        } else {
            let planes_rate = format!("planes {planes:7.2} ms {:4.0} GF/s", gflop / planes * 1e3);
            println!("{name:20} x{count}  {planes_rate}  {blocks_rate}");
        }
    }
    if skip_planes {
        println!("total (x count): blocks {total_blocks:.1} ms");
    } else {
        println!("total (x count): planes {total_planes:.1} ms, blocks {total_blocks:.1} ms");
    }
}
