//! A depthwise convolution over blocks of 16 channels held interleaved: the layout ONNX
//! Runtime's MLAS (NCHWc) and XNNPACK compute depthwise layers in, taken here inside one layer.
//!
//! Over NCHW planes (`depthwise.rs`' plane path) every tap is a multiply-add along a row run
//! of one plane, with the accumulator loaded and stored around each tap, and on EfficientNet's
//! 7x7 and 14x14 maps the runs are shorter than a few vectors: Lite0's 7x7 layers ran at
//! 6-7 GFLOP/s, a tenth of ORT's. Here a block's 16 planes of one image are copied once into a
//! zero-padded buffer `[row][col][16]`, split into its stride phases as the plane path splits
//! its planes (so a tap of a strided layer also reads neighbouring pixels): one vector (or two,
//! or four, by ISA) holds one pixel of all 16 channels. A tile of output pixels along a row
//! (8 or 7 with AVX-512, 4 with AVX2) keeps its accumulators in registers across every tap, each
//! tap a weight vector and one vector load and multiply-add per pixel (no broadcast, no tail),
//! and goes back to the 16 planes with the bias and activation. The copy in makes the layer
//! safe to run over its own input (a [`Block`] without `x`).
//!
//! A blocked input of 28 columns and more is not copied: its taps read it where it lies
//! (`blocked_depthwise.rs`), and such a layer never runs over its own input.

use pulp::{Simd, WithSimd};

use crate::epilogue::Epilogue;
use crate::grad::Geometry;

/// Channels a block interleaves: one AVX-512 vector per pixel.
pub(crate) const CHANNELS: usize = 16;

/// Whether [`block`] takes depthwise convolution `g`: whole blocks of channels.
pub(crate) fn applies(g: &Geometry) -> bool {
    g.out_channels.is_multiple_of(CHANNELS) && g.out_len() > 0 && g.in_len() > 0
}

/// Where a block's pixels lie in its scratch: the zero-padded region the taps read, split into
/// `stride x stride` phases of `rows x cols` pixels (phase `(a, b)` holds padded rows
/// `a, a + s, ...` and columns `b, b + s, ...`), 16 floats a pixel; then the filters.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Phases {
    rows: usize,
    cols: usize,
}

impl Phases {
    pub(crate) fn of(g: &Geometry) -> Phases {
        let reach =
            |a: usize| (g.out_size[a] - 1) * g.stride[a] + (g.kernel[a] - 1) * g.dilation[a] + 1;
        Phases {
            rows: reach(0).div_ceil(g.stride[0]),
            cols: reach(1).div_ceil(g.stride[1]),
        }
    }

    fn pixels(&self, g: &Geometry) -> usize {
        self.rows * self.cols * g.stride[0] * g.stride[1]
    }

    /// Scratch floats a block needs: its pixels, then its filters as `[tap][16]`.
    pub(crate) fn scratch_len(&self, g: &Geometry) -> usize {
        (self.pixels(g) + g.taps()) * CHANNELS
    }

    /// Where tap `t` (row-major over the kernel) of output `(0, 0)` reads, in pixels: output
    /// `(oy, ox)` reads `oy * cols + ox` further on, in every phase.
    fn offset(&self, g: &Geometry, t: usize) -> usize {
        let (ri, ci) = (
            (t / g.kernel[1]) * g.dilation[0],
            (t % g.kernel[1]) * g.dilation[1],
        );
        let [sh, sw] = g.stride;
        let phase = (ri % sh) * sw + ci % sw;
        (phase * self.rows + ri / sh) * self.cols + ci / sw
    }
}

