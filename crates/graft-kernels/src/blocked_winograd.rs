//! 3x3, stride-1, pad-1 dense convolutions (most of ResNet's layers) by Winograd's F(4x4, 3x3)
//! over activations in blocks of 16 channels (`blocked.rs`' layout), with no conversion to
//! planes: a 16-channel vector is one element of every transform, so `B^T d B` and `A^T m A`
//! are vector additions, and the 36 products `U[t] V[t]` are 1x1 convolutions over tiles, run
//! by the blocked 1x1 kernel's register tile (`blocked_pointwise::tile`) over weights laid out
//! once ([`Packed`]). 4x fewer multiplications than the direct kernel (`blocked_direct.rs`).
//!
//! Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016); the
//! transforms are `winograd.rs`' (the same matrices, here on vectors). A task takes whole rows
//! of tiles and a range of output blocks, and keeps its transformed tiles and products in
//! buffers sized for the core's L2 cache: the input is read once, the output written once, and
//! nothing 36/16 times the activation's size goes through memory (over planes, the transforms
//! were memory-bound passes).

use pulp::{Simd, WithSimd};
use rayon::prelude::*;

use crate::blocked::{LANES, Lines, blocks};
use crate::blocked_direct::Panel;
use crate::epilogue::Epilogue;
use crate::grad::Geometry;
use crate::isa::Isa;
use crate::prefetch::Ahead;
use crate::scratch::{keep, take_aligned};

/// Output tile side, and input tile side (m + 2).
const M: usize = 4;
const T: usize = M + 2;
/// Transformed values per tile: one product each.
const TT: usize = T * T;
/// Output blocks a panel covers (the blocked kernels' register tile: 6 tiles by 4 blocks).
const GROUP: usize = 4;
/// Tiles a product's register tile covers; a task's tiles are padded to a multiple of it.
const TILE: usize = 6;
/// Tiles a call needs for [`worth`]. A call reads its layer's 36 transformed panels (4x the
/// weights) at least once, so with few tiles it is bound by reading them. ResNet-18's layers
/// alone (`examples/blocked_convs`, 2 threads), Winograd's time against the direct kernel's:
/// 56x56 maps 0.7x from one image (196 tiles), 28x28 0.75x from one (49), 14x14 level at one
/// (16) and 0.8x from two, 7x7 0.8x at four (16) and 1.2x at two (8).
const MIN_TILES: usize = 16;
/// Floats the transformed panels of a layer [`worth`] the kernel may take: 36 MiB, ResNet's
/// widest (512 channels in and out). Each call reads its layer's panels (4x the weights) again,
/// which on the Intel Xeon of the twelfth round ate what the 256- and 512-channel layers gained
/// alone (whole passes level at batch 32, 1.03-1.04x the time at batch 1). On the AMD Zen 4 of
/// the twenty-seventh round, whose FMAs are half as wide, the multiplications saved weigh more:
/// taking those layers made ResNet-50 0.90x the time at batch 32, and ResNet-18 0.77x
/// (BENCHMARKS.md). Wider layers would read their panels from memory.
const MAX_PANELS: usize = TT * 512 * 512;
/// Floats of transformed panels a layer may have and still take the kernel for one image
/// (2.25 MiB: ResNet's 3x3 layers on 64 and 128 channels). The panels are kept beside the
/// weights, at 4x their size; for a single image the wider layers' panels cost more memory
/// than they save time: ResNet-50 at batch 1 was 0.93x the time but 35 MiB larger (361 MiB
/// against ONNX Runtime's 333), through its 14x14 layers on 256 channels.
const ONE_IMAGE_PANELS: usize = TT * 128 * 128;
/// Tasks a layer is split into at least, where its tile rows and output groups allow.
const MIN_TASKS: usize = 4;

/// A layer's weights laid out for [`forward`]: `U[t] = G w G^T` at each of the 36 tile
/// positions, as a 1x1 layer's panels (`blocked_direct::Packed`), and the bias padded to whole
/// blocks.
#[derive(Debug)]
pub struct Packed {
    products: Vec<crate::blocked_direct::Packed>,
    bias: Vec<f32>,
    cin: usize,
    cout: usize,
}

