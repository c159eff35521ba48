//! Dense convolutions with many input channels (ResNet's 3x3 layers, strided ones included,
//! its strided 1x1 shortcuts, and every 1x1 layer through `blocked_pointwise.rs`) directly over
//! activations in blocks of 16 channels (`blocked.rs`' layout), MLAS's NCHWc direct
//! convolution: no im2col, no packing per call.
//!
//! A register tile of `T` output pixels by `B` output blocks accumulates, for every input block,
//! tap and lane, one broadcast input value per pixel times `B` weight vectors, the weights laid
//! out once per layer ([`Packed`]: a panel row per (input channel, tap), the 1x1 layers' too).
//! The tile's pixels run along the output in reading order, across row
//! ends, and each (pixel, tap) reads its input pixel or, where that lies in the padding, a
//! vector of zeros: no padded copy of the input is made.
//!
//! At batch 1 the weights, not the activations, are what a layer reads from memory (ResNet-50
//! streams 100 MB of them a pass), and a tile's demand for them outruns memory: alone with its
//! weights evicted, the 7x7 1x1 layer 512>2048 took 1.5x the time it takes with them in cache.
//! So a task runs a large panel a chunk of input blocks at a time ([`CHUNK`]) and asks for the
//! next chunk (or the next group's first) a few cache lines per input block while it computes
//! (`prefetch.rs`).

use pulp::{Simd, WithSimd};
use rayon::prelude::*;

use crate::blocked::{LANES, Lines, blocks};
use crate::epilogue::Epilogue;
use crate::grad::Geometry;
use crate::isa::Isa;
use crate::prefetch::Ahead;

/// Output blocks one panel of weights covers (64 channels): 24 of AVX-512's 32 registers hold
/// a 6-pixel tile's sums, 4 its weights.
const GROUP: usize = 4;
/// Taps a kernel has at most here (3x3); larger kernels on many channels are not in the
/// architectures graft carries.
const MAX_TAPS: usize = 9;
/// Pixels per task at most (but for a short rest spread over the spans, [`span`]), so that one
/// image's layer still spreads over the threads...
const TASK_PIXELS: usize = 1024;
/// ...and tasks a layer is split into at least, where its pixels allow.
const MIN_TASKS: usize = 8;
/// Pixels per task at least (a few register tiles).
const MIN_PIXELS: usize = 24;
/// Floats of a group's panel a task runs over all its pixels at a time (256 KiB, an eighth of
/// this machine's L2), the partial sums kept in the output between chunks. At batch 1 the
/// weights come from memory, not cache: a panel read whole by each tile (1.2 MiB for a 3x3
/// layer on 512 channels) left no room in L2 for the next one to arrive early.
const CHUNK: usize = 1 << 16;

/// `f(0)` to `f(15)`, written out: with the loop over a block's lanes unrolled, the loop
/// around it (over input blocks and taps) is the innermost, and the compiler keeps a tile's
/// sums in registers across it. As a loop, it stored 18 of the 24 sums to the stack after
/// every input block (about a quarter of a 1x1 layer's samples in `perf`).
#[inline(always)]
pub(crate) fn each_lane(mut f: impl FnMut(usize)) {
    f(0);
    f(1);
    f(2);
    f(3);
    f(4);
    f(5);
    f(6);
    f(7);
    f(8);
    f(9);
    f(10);
    f(11);
    f(12);
    f(13);
    f(14);
    f(15);
}

/// Where a tap in the padding reads.
static ZEROS: [f32; LANES] = [0.0; LANES];

/// Whether [`forward`] takes the dense convolution `g`.
pub fn applies(g: &Geometry) -> bool {
    g.taps() <= MAX_TAPS && g.out_len() > 0 && g.in_len() > 0
}