/// One image's block of [`CHANNELS`] planes: `x` the input planes (`g.in_size` each), or none
/// to read the block's own planes `dst` (stride 1, output size equal to input size: they are
/// copied into `scratch` before any output is written); `dst` the output planes (`g.out_size`
/// each), `w` the block's filters (`[channel][tap]` for planes, `[tap][16]` when `blocked`:
/// `depthwise::BlockedFilters`, laid out once a layer), `bias` its 16 biases or none.
/// `scratch` is [`scratch_len`] floats. With `blocked`, `x` and `dst` are already interleaved
/// (`[pixel][16]`, `blocked.rs`' layout) rather than planes.
#[inline(always)]
fn block<S: Simd>(simd: S, b: Block<'_>) {
    let Block {
        g,
        x,
        blocked,
        w,
        bias,
        epilogue,
        scratch,
        dst,
    } = b;
    let mut first = [0f32; CHANNELS];
    if let Some(b) = bias {
        first.copy_from_slice(&b[..CHANNELS]);
    }
    if blocked && let Some(x) = x.filter(|_| crate::blocked_depthwise::applies(g)) {
        let rows = crate::blocked_depthwise::Rows {
            g,
            x,
            filters: w,
            bias: &first,
            epilogue,
            window: scratch,
            dst,
        };
        return by_width(simd, g, rows);
    }
    let p = Phases::of(g);
    let (pixels, tail) = scratch.split_at_mut(p.pixels(g) * CHANNELS);
    interleave(g, &p, x.unwrap_or(dst), blocked, pixels);
    let filters = if blocked {
        w
    } else {
        let filters = &mut tail[..g.taps() * CHANNELS];
        interleave_filters(g.taps(), w, filters);
        filters
    };
    taps(simd, g, &p, &first, epilogue, pixels, filters, blocked, dst);
}

/// Scratch floats one block of layer `g` needs; `blocked_input`: its input is a blocked
/// buffer of its own (not planes, and not the output's buffer), which the taps read where it
/// lies with the filters already laid out: only the few columns a tile at a row's end reads
/// (`blocked_depthwise::window_len`).
pub(crate) fn scratch_len(g: &Geometry, blocked_input: bool) -> usize {
    if blocked_input && crate::blocked_depthwise::applies(g) {
        crate::blocked_depthwise::window_len(g)
    } else {
        Phases::of(g).scratch_len(g)
    }
}

/// One block's filters `w` (`[channel][tap]`, 16 channels of `taps` taps) as `[tap][16]`: one
/// vector a tap.
pub(crate) fn interleave_filters(taps: usize, w: &[f32], filters: &mut [f32]) {
    for (t, f) in filters.chunks_exact_mut(CHANNELS).enumerate() {
        for (l, f) in f.iter_mut().enumerate() {
            *f = w[l * taps + t];
        }
    }
}

/// Fills every phase: padded pixel `(r, c)` holds the 16 planes at input row `r - padding[0]`,
/// column `c - padding[1]`, or zeros outside the input. A phase row is written in order, one
/// pixel (16 floats, one store) at a time, from the 16 planes' input row, or from the blocked
/// input's pixel (a copy of 16 floats).
#[inline(always)]
fn interleave(g: &Geometry, p: &Phases, x: &[f32], blocked: bool, pixels: &mut [f32]) {
    let [h, width] = g.in_size;
    let [ph, pw] = g.padding;
    let [sh, sw] = g.stride;
    let in_len = g.in_len();
    let phase_rows = pixels.chunks_exact_mut(p.cols * CHANNELS);
    for (i, dst) in phase_rows.enumerate() {
        let (phase, pr) = (i / p.rows, i % p.rows);
        let (a, b) = (phase / sw, phase % sw);
        let Some(iy) = (pr * sh + a).checked_sub(ph).filter(|&r| r < h) else {
            dst.fill(0.0);
            continue;
        };
        if blocked {
            let row = &x[iy * width * CHANNELS..][..width * CHANNELS];
            for (pc, d) in dst.chunks_exact_mut(CHANNELS).enumerate() {
                match (pc * sw + b).checked_sub(pw).filter(|&c| c < width) {
                    Some(ix) => d.copy_from_slice(&row[ix * CHANNELS..][..CHANNELS]),
                    None => d.fill(0.0),
                }
            }
            continue;
        }
        let rows: [&[f32]; CHANNELS] =
            std::array::from_fn(|l| &x[l * in_len + iy * width..][..width]);
        for (pc, d) in dst.chunks_exact_mut(CHANNELS).enumerate() {
            match (pc * sw + b).checked_sub(pw).filter(|&c| c < width) {
                Some(ix) => d.iter_mut().zip(&rows).for_each(|(d, row)| *d = row[ix]),
                None => d.fill(0.0),
            }
        }
    }
}

