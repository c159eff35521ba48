//! Forward convolution time per layer shape: burn's `conv2d` vs graft's, on the plain burn-flex
//! device (inference), and ResNet's stem max pool.
//! `cargo run --release -p graft-kernels --example conv_forward [BATCH] [NAME FILTER]`.
//! `CONV_LAYERS=FILE` reads the shapes from FILE (same columns; extra columns ignored) instead of
//! bench/conv_layers.tsv, and times graft's convolution only (bench/conv_profile.py's use).
use burn::tensor::module::conv2d as burn_conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor};
use std::time::Instant;

type Conv = fn(Tensor<4>, Tensor<4>, Option<Tensor<1>>, ConvOptions<2>) -> Tensor<4>;

fn time(conv: Conv, x: &Tensor<4>, w: &Tensor<4>, o: &ConvOptions<2>) -> f64 {
    let run = || conv(x.clone(), w.clone(), None, o.clone()).into_data();
    run();
    let start = Instant::now();
    for _ in 0..3 {
        std::hint::black_box(run());
    }
    start.elapsed().as_secs_f64() / 3.0
}

fn main() {
    // As graft's binaries do at start-up: timing without it measures glibc's mmap threshold.
    graft_kernels::keep_freed_memory();
    let batch: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(16);
    let device = Device::flex();
    // (name, in, out, size, kernel, stride, padding), shared with bench/peer_conv.py.
    let file = std::env::var("CONV_LAYERS").ok();
    let text = match &file {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("{path}: {e}");
                std::process::exit(2);
            }
        },
        None => include_str!("../../../bench/conv_layers.tsv").to_string(),
    };
    let all: Vec<(&str, Vec<usize>)> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let mut f = l.split('\t');
            let name = f.next()?;
            Some((name, f.filter_map(|v| v.parse().ok()).collect()))
        })
        .collect();
    let only = std::env::args().nth(2).unwrap_or_default();
    if file.is_none() && "maxpool".contains(&only) {
        let x = Tensor::<4>::ones([batch, 64, 112, 112], &device);
        let pads = [(1, 1); 2];
        let o = burn::tensor::ops::MaxPoolOptions::new([3, 3])
            .with_stride([2, 2])
            .with_padding_pairs(pads);
        let secs = |f: &dyn Fn() -> Tensor<4>| {
            f().into_data();
            let start = Instant::now();
            for _ in 0..3 {
                std::hint::black_box(f().into_data());
            }
            start.elapsed().as_secs_f64() / 3.0
        };
        let b = secs(&|| burn::tensor::module::max_pool2d(x.clone(), o.clone()));
        let g = secs(&|| graft_kernels::max_pool2d(x.clone(), [3, 3], [2, 2], pads));
        println!(
            "maxpool 3x3/2  burn {:7.1} ms | graft {:7.1} ms | x{:.2}",
            b * 1e3,
            g * 1e3,
            b / g
        );
    }
    for (name, v) in all.into_iter().filter(|l| l.0.contains(&only)) {
        let [cin, cout, size, k, s, p, ..] = v[..] else {
            eprintln!("bench/conv_layers.tsv: row {name:?} needs six numbers");
            continue;
        };
        let x = Tensor::<4>::ones([batch, cin, size, size], &device);
        let w = Tensor::<4>::ones([cout, cin, k, k], &device);
        let o = ConvOptions::new([s, s], [p, p], [1, 1], 1);
        let out = (size + 2 * p - k) / s + 1;
        let gflop = 2.0 * (batch * cout * out * out * cin * k * k) as f64 / 1e9;
        let g = time(graft_kernels::conv2d, &x, &w, &o);
        if file.is_some() {
            println!("{name:20} graft {:7.2} ms {:5.0} GF/s", g * 1e3, gflop / g);
            continue;
        }
        let b = time(burn_conv2d, &x, &w, &o);
        println!(
            "{name:14} burn {:7.1} ms {:5.0} GF/s | graft {:7.1} ms {:5.0} GF/s | x{:.2}",
            b * 1e3,
            gflop / b,
            g * 1e3,
            gflop / g,
            b / g
        );
    }
}