/// A layer's weights `[out, in, taps]` laid out for the blocked kernels: per group of
/// `GROUP` (4) output blocks (the last one narrower) a panel `[in block][tap][16 lanes][blocks in
/// the group * 16]`, zero where a padded channel is; and the bias, zero-padded to whole blocks.
#[derive(Debug)]
pub struct Packed {
    pub(crate) data: Lines,
    pub(crate) bias: Vec<f32>,
    pub(crate) cin: usize,
    pub(crate) cout: usize,
    pub(crate) taps: usize,
}

impl Packed {
    /// From `w` `[cout, cin, taps]` (row-major, a convolution's weight) and its bias.
    ///
    /// Panics if `w` or `bias` is shorter than the shape says (a caller's error).
    pub fn new(w: &[f32], bias: Option<&[f32]>, cout: usize, cin: usize, taps: usize) -> Packed {
        assert!(w.len() >= cout * cin * taps, "blocked: weight too short");
        let (rows, kout) = (blocks(cin) * LANES * taps, blocks(cout));
        let mut data = Lines::zeroed(rows * kout * LANES);
        for g in (0..kout).step_by(GROUP) {
            let width = GROUP.min(kout - g) * LANES;
            let panel = &mut data[g * LANES * rows..][..rows * width];
            for (r, row) in panel.chunks_exact_mut(width).enumerate() {
                let (cb, tap, lane) = (r / (taps * LANES), r / LANES % taps, r % LANES);
                let ci = cb * LANES + lane;
                if ci >= cin {
                    continue;
                }
                for (j, v) in row.iter_mut().enumerate() {
                    let co = g * LANES + j;
                    if co < cout {
                        *v = w[(co * cin + ci) * taps + tap];
                    }
                }
            }
        }
        Packed {
            data,
            bias: crate::blocked::padded_bias(bias, cout),
            cin,
            cout,
            taps,
        }
    }

    /// Rows of one group's panel: one per (input channel, tap), input channels padded.
    fn rows(&self) -> usize {
        blocks(self.cin) * LANES * self.taps
    }
}

/// One task of a blocked layer: image `n`, pixels from `p0`, output blocks from `g` (a multiple
/// of [`GROUP`]), and those blocks' pixels to write (each `span` pixels or the image's rest).
type Task<'a> = (usize, usize, usize, Vec<&'a mut [f32]>);

/// Splits `out` (`batch` blocked images of `kout` blocks by `pixels`) into tasks of at most
/// [`TASK_PIXELS`] pixels by [`GROUP`] blocks, at least [`MIN_TASKS`] where the pixels allow;
/// with `even` workers ([`even_split`]), into spans of as near equal pixels as a multiple of
/// `even` of them allows. Returns the tasks and the span.
fn tasks(
    out: &mut [f32],
    batch: usize,
    kout: usize,
    pixels: usize,
    even: Option<usize>,
) -> (Vec<Task<'_>>, usize) {
    let image_out = kout * pixels * LANES;
    let span = span(pixels, batch * kout.div_ceil(GROUP), even);
    let mut tasks = Vec::new();
    for (n, image) in out.chunks_mut(image_out.max(1)).enumerate() {
        let mut planes: Vec<_> = image
            .chunks_mut(pixels * LANES)
            .map(|b| b.chunks_mut(span * LANES))
            .collect();
        for p0 in (0..pixels).step_by(span) {
            let mut parts = planes.iter_mut().filter_map(Iterator::next);
            for g in (0..kout).step_by(GROUP) {
                tasks.push((n, p0, g, parts.by_ref().take(GROUP).collect()));
            }
        }
    }
    (tasks, span)
}

