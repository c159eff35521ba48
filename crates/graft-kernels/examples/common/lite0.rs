//! EfficientNet-Lite0's convolutions at 224x224, shared by the per-layer examples.
use graft_kernels::grad::Geometry;

/// One convolution: (in, out, input size, kernel, stride, depthwise, times in the network).
pub type Layer = (usize, usize, usize, usize, usize, bool, usize);

/// Every distinct convolution of the network, stem first, head convolution last.
pub const LAYERS: &[Layer] = &[
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

/// Layer `l` at `batch` images, with TensorFlow "same" padding (the extra pixel at the end
/// dropped: the examples time the arithmetic, not the exact border).
pub fn geometry(batch: usize, l: &Layer) -> Geometry {
    let &(cin, cout, size, k, s, _, _) = l;
    let out = size.div_ceil(s);
    let pad = ((out - 1) * s + k).saturating_sub(size) / 2;
    Geometry {
        batch,
        in_channels: cin,
        in_size: [size, size],
        out_channels: cout,
        out_size: [out, out],
        kernel: [k, k],
        stride: [s, s],
        padding: [pad, pad],
        dilation: [1, 1],
    }
}

/// Command-line argument `n` as a number, or `default`.
pub fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}
