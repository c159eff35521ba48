//! 1x1 convolutions over activations in blocks of 16 channels (`blocked.rs`' layout,
//! `[image][block][pixel][16]`, ONNX Runtime's NCHWc): a pixel's 16 channels of a block are
//! one AVX-512 vector, so a register tile of `T` pixels by `B` output blocks accumulates over
//! every input channel with one broadcast input value and `B` weight vectors per channel, and
//! nothing is packed per call: the weights are laid out once ([`Packed`]), the activations
//! already are.
//!
//! The NCHW product per image (`pointwise.rs`) has `gemm` pack both operands on every call,
//! and on 7x7 and 14x14 maps its pixel tiles are partly remainder: Lite0's 192->1152 7x7 layer
//! at batch 8 took 1.78 ms that way and 1.18 ms here (`blocked_layers` example).

use pulp::{Simd, WithSimd};
use rayon::prelude::*;

use crate::blocked::{LANES, Lines, blocks};
use crate::epilogue::Epilogue;
use crate::isa::Isa;

pub use crate::blocked_direct::Packed;

/// `y = epilogue(w x + bias + skip)` for blocked `x` (`batch` images of `pixels` pixels,
/// `w`'s input channels): blocked, `w`'s output channels. `skip`, a residual blocked like `y`,
/// is added before the activation (ResNet's join; with `Epilogue::Bias`, EfficientNet's, the
/// order does not matter).
///
/// Panics if `x` or `skip` is shorter than the shapes say (a caller's error).
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
    let (kin, kout) = (blocks(w.cin), blocks(w.cout));
    let (image_in, image_out) = (kin * pixels * LANES, kout * pixels * LANES);
    assert!(
        x.len() >= batch * image_in,
        "blocked pointwise: x too short"
    );
    if let Some(s) = skip {
        assert!(
            s.len() >= batch * image_out,
            "blocked pointwise: skip too short"
        );
    }
    let mut out = Lines::take(batch * image_out);
    if out.is_empty() {
        return out;
    }
    let (tasks, span) = crate::blocked_direct::tasks(&mut out, batch, kout, pixels);
    tasks.into_par_iter().for_each(|(n, p0, g, dst)| {
        let count = span.min(pixels - p0);
        isa.dispatch(Tile {
            x: &x[n * image_in..][..image_in],
            skip: skip.map(|s| &s[n * image_out..][..image_out]),
            pixels,
            p0,
            count,
            kin,
            w,
            g,
            epilogue,
            dst,
        });
    });
    out
}

/// One task: output blocks `g..g + dst.len()` (`g` a block index) of one image, pixels `p0..p0 + count`.
struct Tile<'a> {
    x: &'a [f32],
    skip: Option<&'a [f32]>,
    pixels: usize,
    p0: usize,
    count: usize,
    kin: usize,
    w: &'a Packed,
    g: usize,
    epilogue: Epilogue,
    dst: Vec<&'a mut [f32]>,
}

impl WithSimd for Tile<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(mut self, simd: S) {
        let nb = self.dst.len();
        // (first block, blocks, pixels) of each register tile over the group, by vector width.
        match (S::F32_LANES, nb) {
            (16, 4) => self.run::<S, 1, 4, 6>(simd, 0),
            (16, 3) => self.run::<S, 1, 3, 8>(simd, 0),
            (16, 2) => self.run::<S, 1, 2, 12>(simd, 0),
            (16, _) => (0..nb).for_each(|b| self.run::<S, 1, 1, 12>(simd, b)),
            (8, _) => {
                for b in (0..nb).step_by(2) {
                    if nb - b >= 2 {
                        self.run::<S, 2, 2, 3>(simd, b)
                    } else {
                        self.run::<S, 2, 1, 6>(simd, b)
                    }
                }
            }
            (4, _) => (0..nb).for_each(|b| self.run::<S, 4, 1, 3>(simd, b)),
            _ => (0..nb).for_each(|b| self.run::<S, 16, 1, 1>(simd, b)),
        }
    }
}