/// `y = epilogue(conv(x, w) + bias + skip)` for blocked `x` (`g.batch` images of
/// `g.in_channels` channels): blocked, `g.out_channels` channels. `skip`, a residual blocked
/// like `y`, is added before the activation (ResNet's join; with `Epilogue::Bias` the order
/// does not matter).
///
/// Panics if `x`, `w` or `skip` disagree with `g` (a caller's error).
pub fn forward(
    g: &Geometry,
    x: &[f32],
    w: &Packed,
    epilogue: Epilogue,
    skip: Option<&[f32]>,
    isa: Isa,
) -> Lines {
    assert!(applies(g), "blocked direct: kernel too large");
    assert_eq!(
        (w.cin, w.cout, w.taps),
        (g.in_channels, g.out_channels, g.taps()),
        "blocked direct: weights for another layer"
    );
    let (kin, kout) = (blocks(g.in_channels), blocks(g.out_channels));
    let (image_in, pixels) = (kin * g.in_len() * LANES, g.out_len());
    let image_out = kout * pixels * LANES;
    assert!(x.len() >= g.batch * image_in, "blocked direct: x too short");
    if let Some(s) = skip {
        assert!(
            s.len() >= g.batch * image_out,
            "blocked direct: skip too short"
        );
    }
    let mut out = Lines::take(g.batch * image_out);
    if out.is_empty() {
        return out;
    }
    let even = even_split(g);
    let (tasks, span) = tasks(&mut out, g.batch, kout, pixels, even);
    let tasks_len = tasks.len();
    // One task a piece for rayon to hand out. Left to its default, rayon cuts a list into a few
    // pieces a thread (more only where one is stolen), and at batch 1 a layer's last piece kept
    // one worker busy while the other spun: a helper worker was idle for 23% of a Lite0 batch-1
    // pass in `perf`, 7 points of it outside any serial part (0.982 and 1/1.026 of the time
    // with the depthwise loops likewise; batch 32 and the ResNets level). An even split is cut
    // into one piece a worker, whole spans each.
    let run = |(n, p0, first, dst): Task<'_>| {
        isa.dispatch(Tile {
            g,
            x: &x[n * image_in..][..image_in],
            skip: skip.map(|s| &s[n * image_out..][..image_out]),
            p0,
            count: span.min(pixels - p0),
            w,
            first,
            epilogue,
            dst,
        })
    };
    match even {
        // One piece a worker: its spans, one after another.
        Some(workers) => tasks
            .into_par_iter()
            .chunks((tasks_len / workers).max(1))
            .with_max_len(1)
            .for_each(|piece| piece.into_iter().for_each(run)),
        None => tasks.into_par_iter().with_max_len(1).for_each(run),
    }
    out
}

/// Pixels `p0..p0 + count` of one image's layer `g` (`x` that image's input), every output
/// block: `dst` one slice of `count` pixels a block, on the calling thread. For a caller that
/// runs a layer a band at a time (`blocked_fused.rs`).
pub(crate) fn pixels_into(
    g: &Geometry,
    x: &[f32],
    w: &Packed,
    epilogue: Epilogue,
    (p0, count): (usize, usize),
    dst: &mut [&mut [f32]],
    isa: Isa,
) {
    for (i, group) in dst.chunks_mut(GROUP).enumerate() {
        isa.dispatch(Tile {
            g,
            x,
            skip: None,
            p0,
            count,
            w,
            first: i * GROUP,
            epilogue,
            dst: group.iter_mut().map(|d| &mut d[..count * LANES]).collect(),
        });
    }
}

/// Pixels a task covers (the last span of an image may be shorter), for `pixels` a map and
/// `ranges` output groups over all images. Without `even` workers, a rest shorter than
/// [`MIN_PIXELS`] is spread over the other spans: Lite0's 7x7 1152>192 layers at batch 1 were
/// cut into 24 + 24 + 1 pixels, and each one-pixel task read its group's whole panel (288
/// KiB) for a sixth of a register tile's work.
fn span(pixels: usize, ranges: usize, even: Option<usize>) -> usize {
    let span = match even {
        Some(workers) => pixels.div_ceil(pixels.div_ceil(TASK_PIXELS).next_multiple_of(workers)),
        None => {
            let span = pixels
                .div_ceil(MIN_TASKS.div_ceil(ranges.max(1)))
                .clamp(MIN_PIXELS, TASK_PIXELS);
            let rest = pixels % span;
            if rest > 0 && rest < MIN_PIXELS && pixels > span {
                pixels.div_ceil(pixels / span)
            } else {
                span
            }
        }
    };
    span.min(pixels).max(1)
}