impl Packed {
    /// From `w` `[cout, cin, 3, 3]` (row-major) and its bias.
    ///
    /// Panics if `w` or `bias` is shorter than the shape says (a caller's error).
    pub fn new(w: &[f32], bias: Option<&[f32]>, cout: usize, cin: usize) -> Packed {
        assert!(
            w.len() >= cout * cin * 9,
            "blocked winograd: weight too short"
        );
        let u = crate::winograd::transformed(&w[..cout * cin * 9], cout, cin);
        let products = u
            .chunks_exact((cout * cin).max(1))
            .map(|ut| crate::blocked_direct::Packed::new(ut, None, cout, cin, 1))
            .collect();
        Packed {
            products,
            bias: crate::blocked::padded_bias(bias, cout),
            cin,
            cout,
        }
    }
}

/// Whether [`forward`] computes `g`: 3x3, stride 1, no dilation, one pixel of padding on every
/// side.
pub fn applies(g: &Geometry) -> bool {
    g.kernel == [3, 3]
        && g.stride == [1, 1]
        && g.dilation == [1, 1]
        && g.padding == [1, 1]
        && g.out_size == g.in_size
        && g.out_len() > 0
        && g.in_channels > 0
}

/// Whether [`forward`] should take `g` rather than the direct kernel: from [`MIN_TILES`]
/// tiles in the call, on layers whose transformed panels hold at most [`MAX_PANELS`] floats,
/// or [`ONE_IMAGE_PANELS`] if the call has one image.
/// The choice follows the call's size (as `winograd.rs`' over planes does), so an image's
/// output can differ by rounding (about 1e-6 relative) between a call under the threshold and
/// one over it; within one kernel it is the same to the bit whatever its batch.
pub fn worth(g: &Geometry) -> bool {
    let panels = TT * g.in_channels * g.out_channels;
    let limit = if g.batch > 1 {
        MAX_PANELS
    } else {
        ONE_IMAGE_PANELS
    };
    applies(g) && tiles(g) >= MIN_TILES && panels <= limit
}

/// The tile grid of `g`: (tile rows, tile columns) of an image.
fn grid(g: &Geometry) -> (usize, usize) {
    (g.out_size[0].div_ceil(M), g.out_size[1].div_ceil(M))
}

/// Output tiles over the whole batch of `g`.
pub fn tiles(g: &Geometry) -> usize {
    let (th, tw) = grid(g);
    g.batch * th * tw
}

/// How a layer is split: tile rows (over the whole batch) per task, and output groups per task.
fn split(g: &Geometry) -> (usize, usize) {
    let (th, tw) = grid(g);
    let rows = g.batch * th;
    let groups = blocks(g.out_channels).div_ceil(GROUP);
    // Tiles a task aims for: more for wider layers, whose 36 panels take longer to read (at
    // batch 32, 32 tiles suited 64 and 128 channels, 64 to 128 the wider ones).
    let aim = (4 * blocks(g.in_channels)).max(32);
    let per_task = (aim / tw).max(1);
    // Each thread needs work: split the output groups first (a task reads only its groups'
    // share of the panels), then the rows.
    let chunks = rows.div_ceil(per_task);
    let group_tasks = MIN_TASKS.div_ceil(chunks).min(groups).max(1);
    let chunks = chunks.max(MIN_TASKS.div_ceil(group_tasks)).min(rows);
    let per_task = rows.div_ceil(chunks.max(1));
    (per_task, groups.div_ceil(group_tasks))
}

