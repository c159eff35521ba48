//! A depthwise convolution whose taps read blocked activations (`blocked.rs`' layout,
//! `[pixel][16]` a block) where they lie, as MLAS's NCHWc depthwise kernel does: no padded copy.
//!
//! `interleaved.rs` first copies each block into a zero-padded buffer split by stride phase, so
//! that every tap of a tile reads a run of pixels with no bounds to check. On the large maps
//! that copy cost more than it saved: in Lite0's batch-1 pass the blocked copy's loads, of an
//! input the 1x1 layer before had just written (half of it from the other core), were 5% of
//! the samples, and the pass took 0.95 of the time with the copy skipped (wrong output, same
//! taps). Here the padding is never written: a kernel row that falls in it is skipped for the
//! whole output row, and a tile whose pixels reach into the left or right padding (at most two
//! a row) reads a small zero-padded copy of the columns it needs, in the layer's scratch
//! ([`window_len`]). Maps narrower than [`MIN_COLS`] keep the whole copy: nearly every tile of
//! theirs is at an edge, and their blocks are in L1 anyway.

use pulp::Simd;

use crate::epilogue::Epilogue;
use crate::grad::Geometry;
use crate::interleaved::{CHANNELS, TileRows, WIDEST, store};

/// Input columns a map needs for its taps to read it where it lies.
pub(crate) const MIN_COLS: usize = 28;

/// Input columns a tile of `tile` output pixels reads in one kernel row, at stride `sw`, the
/// kernel row reaching `reach` columns past its first.
const fn tile_cols(tile: usize, sw: usize, reach: usize) -> usize {
    (tile - 1) * sw + reach + 1
}

/// Floats of the zero-padded copy a tile at a row's end of layer `g` reads: every kernel row
/// by the columns the widest tile reads.
pub(crate) fn window_len(g: &Geometry) -> usize {
    let reach = (g.kernel[1] - 1) * g.dilation[1];
    g.kernel[0] * tile_cols(WIDEST, g.stride[1], reach) * CHANNELS
}

/// Whether a blocked layer of geometry `g` reads its input where it lies ([`Rows`]): wide
/// enough maps at stride 1 or 2 (the strides the tile is built for).
pub(crate) fn applies(g: &Geometry) -> bool {
    g.in_size[1] >= MIN_COLS && matches!(g.stride[1], 1 | 2)
}

/// One image's block of a depthwise layer: `x` its input pixels `[in pixel][16]`, `dst` its
/// output `[out pixel][16]`, `filters` `[tap][16]`, `bias` the block's 16 biases.
pub(crate) struct Rows<'a> {
    pub(crate) g: &'a Geometry,
    pub(crate) x: &'a [f32],
    pub(crate) filters: &'a [f32],
    pub(crate) bias: &'a [f32; CHANNELS],
    pub(crate) epilogue: Epilogue,
    /// [`window_len`] floats for the input of a tile at a row's end.
    pub(crate) window: &'a mut [f32],
    pub(crate) dst: &'a mut [f32],
}

impl TileRows for Rows<'_> {
    /// Tiles of `T` output pixels along a row, then single pixels.
    #[inline(always)]
    fn run<S: Simd, const V: usize, const T: usize>(self, simd: S) {
        match self.g.stride[1] {
            1 => self.sweep::<S, V, T, 1>(simd),
            _ => self.sweep::<S, V, T, 2>(simd),
        }
    }
}

impl Rows<'_> {
    /// [`Rows::run`] at column stride `SW`.
    #[inline(always)]
    fn sweep<S: Simd, const V: usize, const T: usize, const SW: usize>(self, simd: S) {
        let g = self.g;
        let ([oh, ow], [h, w]) = (g.out_size, g.in_size);
        let ([kh, kw], [dh, dw], [ph, pw]) = (g.kernel, g.dilation, g.padding);
        let xv = S::as_simd_f32s(self.x).0;
        let fv = S::as_simd_f32s(self.filters).0;
        let bias = S::as_simd_f32s(self.bias).0;
        let mut start = [bias[0]; V];
        start.copy_from_slice(&bias[..V]);
        let reach = (kw - 1) * dw;
        // The input columns a whole tile reads, and where a zero-padded copy of them goes for
        // the tiles at a row's ends.
        let cols = tile_cols(T, SW, reach);
        let window = &mut S::as_mut_simd_f32s(self.window).0[..kh * cols * V];
        for oy in 0..oh {
            // Padded row of kernel row 0; kernel rows `ky0..ky1` fall inside the input.
            let top = oy * g.stride[0];
            let ky0 = ph.saturating_sub(top).div_ceil(dh).min(kh);
            let ky1 = (h + ph).saturating_sub(top).div_ceil(dh).min(kh);
            let taps = Taps {
                rows: ky0..ky1,
                first: (top + ky0 * dh).saturating_sub(ph),
                dh,
                kw,
                dw,
                width: w,
                pw,
            };
            let mut ox = 0;
            while ox < ow {
                let whole = ow - ox >= T;
                let n = if whole { T } else { 1 };
                // Padded column of the tile's first pixel at kernel column 0.
                let left = ox * SW;
                let inside = left >= pw && (ox + n - 1) * SW + reach < w + pw;
                let out = &mut self.dst[(oy * ow + ox) * CHANNELS..][..n * CHANNELS];
                match (whole, inside) {
                    (true, true) => {
                        let acc = taps.tile::<S, V, T, SW>(simd, fv, start, |i| {
                            &xv[(taps.row(i) * w + left - pw) * V..][..cols * V]
                        });
                        store(simd, self.epilogue, &acc, out)
                    }
                    (true, false) => {
                        taps.window::<S, V>(simd, xv, left, cols, window);
                        let acc = taps.tile::<S, V, T, SW>(simd, fv, start, |i| {
                            &window[i * cols * V..][..cols * V]
                        });
                        store(simd, self.epilogue, &acc, out)
                    }
                    _ => {
                        let acc = taps.pixel::<S, V, SW>(simd, xv, fv, start, left);
                        store(simd, self.epilogue, &acc, out)
                    }
                }
                ox += n;
            }
        }
    }
}