/// Workers to split layer `g` evenly between, one run of pixels each with every output group,
/// as MLAS partitions a convolution: when there are fewer images than workers and a run of
/// the input is more to read than the weights (input pixels at least output channels times
/// taps; each worker then reads the whole weights once and only its own part of the input).
/// Otherwise `None`: rayon hands out the tasks one by one.
///
/// In rayon's pieces, a worker waited for the other at the end of each such loop for 10-15%
/// of the loops' thread time in a Lite0 batch-1 pass (temporary timers per task), against
/// 8-10% in even runs. Batch-1 passes took 0.978 of the time (Lite0), 0.971 (ResNet-50) and
/// 1.008 (ResNet-18), medians of 10 pairs in alternating order. Split so on the 14x14 and
/// 7x7 maps too, where the weights outweigh the input and each worker read all of them,
/// ResNet-18 took 1.08x the time: there, pieces of output groups split the weights instead
/// (split evenly so, level: 1.003, 1.019, 1.001).
fn even_split(g: &Geometry) -> Option<usize> {
    let workers = rayon::current_num_threads();
    let input_outweighs = g.in_len() >= g.out_channels * g.taps();
    (workers > 1 && g.batch < workers && input_outweighs).then_some(workers)
}

/// One task: output blocks `first..first + dst.len()` of one image, pixels `p0..p0 + count`.
struct Tile<'a> {
    g: &'a Geometry,
    x: &'a [f32],
    skip: Option<&'a [f32]>,
    p0: usize,
    count: usize,
    w: &'a Packed,
    first: usize,
    epilogue: Epilogue,
    dst: Vec<&'a mut [f32]>,
}

impl WithSimd for Tile<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(mut self, simd: S) {
        let nb = self.dst.len();
        // (vectors a block, blocks, pixels) of each register tile over the group, by width
        // (plain loops: a closure the compiler does not inline loses the vector context):
        // with AVX-512, 24 of the 32 registers hold a tile's sums, the rest its weights.
        match (S::F32_LANES, nb) {
            (16, 4) => self.run::<S, 1, 4, 6>(simd, 0),
            (16, 3) => self.run::<S, 1, 3, 8>(simd, 0),
            (16, 2) => self.run::<S, 1, 2, 12>(simd, 0),
            (16, _) => {
                for b in 0..nb {
                    self.run::<S, 1, 1, 12>(simd, b)
                }
            }
            (8, _) => {
                for b in (0..nb).step_by(2) {
                    if nb - b >= 2 {
                        self.run::<S, 2, 2, 3>(simd, b)
                    } else {
                        self.run::<S, 2, 1, 6>(simd, b)
                    }
                }
            }
            (4, _) => {
                for b in 0..nb {
                    self.run::<S, 4, 1, 3>(simd, b)
                }
            }
            _ => {
                for b in 0..nb {
                    self.run::<S, 16, 1, 1>(simd, b)
                }
            }
        }
    }
}

impl<'a> Tile<'a> {
    /// Blocks `b0..b0 + B` of the group (`V` vectors a block), tiles of `T` pixels, then one
    /// pixel at a time to the end of the task's pixels.
    #[inline(always)]
    fn run<S: Simd, const V: usize, const B: usize, const T: usize>(&mut self, simd: S, b0: usize) {
        // Two builds of the loop, so that each keeps its tile's sums in registers.
        if self.g.is_pointwise() {
            self.sweep::<S, V, B, T, true>(simd, b0)
        } else {
            self.sweep::<S, V, B, T, false>(simd, b0)
        }
    }