/// `y = epilogue(conv(x, w) + bias + skip)` for blocked `x` (`g.batch` images of
/// `g.in_channels` channels): blocked, `g.out_channels` channels. `skip`, a residual blocked
/// like `y`, is added before the activation (ResNet's join).
///
/// Panics if `g` is not a layer this module computes, or `x`, `w` or `skip` disagree with it
/// (a caller's error).
pub fn forward(
    g: &Geometry,
    x: &[f32],
    w: &Packed,
    epilogue: Epilogue,
    skip: Option<&[f32]>,
    isa: Isa,
) -> Lines {
    assert!(
        applies(g),
        "blocked winograd: not a 3x3 stride-1 pad-1 layer"
    );
    assert_eq!(
        (w.cin, w.cout),
        (g.in_channels, g.out_channels),
        "blocked winograd: weights for another layer"
    );
    let (kin, kout, pixels) = (blocks(g.in_channels), blocks(g.out_channels), g.out_len());
    let image_out = kout * pixels * LANES;
    assert!(
        x.len() >= g.batch * kin * pixels * LANES,
        "blocked winograd: x too short"
    );
    if let Some(s) = skip {
        assert!(
            s.len() >= g.batch * image_out,
            "blocked winograd: skip too short"
        );
    }
    let mut out = Lines::take(g.batch * image_out);
    if out.is_empty() {
        // No images (or no output channels): no rows of tiles to split into tasks.
        return out;
    }
    let (th, _) = grid(g);
    let (per_task, groups_per_task) = split(g);
    // The output of each (tile row over the batch, block): whole rows of pixels, contiguous.
    let row_len = M * g.out_size[1] * LANES;
    let mut by_row: Vec<Vec<&mut [f32]>> = Vec::with_capacity(g.batch * th);
    for image in out.chunks_mut(image_out.max(1)) {
        let mut planes: Vec<_> = image
            .chunks_mut(pixels * LANES)
            .map(|p| p.chunks_mut(row_len))
            .collect();
        for _ in 0..th {
            by_row.push(planes.iter_mut().filter_map(Iterator::next).collect());
        }
    }
    let mut tasks = Vec::new();
    let span = groups_per_task * GROUP;
    for (chunk, rows) in by_row.chunks_mut(per_task).enumerate() {
        for first in (0..kout).step_by(span) {
            let n = span.min(kout - first);
            let dst: Vec<Vec<&mut [f32]>> =
                rows.iter_mut().map(|r| r.drain(..n).collect()).collect();
            tasks.push((chunk * per_task, first, dst));
        }
    }
    tasks.into_par_iter().for_each(|(row0, first, dst)| {
        let task = Task {
            g,
            x,
            skip,
            w,
            epilogue,
            row0,
            first,
            dst,
        };
        isa.dispatch(task);
    });
    out
}

/// Tile rows `row0..row0 + dst.len()` (over the batch), output blocks `first..first +
/// dst[0].len()`.
struct Task<'a> {
    g: &'a Geometry,
    x: &'a [f32],
    skip: Option<&'a [f32]>,
    w: &'a Packed,
    epilogue: Epilogue,
    row0: usize,
    first: usize,
    dst: Vec<Vec<&'a mut [f32]>>,
}

impl WithSimd for Task<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(mut self, simd: S) {
        let (_, tw) = grid(self.g);
        let kin = blocks(self.g.in_channels);
        let count = self.dst.len() * tw;
        let padded = count.div_ceil(TILE) * TILE;
        // Plain code, not `scratch::with_aligned`'s closure: it would lose the vector context.
        let (v_len, m_len) = (TT * kin * padded * LANES, TT * GROUP * padded * LANES);
        let ((mut v, v_at), (mut m, m_at)) = (take_aligned(v_len), take_aligned(m_len));
        {
            let v = &mut v[v_at..][..v_len];
            self.inputs(simd, v, count, padded);
            let m = &mut m[m_at..][..m_len];
            let nb = self.dst.first().map_or(0, Vec::len);
            for b0 in (0..nb).step_by(GROUP) {
                let width = GROUP.min(nb - b0);
                self.products(simd, v, m, padded, b0, width);
                self.outputs(simd, m, count, padded, b0, width);
            }
        }
        keep(v);
        keep(m);
    }
}

