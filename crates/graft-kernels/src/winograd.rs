//! 3x3, stride-1 dense convolutions by Winograd's minimal filtering, F(m x m, 3 x 3): each m x m
//! tile of output is `A^T [(G g G^T) . (B^T d B)] A` for the (m + 2)^2 input tile d, so the
//! product over channels becomes (m + 2)^2 matrix products `U [out, in] x V [in, tiles]` with
//! 9m^2 / (m + 2)^2 fewer multiplications than im2col's: 4x for F(4x4, 3x3), the one used
//! (faster than F(2x2, 3x3) on the ResNet and VGG layers measured here; 2-5e-6 relative error
//! against burn's convolution with 16-32 input channels, the tests' bound is 1e-4).
//!
//! Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016); the
//! transforms are theirs (as in NNPACK and oneDNN's Winograd kernels). Work goes by blocks of
//! tile rows (cache-sized); per channel, a block's input tiles are gathered as `[tile position,
//! tile]` so that each transform stage is one pass over vectors of all of the block's tiles
//! (each matrix written out with its common terms; no per-tile arithmetic on short rows), and
//! the (m + 2)^2 products run in parallel, each on one thread, into reused buffers.
//! `tests/conv2d.rs` holds it to burn's conv2d.

use rayon::prelude::*;
use std::ops::Range;

use crate::epilogue::Epilogue;
use crate::grad::Geometry;
use crate::matmul::{Mat, matmul_into};
use crate::scratch;

/// Output tile side: F(4x4, 3x3), 36 products per 16 outputs instead of 144 (interpolation
/// points 0, +-1, +-2 and infinity).
const M: usize = 4;
/// Input tile side, m + 2.
const T: usize = M + 2;

/// One transform matrix L (p x q) applied to q vectors, giving p: `out[i] = sum_r L[i][r] x[r]`
/// element by element. Each is written out with its common terms, and reads every input element
/// once (a transform is then one pass over its vectors, not one per non-zero coefficient).
type Stage<const P: usize, const Q: usize> = fn([&[f32]; Q], [&mut [f32]; P]);