/// Every output row of the block: tiles of pixels accumulate all taps in registers, then go
/// to the 16 output planes with the bias and activation.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn taps<S: Simd>(
    simd: S,
    g: &Geometry,
    p: &Phases,
    first: &[f32; CHANNELS],
    epilogue: Epilogue,
    pixels: &[f32],
    filters: &[f32],
    blocked: bool,
    dst: &mut [f32],
) {
    let taps = g.taps();
    // Up to 7x7 filters on the stack (the divisions stay out of the tap loop).
    let mut kept = [0usize; 49];
    let mut owned = Vec::new();
    let offsets: &mut [usize] = if taps <= kept.len() {
        &mut kept[..taps]
    } else {
        owned.resize(taps, 0);
        &mut owned
    };
    for (t, o) in offsets.iter_mut().enumerate() {
        *o = p.offset(g, t);
    }
    let run = Rows {
        g,
        p,
        offsets,
        filters,
        bias: first,
        epilogue,
        pixels,
        blocked,
        dst,
    };
    by_width(simd, g, run)
}

/// A block's output rows in tiles of `T` pixels, `V` vectors a pixel (`V * S::F32_LANES ==
/// 16`, else the scalar fallback's 16 lanes of 1).
pub(crate) trait TileRows {
    fn run<S: Simd, const V: usize, const T: usize>(self, simd: S);
}

/// Output pixels of the widest tile [`by_width`] runs (the blocked depthwise row-end copy is
/// sized by it: `blocked_depthwise::window_len`).
pub(crate) const WIDEST: usize = 8;

/// `rows` with the tile that fits `S`'s registers: 8 accumulators (or 7, for rows of 7, 14,
/// 28...) of AVX-512's 32 registers, 8 of AVX2's 16.
#[inline(always)]
pub(crate) fn by_width<S: Simd>(simd: S, g: &Geometry, rows: impl TileRows) {
    let sevens = !g.out_size[1].is_multiple_of(WIDEST) && g.out_size[1].is_multiple_of(7);
    match S::F32_LANES {
        16 if sevens => rows.run::<S, 1, 7>(simd),
        16 => rows.run::<S, 1, WIDEST>(simd),
        8 => rows.run::<S, 2, 4>(simd),
        4 => rows.run::<S, 4, 2>(simd),
        _ => rows.run::<S, 16, 1>(simd),
    }
}

struct Rows<'a> {
    g: &'a Geometry,
    p: &'a Phases,
    offsets: &'a [usize],
    filters: &'a [f32],
    bias: &'a [f32; CHANNELS],
    epilogue: Epilogue,
    pixels: &'a [f32],
    /// The output is interleaved too (`[pixel][16]`), not 16 planes.
    blocked: bool,
    dst: &'a mut [f32],
}