impl Task<'_> {
    /// `B^T d B` of every tile of the task and input block, into `v` `[t][block][tile][16]`;
    /// the tiles past `count` (padding up to a whole register tile) are zero.
    #[inline(always)]
    fn inputs<S: Simd>(&self, simd: S, v: &mut [f32], count: usize, padded: usize) {
        let g = self.g;
        let ([h, w], (th, tw)) = (g.in_size, grid(g));
        let kin = blocks(g.in_channels);
        let plane = h * w * LANES;
        let stride_t = kin * padded * LANES;
        let lanes = S::F32_LANES;
        // Block by block, so that each of the 36 outputs is written in order.
        for cb in 0..kin {
            for i in 0..count {
                let row = self.row0 + i / tw;
                let (n, ty, tx) = (row / th, row % th, i % tw);
                // The tile's rows and columns inside the input: 4 ty - 1 + r for r in `rows`.
                let rows = usize::from(ty == 0)..T.min(h + 1 - M * ty);
                let cols = usize::from(tx == 0)..T.min(w + 1 - M * tx);
                let whole = cols == (0..T);
                let src = &self.x[(n * kin + cb) * plane..][..plane];
                for sub in (0..LANES).step_by(lanes) {
                    // Each row through B^T as it is read (zero outside the input), then each
                    // column. The rows are built as one array literal, not zeroed and then
                    // overwritten: the zeroing was a call to libc's `memset` (2.3 KB a tile
                    // here, 1.5 KB in `outputs`), 1.3% of a ResNet-50 batch-32 pass's samples.
                    // A function, not a closure: a closure the compiler does not inline loses
                    // the vector context.
                    let at = Corner {
                        src,
                        w,
                        ty,
                        tx,
                        sub,
                        rows: rows.clone(),
                        cols: cols.clone(),
                        whole,
                    };
                    let across = every_row(simd, &at);
                    for c in 0..T {
                        let col = bt(simd, column(&across, c));
                        for (r, value) in col.into_iter().enumerate() {
                            let at = (r * T + c) * stride_t + (cb * padded + i) * LANES + sub;
                            S::as_mut_simd_f32s(&mut v[at..][..lanes]).0[0] = value;
                        }
                    }
                }
            }
        }
        for t in 0..TT {
            for cb in 0..kin {
                let at = t * stride_t + (cb * padded + count) * LANES;
                v[at..][..(padded - count) * LANES].fill(0.0);
            }
        }
    }

    /// `m[t] = U[t] v[t]` for output blocks `b0..b0 + width` of the task, into `m`
    /// `[t][block][tile][16]`.
    #[inline(always)]
    fn products<S: Simd>(
        &self,
        simd: S,
        v: &[f32],
        m: &mut [f32],
        padded: usize,
        b0: usize,
        width: usize,
    ) {
        // (vectors a block, blocks, tiles) of the register tile, as in `blocked_direct.rs`.
        match (S::F32_LANES, width) {
            (16, 4) => self.sweep::<S, 1, 4, 6>(simd, v, m, padded, (b0, width), 0),
            (16, 3) => self.sweep::<S, 1, 3, 6>(simd, v, m, padded, (b0, width), 0),
            (16, 2) => self.sweep::<S, 1, 2, 6>(simd, v, m, padded, (b0, width), 0),
            (16, _) => self.sweep::<S, 1, 1, 6>(simd, v, m, padded, (b0, width), 0),
            (8, _) => {
                for b in (0..width).step_by(2) {
                    if width - b >= 2 {
                        self.sweep::<S, 2, 2, 3>(simd, v, m, padded, (b0, width), b)
                    } else {
                        self.sweep::<S, 2, 1, 6>(simd, v, m, padded, (b0, width), b)
                    }
                }
            }
            (4, _) => {
                for b in 0..width {
                    self.sweep::<S, 4, 1, 3>(simd, v, m, padded, (b0, width), b)
                }
            }
            _ => {
                for b in 0..width {
                    self.sweep::<S, 16, 1, 1>(simd, v, m, padded, (b0, width), b)
                }
            }
        }
    }

    /// [`Task::products`] for blocks `b0 + b..b0 + b + B` of the group of `width` blocks from
    /// `b0` (`V` vectors a block), `P` tiles at a time (`P` divides [`TILE`], so whole register
    /// tiles cover the padded tiles).
    #[inline(always)]
    fn sweep<S: Simd, const V: usize, const B: usize, const P: usize>(
        &self,
        simd: S,
        v: &[f32],
        m: &mut [f32],
        padded: usize,
        (b0, width): (usize, usize),
        b: usize,
    ) {
        let kin = blocks(self.g.in_channels);
        let group = self.first + b0;
        let zero = [[simd.splat_f32s(0.0); V]; B];
        for (t, u) in self.w.products.iter().enumerate() {
            let rows = kin * LANES;
            let panel = &u.data[group * LANES * rows..][..rows * width * LANES];
            let at = Panel {
                wv: S::as_simd_f32s(panel).0,
                row: width * LANES / S::F32_LANES,
                b0: b,
            };
            let vt = &v[t * kin * padded * LANES..][..kin * padded * LANES];
            for p in (0..padded).step_by(P) {
                let acc = crate::blocked_pointwise::tile::<S, V, B, P>(
                    simd,
                    vt,
                    padded,
                    &at,
                    [zero; P],
                    p,
                    &mut Ahead::none(),
                );
                for (q, sums) in acc.iter().enumerate() {
                    for (k, s) in sums.iter().enumerate() {
                        let at = ((t * GROUP + b + k) * padded + p + q) * LANES;
                        S::as_mut_simd_f32s(&mut m[at..][..LANES])
                            .0
                            .copy_from_slice(s);
                    }
                }
            }
        }
    }

    /// `A^T m A + bias (+ skip)`, then the epilogue, for output blocks `b0..b0 + width` of the
    /// task's tiles, written where they lie in the output (the part of a tile inside it).
    #[inline(always)]
    fn outputs<S: Simd>(
        &mut self,
        simd: S,
        m: &[f32],
        count: usize,
        padded: usize,
        b0: usize,
        width: usize,
    ) {
        let g = self.g;
        let ([h, w], (th, tw)) = (g.out_size, grid(g));
        let (kout, pixels, lanes) = (blocks(g.out_channels), g.out_len(), S::F32_LANES);
        for i in 0..count {
            let (local, tx) = (i / tw, i % tw);
            let row = self.row0 + local;
            let (n, ty) = (row / th, row % th);
            for b in b0..b0 + width {
                let block = self.first + b;
                for sub in (0..LANES).step_by(lanes) {
                    let base = (b - b0) * padded * LANES + i * LANES + sub;
                    let step = GROUP * padded * LANES;
                    // Built as array literals, not zeroed and overwritten (see `inputs`).
                    let rows = every_row(simd, &Transformed { m, base, step });
                    let bias = S::as_simd_f32s(&self.w.bias[block * LANES + sub..][..lanes]).0[0];
                    for c in 0..M.min(w - M * tx) {
                        let col = a_t(simd, column(&rows, c));
                        for (r, y) in col.into_iter().enumerate().take(h - M * ty) {
                            let (oy, ox) = (M * ty + r, M * tx + c);
                            let mut y = simd.add_f32s(y, bias);
                            if let Some(s) = self.skip {
                                let at = ((n * kout + block) * pixels + oy * w + ox) * LANES + sub;
                                y = simd.add_f32s(y, S::as_simd_f32s(&s[at..][..lanes]).0[0]);
                            }
                            let at = ((r * w) + ox) * LANES + sub;
                            S::as_mut_simd_f32s(&mut self.dst[local][b][at..][..lanes]).0[0] =
                                self.epilogue.apply_simd(simd, y);
                        }
                    }
                }
            }
        }
    }
}