    /// [`Tile::run`] for a 1x1 layer (`ONE`) or any other.
    #[inline(always)]
    fn sweep<S: Simd, const V: usize, const B: usize, const T: usize, const ONE: bool>(
        &mut self,
        simd: S,
        b0: usize,
    ) {
        let rows = self.w.rows();
        let width = self.dst.len() * LANES;
        let panel = &self.w.data[self.first * LANES * rows..][..rows * width];
        let wv = S::as_simd_f32s(panel).0;
        let bias = S::as_simd_f32s(&self.w.bias[(self.first + b0) * LANES..][..B * LANES]).0;
        let mut start = [[bias[0]; V]; B];
        for (b, s) in start.iter_mut().enumerate() {
            s.copy_from_slice(&bias[b * V..][..V]);
        }
        let row = width / S::F32_LANES.max(1);
        let (kin, end) = (blocks(self.g.in_channels), self.p0 + self.count);
        // Floats (and vectors) of the panel an input block holds: one row per (lane, tap).
        let per_block = LANES * self.w.taps * width;
        let vectors = per_block / S::F32_LANES.max(1);
        // Input blocks a chunk of the panel holds: all of them for a small panel, else as many
        // as CHUNK allows, in chunks of near-equal size.
        let most = (CHUNK / per_block.max(1)).clamp(1, kin.max(1));
        let chunk = kin.div_ceil(kin.div_ceil(most).max(1)).max(1);
        // At least one chunk, so that a layer without input channels still writes its bias.
        for c0 in (0..kin.max(1)).step_by(chunk) {
            let c1 = (c0 + chunk).min(kin);
            let at = Panel {
                wv: &wv[c0 * vectors..c1 * vectors],
                row,
                b0,
            };
            // The tiles' steps: one per input block (and tap) of each.
            let steps = (self.count / T + self.count % T) * (c1 - c0) * self.g.taps();
            let mut ahead = self.ahead(b0, per_block, c1, chunk * per_block, steps);
            let mut p = self.p0;
            while p < end {
                if end - p >= T {
                    let acc = self.sums::<S, V, B, T>(simd, start, c0, b0, p);
                    let acc = self.tile::<S, V, B, T, ONE>(simd, &at, acc, p, c0..c1, &mut ahead);
                    self.store::<S, V, B, T>(simd, acc, b0, p, c1 == kin);
                    p += T;
                } else {
                    let acc = self.sums::<S, V, B, 1>(simd, start, c0, b0, p);
                    let acc = self.tile::<S, V, B, 1, ONE>(simd, &at, acc, p, c0..c1, &mut ahead);
                    self.store::<S, V, B, 1>(simd, acc, b0, p, c1 == kin);
                    p += 1;
                }
            }
        }
    }

    /// Pixels `p..p + T` by `B` blocks, input blocks `cb` accumulated onto `acc` (`at` starts
    /// at the first of them): a 1x1 layer's pixels read as one run
    /// ([`crate::blocked_pointwise::tile`]), any other's tap by tap.
    #[inline(always)]
    fn tile<S: Simd, const V: usize, const B: usize, const T: usize, const ONE: bool>(
        &self,
        simd: S,
        at: &Panel<S::f32s>,
        acc: [[[S::f32s; V]; B]; T],
        p: usize,
        cb: std::ops::Range<usize>,
        ahead: &mut Ahead<'_>,
    ) -> [[[S::f32s; V]; B]; T] {
        let g = self.g;
        let x = &self.x[cb.start * g.in_len() * LANES..];
        if ONE {
            let pixels = g.in_len();
            crate::blocked_pointwise::tile::<S, V, B, T>(simd, x, pixels, at, acc, p, ahead)
        } else {
            let reads = Reads::<T>::of(g, p);
            tile::<S, V, B, T>(simd, g, x, &reads, at, acc, ahead)
        }
    }

