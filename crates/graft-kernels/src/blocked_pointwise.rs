//! 1x1 convolutions over activations in blocks of 16 channels (`blocked.rs`' layout,
//! `[image][block][pixel][16]`, ONNX Runtime's NCHWc): a pixel's 16 channels of a block are
//! one AVX-512 vector, so a register tile of `T` pixels by `B` output blocks accumulates over
//! every input channel with one broadcast input value and `B` weight vectors per channel, and
//! nothing is packed per call: the weights are laid out once ([`Packed`]), the activations
//! already are. The kernel is `blocked_direct.rs`' with a 1x1 layer's pixels read as one run
//! (`tile`).
//!
//! The NCHW product per image (`pointwise.rs`) has `gemm` pack both operands on every call,
//! and on 7x7 and 14x14 maps its pixel tiles are partly remainder: Lite0's 192->1152 7x7 layer
//! at batch 8 took 1.78 ms that way and 1.18 ms here (`blocked_layers` example).

use pulp::Simd;

use crate::blocked::{LANES, Lines};
use crate::blocked_direct::Panel;
use crate::epilogue::Epilogue;
use crate::grad::Geometry;
use crate::isa::Isa;

pub use crate::blocked_direct::Packed;

/// `y = epilogue(w x + bias + skip)` for blocked `x` (`batch` images of `pixels` pixels,
/// `w`'s input channels): blocked, `w`'s output channels. `skip`, a residual blocked like `y`,
/// is added before the activation (ResNet's join; with `Epilogue::Bias`, EfficientNet's, the
/// order does not matter).
///
/// Panics if `x` or `skip` is shorter than the shapes say (a caller's error), or `w` is not a
/// 1x1 layer's.
pub fn forward(
    x: &[f32],
    batch: usize,
    pixels: usize,
    w: &Packed,
    epilogue: Epilogue,
    skip: Option<&[f32]>,
    isa: Isa,
) -> Lines {
    assert_eq!(w.taps, 1, "blocked pointwise: weights of a larger kernel");
    let g = Geometry {
        batch,
        in_channels: w.cin,
        in_size: [1, pixels],
        out_channels: w.cout,
        out_size: [1, pixels],
        kernel: [1, 1],
        stride: [1, 1],
        padding: [0, 0],
        dilation: [1, 1],
    };
    crate::blocked_direct::forward(&g, x, w, epilogue, skip, isa)
}

/// `T` pixels from `p` by `B` blocks, the input blocks of `at` accumulated onto `acc` (`x`
/// from the first of them).
#[inline(always)]
pub(crate) fn tile<S: Simd, const V: usize, const B: usize, const T: usize>(
    simd: S,
    x: &[f32],
    pixels: usize,
    at: &Panel<S::f32s>,
    mut acc: [[[S::f32s; V]; B]; T],
    p: usize,
    ahead: &mut crate::prefetch::Ahead<'_>,
) -> [[[S::f32s; V]; B]; T] {
    for (cb, rows) in at.wv.chunks_exact(LANES * at.row).enumerate() {
        ahead.step();
        let xs = &x[(cb * pixels + p) * LANES..][..T * LANES];
        crate::blocked_direct::each_lane(
            #[inline(always)]
            |l| {
                let wr = &rows[l * at.row + at.b0 * V..][..B * V];
                for t in 0..T {
                    let xv = simd.splat_f32s(xs[t * LANES + l]);
                    for b in 0..B {
                        for v in 0..V {
                            acc[t][b][v] = simd.mul_add_e_f32s(xv, wr[b * V + v], acc[t][b][v]);
                        }
                    }
                }
            },
        );
    }
    acc
}