/// The taps of one output row that read the input: kernel rows `rows`, the first of them at
/// input row `first`.
struct Taps {
    rows: std::ops::Range<usize>,
    first: usize,
    dh: usize,
    kw: usize,
    dw: usize,
    /// Input columns, and the padding on the left of them.
    width: usize,
    pw: usize,
}

impl Taps {
    /// Input row of the `i`-th kernel row that reads the input.
    #[inline(always)]
    fn row(&self, i: usize) -> usize {
        self.first + i * self.dh
    }

    /// `T` output pixels, every tap onto `start`: `read(i)` is the input of the `i`-th kernel
    /// row that reads the input, from the tile's first pixel at kernel column 0, padding
    /// included as zeros.
    #[inline(always)]
    fn tile<'x, S: Simd, const V: usize, const T: usize, const SW: usize>(
        &self,
        simd: S,
        fv: &[S::f32s],
        start: [S::f32s; V],
        read: impl Fn(usize) -> &'x [S::f32s],
    ) -> [[S::f32s; V]; T]
    where
        S::f32s: 'x,
    {
        let mut acc = [start; T];
        for (i, ky) in self.rows.clone().enumerate() {
            let row = read(i);
            for kx in 0..self.kw {
                let wv = &fv[(ky * self.kw + kx) * V..][..V];
                let xs = &row[kx * self.dw * V..][..((T - 1) * SW + 1) * V];
                for (t, acc) in acc.iter_mut().enumerate() {
                    for v in 0..V {
                        acc[v] = simd.mul_add_e_f32s(wv[v], xs[t * SW * V + v], acc[v]);
                    }
                }
            }
        }
        acc
    }

    /// Copies what a tile from padded column `left` reads, `cols` pixels a kernel row, into
    /// `window`, zeros where the padding is: the tiles at a row's ends then run as
    /// [`Taps::tile`] does. Checking each (tap, pixel) on the way instead, a 28-column 5x5 layer
    /// took 1.6-1.75x the time of the same work with no checks (BENCHMARKS.md, seventeenth
    /// round).
    #[inline(always)]
    fn window<S: Simd, const V: usize>(
        &self,
        simd: S,
        xv: &[S::f32s],
        left: usize,
        cols: usize,
        window: &mut [S::f32s],
    ) {
        let (w, pw) = (self.width, self.pw);
        // The columns `c0..c1` are input, not padding: one run, copied as such.
        let c0 = pw.saturating_sub(left).min(cols);
        let c1 = (w + pw).saturating_sub(left).min(cols).max(c0);
        let zero = simd.splat_f32s(0.0);
        for (i, dst) in window
            .chunks_exact_mut(cols * V)
            .take(self.rows.len())
            .enumerate()
        {
            let row = &xv[self.row(i) * w * V..][..w * V];
            dst[..c0 * V].fill(zero);
            if c1 > c0 {
                dst[c0 * V..c1 * V].copy_from_slice(&row[(left + c0 - pw) * V..][..(c1 - c0) * V]);
            }
            dst[c1 * V..].fill(zero);
        }
    }

    /// One output pixel from padded column `left`, every tap onto `start`, skipping the taps
    /// that fall in the padding (the pixels past a row's last whole tile).
    #[inline(always)]
    fn pixel<S: Simd, const V: usize, const SW: usize>(
        &self,
        simd: S,
        xv: &[S::f32s],
        fv: &[S::f32s],
        start: [S::f32s; V],
        left: usize,
    ) -> [[S::f32s; V]; 1] {
        let mut acc = start;
        let (w, pw) = (self.width, self.pw);
        for (i, ky) in self.rows.clone().enumerate() {
            let row = &xv[self.row(i) * w * V..][..w * V];
            for kx in 0..self.kw {
                let Some(x) = (left + kx * self.dw).checked_sub(pw).filter(|&x| x < w) else {
                    continue;
                };
                let (wv, x) = (&fv[(ky * self.kw + kx) * V..][..V], &row[x * V..][..V]);
                for v in 0..V {
                    acc[v] = simd.mul_add_e_f32s(wv[v], x[v], acc[v]);
                }
            }
        }
        [acc]
    }
}
