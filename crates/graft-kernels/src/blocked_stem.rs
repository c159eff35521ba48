//! A dense convolution with few input channels (a network's stem over RGB) from NCHW planes
//! straight into blocks of 16 channels (`blocked.rs`' layout), so that a blocked pass
//! (EfficientNet's) starts without converting the stem's output: that conversion, and the
//! plane kernel before it (`stem.rs`), took a fifth of Lite0's batch-32 pass outside the
//! blocks.
//!
//! Each task's band of input rows is copied into zero-padded planes. A register tile of `T` output
//! pixels along a row by `B` output blocks then accumulates every tap of every input channel:
//! per tap, `T` broadcast input values (read at the stride, from any phase: a broadcast is one
//! load wherever it reads) and `B` weight vectors feed `T * B` multiply-adds.

use pulp::{Simd, WithSimd};
use rayon::prelude::*;

use crate::blocked::{LANES, Lines, blocks};
use crate::epilogue::Epilogue;
use crate::grad::Geometry;
use crate::isa::Isa;
use crate::scratch;

/// At most this many input channels (more make a plain product worth its packing).
const MAX_IN_CHANNELS: usize = 4;
/// Taps per input channel at most (7x7).
const MAX_TAPS: usize = 49;
/// Output rows per task: enough tasks for both threads at batch 1.
const TASK_ROWS: usize = 8;

/// Whether [`forward`] takes convolution `g` (dense, which the caller checks).
pub fn applies(g: &Geometry) -> bool {
    let small = g.in_channels <= MAX_IN_CHANNELS && g.taps() <= MAX_TAPS;
    small && g.kernel != [1, 1] && g.out_len() > 0 && g.in_len() > 0
}

/// A stem's weights `[out, in, kh, kw]` as `[block][in][tap][16]`, zero-padded to whole
/// blocks, and its bias likewise.
#[derive(Clone, Debug)]
pub struct Packed {
    data: Vec<f32>,
    bias: Vec<f32>,
}

impl Packed {
    pub fn new(g: &Geometry, w: &[f32], bias: Option<&[f32]>) -> Packed {
        let (cin, cout, taps) = (g.in_channels, g.out_channels, g.taps());
        assert!(
            w.len() >= cout * cin * taps,
            "blocked stem: weight too short"
        );
        let mut data = vec![0.0; blocks(cout) * cin * taps * LANES];
        for co in 0..cout {
            for ci in 0..cin {
                for t in 0..taps {
                    let at = (((co / LANES) * cin + ci) * taps + t) * LANES + co % LANES;
                    data[at] = w[(co * cin + ci) * taps + t];
                }
            }
        }
        Packed {
            data,
            bias: crate::blocked::padded_bias(bias, cout),
        }
    }
}

/// `y = epilogue(conv(x, w) + bias)` for NCHW `x`, blocked out (`[batch, blocks(out), pixels,
/// 16]`), `w` laid out by [`Packed::new`] for `g`.
///
/// Panics if `x` is shorter than `g` says (a caller's error).
pub fn forward(g: &Geometry, x: &[f32], w: &Packed, epilogue: Epilogue, isa: Isa) -> Lines {
    let kb = blocks(g.out_channels);
    let (image_in, out_len) = (g.in_channels * g.in_len(), g.out_len());
    assert!(x.len() >= g.batch * image_in, "blocked stem: x too short");
    let mut out = Lines::take(g.batch * kb * out_len * LANES);
    let [oh, ow] = g.out_size;
    let span = TASK_ROWS * ow;
    let mut tasks = Vec::new();
    for (n, image) in out.chunks_mut((kb * out_len * LANES).max(1)).enumerate() {
        let mut planes: Vec<_> = image
            .chunks_mut(out_len * LANES)
            .map(|b| b.chunks_mut(span * LANES))
            .collect();
        for r0 in (0..oh).step_by(TASK_ROWS) {
            let parts: Vec<&mut [f32]> = planes.iter_mut().filter_map(Iterator::next).collect();
            tasks.push((n, r0, parts));
        }
    }
    tasks.into_par_iter().for_each(|(n, r0, dst)| {
        let rows = r0..oh.min(r0 + TASK_ROWS);
        let padded = Padded::of(g, rows.clone());
        let mut planes = scratch::take(padded.len(g));
        padded.fill(g, &x[n * image_in..][..image_in], &mut planes);
        isa.dispatch(Rows {
            g,
            padded: &padded,
            planes: &planes,
            w,
            epilogue,
            rows,
            dst,
        });
        scratch::keep(planes);
    });
    out
}