/// Where one tile's input rows are read from: `src` one block's plane `w` pixels wide, the tile
/// at tile row `ty` and column `tx`, `sub` the lane of the block the vectors start at; the
/// tile's rows `rows` and columns `cols` lie inside the input, all its columns when `whole`.
struct Corner<'a> {
    src: &'a [f32],
    w: usize,
    ty: usize,
    tx: usize,
    sub: usize,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    whole: bool,
}

/// A tile's rows, one at a time: what [`every_row`] builds an array of.
trait TileRow<S: Simd> {
    type Row;
    fn row(&self, simd: S, r: usize) -> Self::Row;
}

/// The `T` rows of `at` as one array literal (each element written once, so nothing is zeroed
/// first).
#[inline(always)]
fn every_row<S: Simd, R: TileRow<S>>(simd: S, at: &R) -> [R::Row; T] {
    [
        at.row(simd, 0),
        at.row(simd, 1),
        at.row(simd, 2),
        at.row(simd, 3),
        at.row(simd, 4),
        at.row(simd, 5),
    ]
}

impl<S: Simd> TileRow<S> for Corner<'_> {
    type Row = [S::f32s; T];

    /// Row `r` of the tile through `B^T`, zeros outside the input.
    #[inline(always)]
    fn row(&self, simd: S, r: usize) -> [S::f32s; T] {
        let zero = simd.splat_f32s(0.0);
        if !self.rows.contains(&r) {
            return [zero; T];
        }
        // The pixel at column 4 tx - 1 + c is `start + c * LANES` (c >= 1 when tx = 0).
        let start = ((M * self.ty + r - 1) * self.w + M * self.tx) * LANES + self.sub;
        let load =
            |c: usize| S::as_simd_f32s(&self.src[start + c * LANES - LANES..][..S::F32_LANES]).0[0];
        let d = if self.whole {
            [load(0), load(1), load(2), load(3), load(4), load(5)]
        } else {
            let cell = |c: usize| {
                if self.cols.contains(&c) {
                    load(c)
                } else {
                    zero
                }
            };
            [cell(0), cell(1), cell(2), cell(3), cell(4), cell(5)]
        };
        bt(simd, d)
    }
}