/// Every input and output cut to the outputs' length `n`, so that a stage's loop indexes them
/// all without bounds checks.
fn cut<'a, 'b, const Q: usize, const P: usize>(
    x: [&'a [f32]; Q],
    o: [&'b mut [f32]; P],
) -> (usize, [&'a [f32]; Q], [&'b mut [f32]; P]) {
    let n = o.first().map_or(0, |o| o.len());
    (n, x.map(|x| &x[..n]), o.map(|o| &mut o[..n]))
}

/// B^T (input tiles): rows [4 0 -5 0 1 0] [0 -4 -4 1 1 0] [0 4 -4 -1 1 0] [0 -2 -1 2 1 0]
/// [0 2 -1 -2 1 0] [0 4 0 -5 0 1].
fn mul_bt(x: [&[f32]; 6], o: [&mut [f32]; 6]) {
    let (n, [x0, x1, x2, x3, x4, x5], [o0, o1, o2, o3, o4, o5]) = cut(x, o);
    for i in 0..n {
        let (d0, d1, d2, d3, d4, d5) = (x0[i], x1[i], x2[i], x3[i], x4[i], x5[i]);
        o0[i] = 4.0 * d0 - 5.0 * d2 + d4;
        o1[i] = (d3 + d4) - 4.0 * (d1 + d2);
        o2[i] = (d4 - d3) + 4.0 * (d1 - d2);
        o3[i] = (d4 - d2) + 2.0 * (d3 - d1);
        o4[i] = (d4 - d2) - 2.0 * (d3 - d1);
        o5[i] = 4.0 * d1 - 5.0 * d3 + d5;
    }
}

/// A^T (output tiles): rows [1 1 1 1 1 0] [0 1 -1 2 -2 0] [0 1 1 4 4 0] [0 1 -1 8 -8 1].
fn mul_at(x: [&[f32]; 6], o: [&mut [f32]; 4]) {
    let (n, [x0, x1, x2, x3, x4, x5], [o0, o1, o2, o3]) = cut(x, o);
    for i in 0..n {
        let (s12, d12) = (x1[i] + x2[i], x1[i] - x2[i]);
        let (s34, d34) = (x3[i] + x4[i], x3[i] - x4[i]);
        o0[i] = x0[i] + s12 + s34;
        o1[i] = d12 + 2.0 * d34;
        o2[i] = s12 + 4.0 * s34;
        o3[i] = d12 + 8.0 * d34 + x5[i];
    }
}

/// A (output-gradient tiles), the transpose of A^T.
fn mul_a(x: [&[f32]; 4], o: [&mut [f32]; 6]) {
    let (n, [x0, x1, x2, x3], [o0, o1, o2, o3, o4, o5]) = cut(x, o);
    for i in 0..n {
        let (e1, o) = (x0[i] + x2[i], x1[i] + x3[i]);
        let (e4, o8) = (x0[i] + 4.0 * x2[i], 2.0 * x1[i] + 8.0 * x3[i]);
        o0[i] = x0[i];
        o1[i] = e1 + o;
        o2[i] = e1 - o;
        o3[i] = e4 + o8;
        o4[i] = e4 - o8;
        o5[i] = x3[i];
    }
}

/// G (filters): rows [1/4 0 0] [-1/6 -1/6 -1/6] [-1/6 1/6 -1/6] [1/24 1/12 1/6]
/// [1/24 -1/12 1/6] [0 0 1].
fn mul_g(x: [&[f32]; 3], o: [&mut [f32]; 6]) {
    let (n, [x0, x1, x2], [o0, o1, o2, o3, o4, o5]) = cut(x, o);
    for i in 0..n {
        let (d0, d1, d2) = (x0[i], x1[i], x2[i]);
        let (s, t) = (d0 + d2, d0 * (1.0 / 24.0) + d2 * (1.0 / 6.0));
        o0[i] = d0 * (1.0 / 4.0);
        o1[i] = -(s + d1) * (1.0 / 6.0);
        o2[i] = -(s - d1) * (1.0 / 6.0);
        o3[i] = t + d1 * (1.0 / 12.0);
        o4[i] = t - d1 * (1.0 / 12.0);
        o5[i] = d2;
    }
}

/// G^T (filter gradients), the transpose of G.
fn mul_gt(x: [&[f32]; 6], o: [&mut [f32]; 3]) {
    let (n, [x0, x1, x2, x3, x4, x5], [o0, o1, o2]) = cut(x, o);
    for i in 0..n {
        let (s12, s34) = (x1[i] + x2[i], x3[i] + x4[i]);
        o0[i] = x0[i] * (1.0 / 4.0) - s12 * (1.0 / 6.0) + s34 * (1.0 / 24.0);
        o1[i] = (x2[i] - x1[i]) * (1.0 / 6.0) + (x3[i] - x4[i]) * (1.0 / 12.0);
        o2[i] = (s34 - s12) * (1.0 / 6.0) + x5[i];
    }
}

/// Floats of transformed input (or products) per block: the products then read panels that
/// stay in the shared cache.
const BLOCK_BUDGET: usize = 2 << 20;

/// Whether `g` is a convolution this module computes: 3x3, stride 1, no dilation, and enough
/// input channels for the products to be worth their transforms.
pub(crate) fn applies(g: &Geometry) -> bool {
    g.kernel == [3, 3] && g.stride == [1, 1] && g.dilation == [1, 1] && g.in_channels >= 16
}

/// The number of output tiles over the whole batch of `g`.
pub(crate) fn tiles(g: &Geometry) -> usize {
    let (th, tw) = grid(g, M);
    g.batch * th * tw
}

/// `0..units` in consecutive blocks of at most [`BLOCK_BUDGET`] floats (`unit_len` per unit),
/// of equal size (a short last block would make short, slow products).
fn blocks(units: usize, unit_len: usize) -> impl Iterator<Item = Range<usize>> {
    let most = (BLOCK_BUDGET / unit_len.max(1)).max(1);
    let per_block = units.div_ceil(units.div_ceil(most).max(1)).max(1);
    (0..units)
        .step_by(per_block)
        .map(move |start| start..(start + per_block).min(units))
}

/// The tile grid of `g` for tiles of `m` outputs a side: (tile rows, tile columns).
fn grid(g: &Geometry, m: usize) -> (usize, usize) {
    (g.out_size[0].div_ceil(m), g.out_size[1].div_ceil(m))
}

/// The 3x3 filters of a convolution, as stored.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Filters<'a> {
    /// `[out, in, 3, 3]`.
    Plain(&'a [f32]),
    /// The filters of the convolution whose input gradient this is: `[in, out, 3, 3]`, read
    /// transposed and flipped (no copy of the kernel is made).
    FlippedTransposed(&'a [f32]),
}

/// `U = G w G^T` of `Plain` filters `w` `[out, in, 3, 3]`, laid out as [`conv2d`] reads it.
pub(crate) fn transformed(w: &[f32], k_len: usize, c_len: usize) -> Vec<f32> {
    // Kept for the layer's lifetime: not with the capacity of the scratch buffer it came from.
    transform_weights(Filters::Plain(w), k_len, c_len).into_vec()
}

/// Whether `u` has the length [`transformed`] gives for `k_len` filters of `c_len` channels.
pub(crate) fn fits(u: &[f32], k_len: usize, c_len: usize) -> bool {
    u.len() == T * T * k_len * c_len
}

/// The convolution of `x` (NCHW) with `w`, plus `bias` and `epilogue`; the output is NCHW.
/// With `keep`, also the transformed input `V` of every block, for [`weight_grad`] to reuse: a
/// training step then transforms each input once, not twice (2.25-3x the input's size, held
/// until the backward pass). `transformed` is `w` already through [`transformed`], if the
/// caller keeps it (a frozen layer's, see [`crate::Prepared`]).
pub(crate) fn conv2d(
    g: &Geometry,
    x: &[f32],
    w: Filters,
    transformed: Option<&[f32]>,
    bias: Option<&[f32]>,
    epilogue: Epilogue,
    keep: bool,
) -> (Vec<f32>, Option<Vec<f32>>) {
    let t2 = T * T;
    let (k_len, c_len) = (g.out_channels, g.in_channels);
    let (th, tw) = grid(g, M);
    let mut kept = keep.then(|| vec![0.0f32; t2 * c_len * g.batch * th * tw]);
    let mut own_u = scratch::Scratch::default();
    let u: &[f32] = match transformed {
        Some(u) => u,
        None => {
            own_u = transform_weights(w, k_len, c_len);
            &own_u
        }
    };
    let plane = g.out_len();
    let mut out = crate::outputs::take(g.batch * k_len * plane);
    for block in forward_blocks(g) {
        let p_len = block.len() * tw;
        let len = c_len * t2 * p_len;
        let mut own = scratch::Scratch::default();
        let v: &mut [f32] = match kept.as_deref_mut() {
            Some(kept) => &mut kept[block.start * tw * t2 * c_len..][..len],
            None => {
                own = scratch::take(len);
                &mut own
            }
        };
        transform_input(g, x, block.clone(), v);
        let v = &*v;
        let mut products = scratch::take(t2 * k_len * p_len);
        // One product per tile position: U[pos] [out, in] x V[pos] [in, tiles].
        products
            .par_chunks_mut(k_len * p_len)
            .enumerate()
            .for_each(|(pos, dst)| {
                let lhs = Mat::rows(&u[pos * k_len * c_len..], k_len, c_len);
                let rhs = Mat::rows(&v[pos * c_len * p_len..], c_len, p_len);
                matmul_into(dst, p_len, lhs, rhs, false);
            });
        scratch::keep(own);
        let images = block.start / th..(block.end - 1) / th + 1;
        let dst = &mut out[images.start * k_len * plane..images.end * k_len * plane];
        transform_output(g, &products, &block, images.start, bias, epilogue, dst);
        scratch::keep(products);
    }
    scratch::keep(own_u);
    (out, kept)
}

/// The blocks of tile-row units the forward pass works in (a kept `V` is laid out by them):
/// unit `u`'s transformed tiles start at `u * tw * t^2 * in` in it.
fn forward_blocks(g: &Geometry) -> impl Iterator<Item = Range<usize>> {
    let (th, tw) = grid(g, M);
    let unit = T * T * g.in_channels.max(g.out_channels) * tw;
    blocks(g.batch * th, unit)
}

/// The weight gradient of the convolution `g` (as [`conv2d`] computes it) for the input `x`
/// and output gradient `dy` (NCHW), as `[out, in, 3, 3]`: `dW = G^T dU G` with, per tile
/// position, `dU = sum over tiles of (A dY A^T) V^T`, the forward pass's transforms run
/// backwards (4x fewer multiplications than `dY x im2row(x)` for F(4x4, 3x3)). `kept` is the
/// forward pass's transformed input ([`conv2d`] with `keep`), if it was kept.
pub(crate) fn weight_grad(g: &Geometry, x: &[f32], dy: &[f32], kept: Option<&[f32]>) -> Vec<f32> {
    let t = T;
    let t2 = t * t;
    let (k_len, c_len) = (g.out_channels, g.in_channels);
    let (th, tw) = grid(g, M);
    // A kept V is read in the forward pass's blocks; else V and Z share the block budget.
    let blocks: Vec<Range<usize>> = match kept {
        Some(_) => forward_blocks(g).collect(),
        None => blocks(g.batch * th, t2 * (c_len + k_len) * tw).collect(),
    };
    let mut du = scratch::take(t2 * k_len * c_len);
    for block in blocks {
        let start = block.start;
        let p_len = block.len() * tw;
        let len = t2 * c_len * p_len;
        let mut own = scratch::Scratch::default();
        let v: &[f32] = match kept {
            Some(kept) => &kept[start * tw * t2 * c_len..][..len],
            None => {
                own = scratch::take(len);
                transform_input(g, x, block.clone(), &mut own);
                &own
            }
        };
        let mut z = scratch::take(t2 * k_len * p_len);
        transform_output_grad(g, dy, block.clone(), &mut z);
        // Per tile position: dU [out, in] (+)= Z [out, tiles] x V^T [tiles, in].
        du.par_chunks_mut(k_len * c_len)
            .enumerate()
            .for_each(|(pos, dst)| {
                let lhs = Mat::rows(&z[pos * k_len * p_len..], k_len, p_len);
                let rhs = Mat::rows(&v[pos * c_len * p_len..], c_len, p_len).t();
                matmul_into(dst, c_len, lhs, rhs, start > 0);
            });
        scratch::keep(own);
        scratch::keep(z);
    }
    let mut dw = vec![0.0f32; k_len * c_len * 9];
    let buffers = two_buffers(3 * t * c_len, 9 * c_len);
    dw.par_chunks_mut(c_len * 9)
        .enumerate()
        .for_each_init(buffers, |(h, taps), (k, dw_k)| {
            let (h, taps) = (&mut *h.0, &mut *taps.0);
            let du_k = |i: usize, j: usize| &du[((i * t + j) * k_len + k) * c_len..];
            sandwich(mul_gt, du_k, h, taps.chunks_mut(c_len));
            for (c, dw_kc) in dw_k.chunks_exact_mut(9).enumerate() {
                for (rs, val) in dw_kc.iter_mut().enumerate() {
                    *val = taps[rs * c_len + c];
                }
            }
        });
    scratch::keep(du);
    dw
}

/// `U = G g G^T` for every (out, in) filter, laid out `[tile position, out, in]`; per output
/// channel, both stages run over vectors of all its input channels.
fn transform_weights(w: Filters, k_len: usize, c_len: usize) -> scratch::Scratch {
    let t = T;
    let mut u = scratch::take(t * t * k_len * c_len);
    let by_filter = rows_by(&mut u, c_len, k_len);
    let buffers = two_buffers(9 * c_len, t * 3 * c_len);
    by_filter
        .into_par_iter()
        .enumerate()
        .for_each_init(buffers, |(f, gg), (k, mut rows)| {
            let (f, gg) = (&mut *f.0, &mut *gg.0);
            // f[tap][in]: the 3x3 filters of output channel k, tap-major.
            for c in 0..c_len {
                let (taps, flipped) = match w {
                    Filters::Plain(w) => (&w[(k * c_len + c) * 9..][..9], false),
                    Filters::FlippedTransposed(w) => (&w[(c * k_len + k) * 9..][..9], true),
                };
                for (tap, val) in taps.iter().enumerate() {
                    let tap = if flipped { 8 - tap } else { tap };
                    f[tap * c_len + c] = *val;
                }
            }
            let f = &*f;
            let taps = |r: usize, j: usize| &f[(r * 3 + j) * c_len..];
            sandwich(mul_g, taps, gg, rows.iter_mut().map(|row| &mut **row));
        });
    u
}

/// The two per-split buffers of a transform's parallel loop (`for_each_init`), from the thread's
/// scratch: each loop writes both in full for each channel before it reads them.
fn two_buffers(a: usize, b: usize) -> impl Fn() -> (scratch::Kept, scratch::Kept) + Sync + Send {
    move || (scratch::Kept::take(a), scratch::Kept::take(b))
}

/// Splits `buf`, a `[positions, groups, row_len]` array, into its rows grouped by their middle
/// index: element `g` holds group `g`'s rows in position order, so each group can be written by
/// its own thread.
fn rows_by(buf: &mut [f32], row_len: usize, groups: usize) -> Vec<Vec<&mut [f32]>> {
    // Each group's list allocated once at its final length, not grown push by push.
    let per_group = (buf.len() / row_len.max(1)).div_ceil(groups.max(1));
    let mut out: Vec<Vec<&mut [f32]>> =
        (0..groups).map(|_| Vec::with_capacity(per_group)).collect();
    for (index, row) in buf.chunks_mut(row_len.max(1)).enumerate() {
        out[index % groups].push(row);
    }
    out
}

/// `L X L^T` over vectors, the shape of every Winograd transform, for the `p x q` matrix L
/// that `stage` multiplies by: X is `q x q` with entry (r, s) the vector `x(r, s)`; `tmp` takes
/// the `p x q` vectors of `L X` (their length is `tmp.len() / (p * q)`), and `out` yields the
/// `p x p` result's rows in row-major order.
fn sandwich<'a, 'b, const P: usize, const Q: usize>(
    stage: Stage<P, Q>,
    x: impl Fn(usize, usize) -> &'a [f32],
    tmp: &mut [f32],
    mut out: impl Iterator<Item = &'b mut [f32]>,
) {
    let len = tmp.len() / (P * Q);
    // L X column by column (column s's p vectors lie together in `tmp`)...
    for (s, column) in tmp.chunks_mut(P * len).enumerate() {
        let mut rows = column.chunks_mut(len);
        let rows = std::array::from_fn(|_| rows.next().unwrap_or_default());
        stage(std::array::from_fn(|r| x(r, s)), rows);
    }
    // ...then (L X) L^T row by row.
    let tmp = &*tmp;
    for i in 0..P {
        let row = std::array::from_fn(|s| &tmp[(s * P + i) * len..][..len]);
        stage(row, std::array::from_fn(|_| out.next().unwrap_or_default()));
    }
}

/// `V = B^T d B` for every tile of the units `block` (unit = (image, tile row), numbered
/// `image * tile_rows + row`), written into `v` as `[tile position, in, tile]`, tiles in unit
/// order.
fn transform_input(g: &Geometry, x: &[f32], block: Range<usize>, v: &mut [f32]) {
    let source = Planes {
        values: x,
        channels: g.in_channels,
        size: g.in_size,
        offset: g.padding,
    };
    transform_tiles(g, source, mul_bt, block, v);
}

/// `Z = A dY A^T` (t x t) for every m x m tile of the output gradient in `block`, written into
/// `z` as `[tile position, out, tile]` (the layout of the forward products `M`).
fn transform_output_grad(g: &Geometry, dy: &[f32], block: Range<usize>, z: &mut [f32]) {
    let source = Planes {
        values: dy,
        channels: g.out_channels,
        size: g.out_size,
        offset: [0, 0],
    };
    transform_tiles(g, source, mul_a, block, z);
}

/// NCHW planes read in tiles: tile (ty, tx) of an image starts at row `m * ty - offset[0]`,
/// column `m * tx - offset[1]`; positions outside the plane read 0.
#[derive(Clone, Copy)]
struct Planes<'a> {
    values: &'a [f32],
    channels: usize,
    size: [usize; 2],
    offset: [usize; 2],
}

/// `out = T d T^T` (t x t) for every `side x side` tile `d` of `source` in `block` (on the tile
/// grid of `g`'s output), `mat` being T (t x side, row-major); written into `out` as `[tile
/// position, channel, tile]`. Per channel, the tiles are first gathered as `[tile position,
/// tile]` so that both stages run over vectors of every tile of the block.
fn transform_tiles<const SIDE: usize>(
    g: &Geometry,
    source: Planes,
    stage: Stage<T, SIDE>,
    block: Range<usize>,
    out: &mut [f32],
) {
    let (m, t, side) = (M, T, SIDE);
    let (th, tw) = grid(g, m);
    let [h_len, w_len] = source.size;
    let plane_len = h_len * w_len;
    let (pad_h, pad_w) = (source.offset[0] as isize, source.offset[1]);
    let p_len = block.len() * tw;
    let buffers = two_buffers(side * side * p_len, t * side * p_len);
    rows_by(out, p_len, source.channels)
        .into_par_iter()
        .enumerate()
        .for_each_init(buffers, |(d, e), (c, mut out_c)| {
            let (d, e) = (&mut *d.0, &mut *e.0);
            for (slot, unit) in block.clone().enumerate() {
                let (n, ty) = (unit / th, unit % th);
                let plane = &source.values[(n * source.channels + c) * plane_len..][..plane_len];
                for r in 0..side {
                    let ih = (m * ty + r) as isize - pad_h;
                    let row = usize::try_from(ih)
                        .ok()
                        .filter(|&ih| ih < h_len)
                        .map(|ih| &plane[ih * w_len..][..w_len]);
                    let columns = &mut d[r * side * p_len..][..side * p_len];
                    tile_columns::<SIDE>(row, pad_w, tw, columns, p_len, slot * tw);
                }
            }
            let d = &*d;
            let x = |r: usize, j: usize| &d[(r * side + j) * p_len..];
            sandwich(stage, x, e, out_c.iter_mut().map(|row| &mut **row));
        });
}

/// Column `j` of every one of `tw` tiles read from `source`, one row of the source plane (or
/// `None` for a row above or below it), for `j` in `0..SIDE`: tile `tx`'s column `j` is the
/// source's column `M * tx + j - pad_w`, zero outside it, written to
/// `columns[j * stride + at + tx]`. Each tile's window is read once and spread over the
/// columns: a strided read per column (`step_by(M)`) was 4.6% of a ResNet-18 training step.
/// Tiles inside the row read it in place; those over its edges are padded in registers.
fn tile_columns<const SIDE: usize>(
    source: Option<&[f32]>,
    pad_w: usize,
    tw: usize,
    columns: &mut [f32],
    stride: usize,
    at: usize,
) {
    let mut rows = columns.chunks_mut(stride);
    let mut cols: [&mut [f32]; SIDE] =
        std::array::from_fn(|_| rows.next().map_or(&mut [][..], |c| &mut c[at..at + tw]));
    let Some(source) = source else {
        cols.iter_mut().for_each(|c| c.fill(0.0));
        return;
    };
    for tx in 0..tw {
        // The window's first column in the source, which may lie before it.
        let first = (M * tx) as isize - pad_w as isize;
        let inside = first >= 0 && first as usize + SIDE <= source.len();
        let window: [f32; SIDE] = match inside {
            true => std::array::from_fn(|j| source[first as usize + j]),
            false => std::array::from_fn(|j| {
                usize::try_from(first + j as isize)
                    .ok()
                    .and_then(|i| source.get(i))
                    .copied()
                    .unwrap_or(0.0)
            }),
        };
        for (col, value) in cols.iter_mut().zip(window) {
            col[tx] = value;
        }
    }
}

/// `Y = A^T M A` for every tile of `block` from the products `M` (`[tile position, out,
/// tile]`), plus bias and epilogue, written into `dst`: the output planes of the images
/// `first_image..` that `block` touches. Work is split by output channel, each transforming
/// all of the block's tiles at once.
#[allow(clippy::too_many_arguments)]
fn transform_output(
    g: &Geometry,
    products: &[f32],
    block: &Range<usize>,
    first_image: usize,
    bias: Option<&[f32]>,
    epilogue: Epilogue,
    dst: &mut [f32],
) {
    let (m, t) = (M, T);
    let (th, tw) = grid(g, m);
    let [oh_len, ow_len] = g.out_size;
    let k_len = g.out_channels;
    let p_len = block.len() * tw;
    // Each output channel's planes, one per image of the block.
    let by_channel = rows_by(dst, oh_len * ow_len, k_len);
    let buffers = two_buffers(t * m * p_len, m * m * p_len);
    by_channel
        .into_par_iter()
        .enumerate()
        .for_each_init(buffers, |(s, y), (k, mut planes)| {
            let (s, y) = (&mut *s.0, &mut *y.0);
            let m_k = |i: usize, j: usize| &products[((i * t + j) * k_len + k) * p_len..];
            sandwich(mul_at, m_k, s, y.chunks_mut(p_len));
            let b = bias.map_or(0.0, |b| b[k]);
            let apply = |v: f32| epilogue.apply(v + b);
            for (slot, unit) in block.clone().enumerate() {
                let (n, ty) = (unit / th, unit % th);
                let plane = &mut planes[n - first_image];
                for q2 in 0..m {
                    let oh = m * ty + q2;
                    if oh >= oh_len {
                        break;
                    }
                    let out = &mut plane[oh * ow_len..][..ow_len];
                    // Column q of the tiles' row q2.
                    let [c0, c1, c2, c3]: [&[f32]; M] =
                        std::array::from_fn(|q| &y[(q2 * m + q) * p_len + slot * tw..][..tw]);
                    // Whole tiles: M adjacent outputs from the M column vectors, a tile a
                    // step over zipped columns (indexing a column per output, with its bounds
                    // check, made a ResNet-18 training step 1.9% slower).
                    let mut whole = out.chunks_exact_mut(M);
                    let columns = c0.iter().zip(c1).zip(c2).zip(c3);
                    for (o, (((a, b), c), d)) in whole.by_ref().zip(columns) {
                        (o[0], o[1], o[2], o[3]) = (apply(*a), apply(*b), apply(*c), apply(*d));
                    }
                    let tx = ow_len / M;
                    for (o, column) in whole.into_remainder().iter_mut().zip([c0, c1, c2]) {
                        *o = apply(column[tx]);
                    }
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tile `tx`'s column `j` is the source's column `M * tx + j - pad_w`, zero outside it,
    /// for tiles that overlap (the input's six columns) and tiles that do not (the output
    /// gradient's four), with and without padding, and for rows outside the plane.
    #[test]
    fn tile_columns_spread_each_tile_s_window() {
        fn check<const SIDE: usize>(tw: usize, pad_w: usize, len: usize, outside: bool) {
            let source: Vec<f32> = (1..=len).map(|i| i as f32).collect();
            let (stride, at) = (3 * tw + 2, tw + 1);
            let mut columns = vec![-1.0; SIDE * stride];
            let row = (!outside).then_some(&source[..]);
            tile_columns::<SIDE>(row, pad_w, tw, &mut columns, stride, at);
            for (i, &got) in columns.iter().enumerate() {
                let (j, k) = (i / stride, i % stride);
                let want = match k.checked_sub(at) {
                    Some(tx) if tx < tw => (M * tx + j)
                        .checked_sub(pad_w)
                        .and_then(|c| source.get(c))
                        .filter(|_| !outside)
                        .copied()
                        .unwrap_or(0.0),
                    _ => -1.0,
                };
                assert_eq!(
                    got, want,
                    "side {SIDE}, {tw} tiles, pad {pad_w}, column {j}, {k}"
                );
            }
        }
        for tw in [1, 2, 5, 14] {
            for (pad_w, outside) in [(0, false), (1, false), (2, false), (1, true)] {
                // A source that ends inside the last tile, and one that covers it.
                for len in [M * tw - 1, M * tw + 2] {
                    check::<T>(tw, pad_w, len, outside);
                    check::<M>(tw, pad_w, len, outside);
                }
            }
        }
    }
}