/// The band of an image's padded input planes that output rows `rows` read: `height` padded
/// rows from padded row `first`, `width` columns (with the padding, and room for a tile's
/// last tap).
#[derive(Clone, Copy, Debug)]
struct Padded {
    first: usize,
    height: usize,
    width: usize,
}

impl Padded {
    fn of(g: &Geometry, rows: std::ops::Range<usize>) -> Padded {
        let tap_reach = |a: usize| (g.kernel[a] - 1) * g.dilation[a] + 1;
        let first = rows.start * g.stride[0];
        let width = (g.out_size[1] - 1) * g.stride[1] + tap_reach(1);
        Padded {
            first,
            height: (rows.len().max(1) - 1) * g.stride[0] + tap_reach(0),
            width: width.max(g.in_size[1] + g.padding[1]),
        }
    }

    fn len(&self, g: &Geometry) -> usize {
        g.in_channels * self.height * self.width
    }

    /// The band of the image's planes `x` at their padding offsets, zeros elsewhere.
    fn fill(&self, g: &Geometry, x: &[f32], planes: &mut [f32]) {
        let [h, w] = g.in_size;
        let [pt, pl] = g.padding;
        for (c, plane) in planes
            .chunks_exact_mut(self.height * self.width)
            .enumerate()
        {
            for (r, row) in plane.chunks_exact_mut(self.width).enumerate() {
                match (self.first + r).checked_sub(pt).filter(|&iy| iy < h) {
                    Some(iy) => {
                        let src = &x[(c * h + iy) * w..][..w];
                        let end = (pl + w).min(self.width);
                        row[..pl].fill(0.0);
                        row[pl..end].copy_from_slice(&src[..end - pl]);
                        row[end..].fill(0.0);
                    }
                    None => row.fill(0.0),
                }
            }
        }
    }
}

/// Output rows `rows` of one image: `dst` holds, per output block, those rows' pixels.
struct Rows<'a> {
    g: &'a Geometry,
    padded: &'a Padded,
    planes: &'a [f32],
    w: &'a Packed,
    epilogue: Epilogue,
    rows: std::ops::Range<usize>,
    dst: Vec<&'a mut [f32]>,
}

impl WithSimd for Rows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        // Every stem here has stride 2: as a constant, a tile's broadcasts read at fixed
        // offsets from the tap's corner. As a variable, the compiler kept the eight offsets on
        // the stack and loaded one before each broadcast, which made the tile wait on loads
        // (101 GFLOP/s on one thread alone, Lite0's stem).
        match self.g.stride[1] {
            2 => self.blocks::<S, 2>(simd),
            _ => self.blocks::<S, 0>(simd),
        }
    }
}