impl Tile<'_> {
    /// Blocks `b0..b0 + B` of the group (`V` vectors a block), tiles of `T` pixels, then one
    /// pixel at a time to the end of the task's pixels.
    #[inline(always)]
    fn run<S: Simd, const V: usize, const B: usize, const T: usize>(&mut self, simd: S, b0: usize) {
        let kin = self.kin;
        let width = self.dst.len() * LANES;
        let first = self.g * LANES;
        let panel = &self.w.data[first * kin * LANES..][..kin * LANES * width];
        let wv = S::as_simd_f32s(panel).0;
        let bias = S::as_simd_f32s(&self.w.bias[first + b0 * LANES..][..B * LANES]).0;
        let mut start = [[bias[0]; V]; B];
        for (b, s) in start.iter_mut().enumerate() {
            s.copy_from_slice(&bias[b * V..][..V]);
        }
        let row = width / S::F32_LANES.max(1);
        let (end, mut p) = (self.p0 + self.count, self.p0);
        while p < end {
            let at = Panel { wv, row, b0 };
            if end - p >= T {
                let acc = tile::<S, V, B, T>(simd, self.x, self.pixels, kin, at, start, p);
                self.store::<S, V, B>(simd, &acc, b0, p);
                p += T;
            } else {
                let acc = tile::<S, V, B, 1>(simd, self.x, self.pixels, kin, at, start, p);
                self.store::<S, V, B>(simd, &acc, b0, p);
                p += 1;
            }
        }
    }

    /// Pixels `p..p + sums.len()` of blocks `b0..b0 + B`: the skip, then the epilogue.
    #[inline(always)]
    fn store<S: Simd, const V: usize, const B: usize>(
        &mut self,
        simd: S,
        sums: &[[[S::f32s; V]; B]],
        b0: usize,
        p: usize,
    ) {
        for (t, s) in sums.iter().enumerate() {
            let at = (p + t - self.p0) * LANES;
            for (b, s) in s.iter().enumerate() {
                let d = S::as_mut_simd_f32s(&mut self.dst[b0 + b][at..][..LANES]).0;
                let skip = self.skip.map(|k| {
                    let block = self.g + b0 + b;
                    S::as_simd_f32s(&k[(block * self.pixels + p + t) * LANES..][..LANES]).0
                });
                for v in 0..V {
                    let sum = match skip {
                        Some(k) => simd.add_f32s(s[v], k[v]),
                        None => s[v],
                    };
                    d[v] = self.epilogue.apply_simd(simd, sum);
                }
            }
        }
    }
}

/// Where a tile's weights are: `row` vectors per input channel, its blocks from `b0`.
#[derive(Clone, Copy)]
struct Panel<'a, V> {
    wv: &'a [V],
    row: usize,
    b0: usize,
}

/// `T` pixels from `p` by `B` blocks, every input channel accumulated onto `start` (the bias).
#[inline(always)]
fn tile<S: Simd, const V: usize, const B: usize, const T: usize>(
    simd: S,
    x: &[f32],
    pixels: usize,
    kin: usize,
    at: Panel<S::f32s>,
    start: [[S::f32s; V]; B],
    p: usize,
) -> [[[S::f32s; V]; B]; T] {
    let mut acc = [start; T];
    for (cb, rows) in at.wv.chunks_exact(LANES * at.row).enumerate().take(kin) {
        let xs = &x[(cb * pixels + p) * LANES..][..T * LANES];
        for l in 0..LANES {
            let wr = &rows[l * at.row + at.b0 * V..][..B * V];
            for t in 0..T {
                let xv = simd.splat_f32s(xs[t * LANES + l]);
                for b in 0..B {
                    for v in 0..V {
                        acc[t][b][v] = simd.mul_add_e_f32s(xv, wr[b * V + v], acc[t][b][v]);
                    }
                }
            }
        }
    }
    acc
}