    /// The `len` floats of the weights from block `c` of this group's panel (the next chunk,
    /// or the next group's first chunk), which this task's thread most likely reads next (its
    /// tasks go group by group over the same pixels), to fetch over `steps` steps. Only for the
    /// first blocks of the group (`b0` 0).
    fn ahead(&self, b0: usize, per_block: usize, c: usize, len: usize, steps: usize) -> Ahead<'a> {
        let data: &'a [f32] = &self.w.data;
        let at = self.first * LANES * self.w.rows() + c * per_block;
        match data.get(at..) {
            Some(next) if b0 == 0 => Ahead::new(&next[..len.min(next.len())], steps),
            _ => Ahead::none(),
        }
    }

    /// The sums of pixels `p..p + T`, blocks `b0..b0 + B`, that the chunk from input block
    /// `c0` goes on from: the bias `start` for the first chunk, else the partial sums the chunk
    /// before left in the output ([`Tile::store`]).
    #[inline(always)]
    fn sums<S: Simd, const V: usize, const B: usize, const T: usize>(
        &self,
        simd: S,
        start: [[S::f32s; V]; B],
        c0: usize,
        b0: usize,
        p: usize,
    ) -> [[[S::f32s; V]; B]; T] {
        if c0 == 0 {
            return [start; T];
        }
        let at = (p - self.p0) * LANES;
        let mut acc = [[[simd.splat_f32s(0.0); V]; B]; T];
        each_block::<B>(
            #[inline(always)]
            |b| {
                let d = S::as_simd_f32s(&self.dst[b0 + b][at..][..T * LANES]).0;
                for t in 0..T {
                    for v in 0..V {
                        acc[t][b][v] = d[t * V + v];
                    }
                }
            },
        );
        acc
    }

    /// Pixels `p..p + T` of blocks `b0..b0 + B`: the skip, then the epilogue. A block's `T`
    /// pixels are one run of its plane, and every index is a constant once the loops are
    /// written out, so the compiler writes the sums straight from their registers. With an
    /// index per (pixel, block) and the skip's choice inside, it spilled all of them to the
    /// stack and looped over them: a lone 1x1 layer, 32>144 channels at 28x28, ran at 134
    /// GFLOP/s on one thread that way and 167 now (BENCHMARKS.md, seventeenth round).
    #[inline(always)]
    fn store<S: Simd, const V: usize, const B: usize, const T: usize>(
        &mut self,
        simd: S,
        sums: [[[S::f32s; V]; B]; T],
        b0: usize,
        p: usize,
        last: bool,
    ) {
        let (pixels, at, epilogue) = (self.g.out_len(), (p - self.p0) * LANES, self.epilogue);
        each_block::<B>(
            #[inline(always)]
            |b| {
                let d = S::as_mut_simd_f32s(&mut self.dst[b0 + b][at..][..T * LANES]).0;
                match self.skip {
                    // A chunk's partial sums, for the next chunk to go on from.
                    _ if !last => {
                        for t in 0..T {
                            for v in 0..V {
                                d[t * V + v] = sums[t][b][v];
                            }
                        }
                    }
                    Some(k) => {
                        let block = self.first + b0 + b;
                        let k = S::as_simd_f32s(&k[(block * pixels + p) * LANES..][..T * LANES]).0;
                        for t in 0..T {
                            for v in 0..V {
                                let sum = simd.add_f32s(sums[t][b][v], k[t * V + v]);
                                d[t * V + v] = epilogue.apply_simd(simd, sum);
                            }
                        }
                    }
                    None => {
                        for t in 0..T {
                            for v in 0..V {
                                d[t * V + v] = epilogue.apply_simd(simd, sums[t][b][v]);
                            }
                        }
                    }
                }
            },
        );
    }
}

/// `f(0)` to `f(N - 1)`, written out for a register tile's blocks (at most [`GROUP`]): as a
/// loop, the compiler indexed the tile's sums at run time, so kept them on the stack.
#[inline(always)]
pub(crate) fn each_block<const N: usize>(mut f: impl FnMut(usize)) {
    match N {
        1 => f(0),
        2 => {
            f(0);
            f(1)
        }
        3 => {
            f(0);
            f(1);
            f(2)
        }
        4 => {
            f(0);
            f(1);
            f(2);
            f(3)
        }
        _ => (0..N).for_each(f),
    }
}

