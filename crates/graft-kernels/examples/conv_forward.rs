//! Forward convolution time per layer shape: burn's `conv2d` vs graft's, on the plain burn-flex
//! device (inference), and ResNet's stem max pool.
//! `cargo run --release -p graft-kernels --example conv_forward [BATCH] [NAME FILTER]`.
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
    let batch: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(16);
    let device = Device::flex();
    // (name, in, out, size, kernel, stride, padding): ResNet-18's convolutions and VGG-16's first.
    let all = [
        ("stem 7x7/2", 3, 64, 224, 7, 2, 3),
        ("layer1 3x3", 64, 64, 56, 3, 1, 1),
        ("layer2 3x3/2", 64, 128, 56, 3, 2, 1),
        ("layer2 3x3", 128, 128, 28, 3, 1, 1),
        ("layer2 1x1/2", 64, 128, 56, 1, 2, 0),
        ("layer3 3x3", 256, 256, 14, 3, 1, 1),
        ("layer4 3x3", 512, 512, 7, 3, 1, 1),
        ("r50 1x1 exp", 64, 256, 56, 1, 1, 0),
        ("vgg 3x3 3>64", 3, 64, 224, 3, 1, 1),
        ("vgg 3x3 64", 64, 64, 224, 3, 1, 1),
        ("vgg 3x3 64>128", 64, 128, 112, 3, 1, 1),
        ("vgg 3x3 128@112", 128, 128, 112, 3, 1, 1),
        ("vgg 3x3 256@56", 256, 256, 56, 3, 1, 1),
        ("vgg 3x3 512@28", 512, 512, 28, 3, 1, 1),
        ("vgg 3x3 512@14", 512, 512, 14, 3, 1, 1),
        ("lite stem 3x3/2", 3, 32, 224, 3, 2, 1),
        ("lite 1x1 24>144", 24, 144, 56, 1, 1, 0),
        ("lite 1x1 144>24", 144, 24, 56, 1, 1, 0),
        ("lite 1x1 80>480", 80, 480, 14, 1, 1, 0),
        ("lite 1x1 672>192", 672, 192, 7, 1, 1, 0),
        ("lite 1x1 320>1280", 320, 1280, 7, 1, 1, 0),
    ];
    let only = std::env::args().nth(2).unwrap_or_default();
    if "maxpool".contains(&only) {
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
    for (name, cin, cout, size, k, s, p) in all.into_iter().filter(|l| l.0.contains(&only)) {
        let x = Tensor::<4>::ones([batch, cin, size, size], &device);
        let w = Tensor::<4>::ones([cout, cin, k, k], &device);
        let o = ConvOptions::new([s, s], [p, p], [1, 1], 1);
        let out = (size + 2 * p - k) / s + 1;
        let gflop = 2.0 * (batch * cout * out * out * cin * k * k) as f64 / 1e9;
        let (b, g) = (
            time(burn_conv2d, &x, &w, &o),
            time(graft_kernels::conv2d, &x, &w, &o),
        );
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