impl TileRows for Rows<'_> {
    /// Tiles of `T` output pixels along a row, then single pixels to the row's end.
    #[inline(always)]
    fn run<S: Simd, const V: usize, const T: usize>(self, simd: S) {
        let [oh, ow] = self.g.out_size;
        let out_len = self.g.out_len();
        let px = S::as_simd_f32s(self.pixels).0;
        let fv = S::as_simd_f32s(self.filters).0;
        let start: [S::f32s; V] = lanes::<S, V>(S::as_simd_f32s(self.bias).0, 0);
        for oy in 0..oh {
            let mut ox = 0;
            while ox < ow {
                let n = if ow - ox >= T { T } else { 1 };
                let at = oy * self.p.cols + ox;
                if self.blocked {
                    // Straight from the registers to the interleaved output.
                    let out = &mut self.dst[(oy * ow + ox) * CHANNELS..][..n * CHANNELS];
                    if n == T {
                        let acc = tile::<S, V, T>(simd, self.offsets, px, fv, start, at);
                        store(simd, self.epilogue, &acc, out);
                    } else {
                        let acc = tile::<S, V, 1>(simd, self.offsets, px, fv, start, at);
                        store(simd, self.epilogue, &acc, out);
                    }
                    ox += n;
                    continue;
                }
                let mut sums = [[0f32; CHANNELS]; T];
                if n == T {
                    let acc = tile::<S, V, T>(simd, self.offsets, px, fv, start, at);
                    for (sum, acc) in sums.iter_mut().zip(&acc) {
                        S::as_mut_simd_f32s(sum).0.copy_from_slice(acc);
                    }
                } else {
                    let [acc] = tile::<S, V, 1>(simd, self.offsets, px, fv, start, at);
                    S::as_mut_simd_f32s(&mut sums[0]).0.copy_from_slice(&acc);
                }
                for l in 0..CHANNELS {
                    let out = &mut self.dst[l * out_len + oy * ow + ox..][..n];
                    for (d, s) in out.iter_mut().zip(&sums) {
                        *d = self.epilogue.apply(s[l]);
                    }
                }
                ox += n;
            }
        }
    }
}

/// `T` interleaved output pixels from their sums, with the epilogue. The indices are
/// constants, so the sums go out from their registers: a loop as long as `out` kept them on
/// the stack (`blocked_direct`'s store).
#[inline(always)]
pub(crate) fn store<S: Simd, const V: usize, const T: usize>(
    simd: S,
    epilogue: Epilogue,
    sums: &[[S::f32s; V]; T],
    out: &mut [f32],
) {
    let d = S::as_mut_simd_f32s(&mut out[..T * CHANNELS]).0;
    for t in 0..T {
        for v in 0..V {
            d[t * V + v] = epilogue.apply_simd(simd, sums[t][v]);
        }
    }
}

/// The `T` output pixels from the one at pixel `at` of every phase, every tap accumulated onto
/// `start` (the bias): per tap, one weight vector and `T` neighbouring pixels of one phase.
#[inline(always)]
fn tile<S: Simd, const V: usize, const T: usize>(
    simd: S,
    offsets: &[usize],
    px: &[S::f32s],
    fv: &[S::f32s],
    start: [S::f32s; V],
    at: usize,
) -> [[S::f32s; V]; T] {
    let mut acc = [start; T];
    for (&off, wv) in offsets.iter().zip(fv.chunks_exact(V)) {
        let xs = match px.get((at + off) * V..).and_then(|s| s.get(..T * V)) {
            Some(xs) => xs,
            None => panic!("interleaved: a tap past the end of its block"),
        };
        for (acc, x) in acc.iter_mut().zip(xs.chunks_exact(V)) {
            for v in 0..V {
                acc[v] = simd.mul_add_e_f32s(wv[v], x[v], acc[v]);
            }
        }
    }
    acc
}

/// `V` vectors of `s` from vector `at`.
#[inline(always)]
fn lanes<S: Simd, const V: usize>(s: &[S::f32s], at: usize) -> [S::f32s; V] {
    match s.get(at..at + V) {
        Some(v) => {
            let mut out = [v[0]; V];
            out.copy_from_slice(v);
            out
        }
        None => panic!("interleaved: a pixel past the end of its block"),
    }
}

/// [`block`] as a [`WithSimd`] op, for `Isa::dispatch`.
pub(crate) struct Block<'a> {
    pub(crate) g: &'a Geometry,
    /// The input planes; none to run over `dst` itself.
    pub(crate) x: Option<&'a [f32]>,
    /// `x` and `dst` are interleaved blocks (`blocked.rs`), not planes.
    pub(crate) blocked: bool,
    /// `[channel][tap]`, or `[tap][16]` when `blocked` (`depthwise::BlockedFilters`).
    pub(crate) w: &'a [f32],
    pub(crate) bias: Option<&'a [f32]>,
    pub(crate) epilogue: Epilogue,
    pub(crate) scratch: &'a mut [f32],
    pub(crate) dst: &'a mut [f32],
}

impl WithSimd for Block<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        block(simd, self)
    }
}