impl Rows<'_> {
    /// Every block of the rows, at column stride `SW` (0: the geometry's).
    #[inline(always)]
    fn blocks<S: Simd, const SW: usize>(mut self, simd: S) {
        let kb = self.dst.len();
        // Plain loops: a closure the compiler does not inline loses the vector context (see
        // `blocked_direct`'s tile).
        match S::F32_LANES {
            16 => {
                for b in (0..kb).step_by(2) {
                    if kb - b >= 2 {
                        self.run::<S, 1, 2, 8, SW>(simd, b)
                    } else {
                        self.run::<S, 1, 1, 8, SW>(simd, b)
                    }
                }
            }
            8 => {
                for b in 0..kb {
                    self.run::<S, 2, 1, 4, SW>(simd, b)
                }
            }
            4 => {
                for b in 0..kb {
                    self.run::<S, 4, 1, 2, SW>(simd, b)
                }
            }
            _ => {
                for b in 0..kb {
                    self.run::<S, 16, 1, 1, SW>(simd, b)
                }
            }
        }
    }

    /// Blocks `b0..b0 + B`, tiles of `T` pixels along each row, then single pixels.
    #[inline(always)]
    fn run<S: Simd, const V: usize, const B: usize, const T: usize, const SW: usize>(
        &mut self,
        simd: S,
        b0: usize,
    ) {
        let g = self.g;
        let (cin, taps) = (g.in_channels, g.taps());
        let [_, ow] = g.out_size;
        let [sh, sw] = g.stride;
        let (ph, pw) = (self.padded.height, self.padded.width);
        let per_block = cin * taps * LANES;
        let wv = S::as_simd_f32s(&self.w.data[b0 * per_block..][..B * per_block]).0;
        let bias = S::as_simd_f32s(&self.w.bias[b0 * LANES..][..B * LANES]).0;
        let mut start = [[bias[0]; V]; B];
        for (b, s) in start.iter_mut().enumerate() {
            s.copy_from_slice(&bias[b * V..][..V]);
        }
        // Each tap's offset in the padded planes from its output pixel's top-left input.
        let mut offsets = [0usize; MAX_TAPS * MAX_IN_CHANNELS];
        for c in 0..cin {
            for t in 0..taps {
                let (ki, kj) = (t / g.kernel[1], t % g.kernel[1]);
                offsets[c * taps + t] = (c * ph + ki * g.dilation[0]) * pw + kj * g.dilation[1];
            }
        }
        let at = Taps {
            offsets: &offsets[..cin * taps],
            wv,
            stride: sw,
        };
        let first = self.rows.start;
        for oy in self.rows.clone() {
            let mut ox = 0;
            while ox < ow {
                let corner = (oy - first) * sh * pw + ox * sw;
                let n = if ow - ox >= T { T } else { 1 };
                let out = ((oy - first) * ow + ox) * LANES;
                if n == T {
                    let acc = tile::<S, V, B, T, SW>(simd, self.planes, &at, start, corner);
                    self.store(simd, &acc, b0, out);
                } else {
                    let acc = tile::<S, V, B, 1, SW>(simd, self.planes, &at, start, corner);
                    self.store(simd, &acc, b0, out);
                }
                ox += n;
            }
        }
    }

    /// `T` pixels from `out` (in floats, within the task's rows) of blocks `b0..b0 + B`, with
    /// constant indices so that the sums go out from their registers (`blocked_direct`'s
    /// store).
    #[inline(always)]
    fn store<S: Simd, const V: usize, const B: usize, const T: usize>(
        &mut self,
        simd: S,
        sums: &[[[S::f32s; V]; B]; T],
        b0: usize,
        out: usize,
    ) {
        let epilogue = self.epilogue;
        crate::blocked_direct::each_block::<B>(
            #[inline(always)]
            |b| {
                let d = S::as_mut_simd_f32s(&mut self.dst[b0 + b][out..][..T * LANES]).0;
                for t in 0..T {
                    for v in 0..V {
                        d[t * V + v] = epilogue.apply_simd(simd, sums[t][b][v]);
                    }
                }
            },
        );
    }
}

/// The taps a tile accumulates: each (input channel, tap)'s offset, and the weights of its
/// blocks `[block][in][tap][V]`.
struct Taps<'a, V> {
    offsets: &'a [usize],
    wv: &'a [V],
    stride: usize,
}

/// `T` output pixels from the one whose top-left input is at `corner`, by `B` blocks, at column
/// stride `SW` (0: `at.stride`).
#[inline(always)]
fn tile<S: Simd, const V: usize, const B: usize, const T: usize, const SW: usize>(
    simd: S,
    planes: &[f32],
    at: &Taps<S::f32s>,
    start: [[S::f32s; V]; B],
    corner: usize,
) -> [[[S::f32s; V]; B]; T] {
    let mut acc = [start; T];
    let per_block = at.offsets.len() * V;
    let stride = if SW == 0 { at.stride } else { SW };
    let reach = (T - 1) * stride + 1;
    for (k, &o) in at.offsets.iter().enumerate() {
        let xs = &planes[corner + o..][..reach];
        for (t, acc) in acc.iter_mut().enumerate() {
            let xv = simd.splat_f32s(xs[t * stride]);
            for (b, acc) in acc.iter_mut().enumerate() {
                let wr = &at.wv[b * per_block + k * V..][..V];
                for v in 0..V {
                    acc[v] = simd.mul_add_e_f32s(xv, wr[v], acc[v]);
                }
            }
        }
    }
    acc
}