/// One tile's products in `m`: the value of transform position `(r, c)` at `base + (r * T + c)
/// * step`.
struct Transformed<'a> {
    m: &'a [f32],
    base: usize,
    step: usize,
}

impl<S: Simd> TileRow<S> for Transformed<'_> {
    type Row = [S::f32s; M];

    /// Row `r` of the tile's products through `A^T`.
    #[inline(always)]
    fn row(&self, simd: S, r: usize) -> [S::f32s; M] {
        let x = |c: usize| {
            S::as_simd_f32s(&self.m[self.base + (r * T + c) * self.step..][..S::F32_LANES]).0[0]
        };
        a_t(simd, [x(0), x(1), x(2), x(3), x(4), x(5)])
    }
}

/// Column `c` of `rows`.
#[inline(always)]
fn column<V: Copy, const N: usize>(rows: &[[V; N]; T], c: usize) -> [V; T] {
    [
        rows[0][c], rows[1][c], rows[2][c], rows[3][c], rows[4][c], rows[5][c],
    ]
}

/// `B^T x`: rows [4 0 -5 0 1 0] [0 -4 -4 1 1 0] [0 4 -4 -1 1 0] [0 -2 -1 2 1 0]
/// [0 2 -1 -2 1 0] [0 4 0 -5 0 1].
#[inline(always)]
fn bt<S: Simd>(s: S, [d0, d1, d2, d3, d4, d5]: [S::f32s; T]) -> [S::f32s; T] {
    let (four, minus_four) = (s.splat_f32s(4.0), s.splat_f32s(-4.0));
    let (two, minus_two, minus_five) = (s.splat_f32s(2.0), s.splat_f32s(-2.0), s.splat_f32s(-5.0));
    let (s12, d12) = (s.add_f32s(d1, d2), s.sub_f32s(d1, d2));
    let (d31, d42) = (s.sub_f32s(d3, d1), s.sub_f32s(d4, d2));
    [
        s.mul_add_e_f32s(four, d0, s.mul_add_e_f32s(minus_five, d2, d4)),
        s.mul_add_e_f32s(minus_four, s12, s.add_f32s(d3, d4)),
        s.mul_add_e_f32s(four, d12, s.sub_f32s(d4, d3)),
        s.mul_add_e_f32s(two, d31, d42),
        s.mul_add_e_f32s(minus_two, d31, d42),
        s.mul_add_e_f32s(four, d1, s.mul_add_e_f32s(minus_five, d3, d5)),
    ]
}

/// `A^T x`: rows [1 1 1 1 1 0] [0 1 -1 2 -2 0] [0 1 1 4 4 0] [0 1 -1 8 -8 1].
#[inline(always)]
fn a_t<S: Simd>(s: S, [x0, x1, x2, x3, x4, x5]: [S::f32s; T]) -> [S::f32s; M] {
    let (s12, d12) = (s.add_f32s(x1, x2), s.sub_f32s(x1, x2));
    let (s34, d34) = (s.add_f32s(x3, x4), s.sub_f32s(x3, x4));
    [
        s.add_f32s(x0, s.add_f32s(s12, s34)),
        s.mul_add_e_f32s(s.splat_f32s(2.0), d34, d12),
        s.mul_add_e_f32s(s.splat_f32s(4.0), s34, s12),
        s.add_f32s(s.mul_add_e_f32s(s.splat_f32s(8.0), d34, d12), x5),
    ]
}