/// Where a tile's weights are: `row` vectors per (input channel, tap), its blocks from `b0`;
/// `wv` holds the input blocks the tile accumulates, no more.
pub(crate) struct Panel<'a, V> {
    pub(crate) wv: &'a [V],
    pub(crate) row: usize,
    pub(crate) b0: usize,
}

/// For each tap and each of a tile's `T` pixels, the offset in an input block's plane of the
/// pixel it reads, or [`PADDING`]: the same for every input block. Made once a tile, with no
/// division per tap (the divisions took a tenth of a ResNet 3x3 layer's time).
struct Reads<const T: usize> {
    at: [[usize; MAX_TAPS]; T],
}

/// A tap that reads the padding.
const PADDING: usize = usize::MAX;

impl<const T: usize> Reads<T> {
    #[inline(always)]
    fn of(g: &Geometry, p: usize) -> Self {
        let mut at = [[PADDING; MAX_TAPS]; T];
        let ([h, w], ow) = (g.in_size, g.out_size[1].max(1));
        let (mut oy, mut ox) = (p / ow, p % ow);
        for pixel in at.iter_mut() {
            let mut tap = 0;
            for ky in 0..g.kernel[0] {
                let iy = (oy * g.stride[0] + ky * g.dilation[0]).checked_sub(g.padding[0]);
                for kx in 0..g.kernel[1] {
                    let ix = (ox * g.stride[1] + kx * g.dilation[1]).checked_sub(g.padding[1]);
                    if let (Some(iy), Some(ix)) = (iy, ix)
                        && iy < h
                        && ix < w
                    {
                        pixel[tap] = (iy * w + ix) * LANES;
                    }
                    tap += 1;
                }
            }
            ox += 1;
            if ox == ow {
                (oy, ox) = (oy + 1, 0);
            }
        }
        Reads { at }
    }
}

/// `T` pixels by `B` blocks: every input block of `at`, tap and lane accumulated onto `acc`.
#[inline(always)]
fn tile<S: Simd, const V: usize, const B: usize, const T: usize>(
    simd: S,
    g: &Geometry,
    x: &[f32],
    reads: &Reads<T>,
    at: &Panel<S::f32s>,
    mut acc: [[[S::f32s; V]; B]; T],
    ahead: &mut Ahead<'_>,
) -> [[[S::f32s; V]; B]; T] {
    let (taps, plane) = (g.taps(), g.in_len() * LANES);
    let per_block = taps * LANES * at.row;
    for (cb, wc) in at.wv.chunks_exact(per_block).enumerate() {
        let xc = &x[cb * plane..][..plane];
        for (tap, rows) in wc.chunks_exact(LANES * at.row).enumerate().take(taps) {
            ahead.step();
            let px: [&[f32]; T] = std::array::from_fn(|t| match reads.at[t][tap] {
                PADDING => &ZEROS[..],
                o => &xc[o..][..LANES],
            });
            each_lane(
                #[inline(always)]
                |l| {
                    let wr = &rows[l * at.row + at.b0 * V..][..B * V];
                    for t in 0..T {
                        let xv = simd.splat_f32s(px[t][l]);
                        for b in 0..B {
                            for v in 0..V {
                                acc[t][b][v] = simd.mul_add_e_f32s(xv, wr[b * V + v], acc[t][b][v]);
                            }
                        }
                    }
                },
            );
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::span;

    #[test]
    fn a_short_rest_is_spread_over_the_other_spans() {
        // Lite0's 7x7 1152>192 layer at batch 1: 25 + 24 pixels, not 24 + 24 + 1.
        assert_eq!(span(49, 3, None), 25);
        // Rests of at least MIN_PIXELS, and maps that divide evenly, are left as they were.
        assert_eq!(span(196, 2, None), 49);
        assert_eq!(span(1030, 1, None), 129);
        assert_eq!(span(49, 18, None), 49);
        // A map smaller than a span is one span; an even split is as before.
        assert_eq!(span(10, 3, None), 10);
        assert_eq!(span(3136, 1, Some(2)), 784);
    }
}
