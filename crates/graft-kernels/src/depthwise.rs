//! The forward pass of a depthwise convolution (one filter per channel, MobileNet and
//! EfficientNet's spatial layer), directly in NCHW: each output plane is its channel's input
//! plane convolved with a k x k filter, so no layout change and no patch matrix is needed.
//!
//! burn-flex 0.22 accumulates each plane one kernel tap at a time through a generic SIMD
//! dispatch, over the whole batch at once (an EfficientNet-Lite0 expansion at batch 32 is 150 MB,
//! so every layer's output is freshly mapped memory). Here each output row is accumulated tap by
//! plane is padded and split into its stride phases once (see [`Layout`]), after which each
//! kernel tap is one long contiguous multiply-add that the compiler vectorises (the small maps,
//! 7x7 and 14x14, would leave rows of 7-14 values mostly to scalar tails). The bias and the
//! activation are applied as the plane is written out. `tests/conv2d.rs` holds it to burn's conv2d.

use rayon::prelude::*;

use crate::epilogue::Epilogue;
use crate::grad::Geometry;
use crate::interleaved;
use crate::isa::Isa;
use crate::scratch;

/// Accumulator floats each pass over the taps covers (4 KiB, in L1 with the rows it reads).
const STRIP: usize = 1024;

/// Output planes per rayon task: small planes (7x7) are grouped so scheduling stays cheap.
const TASK_FLOATS: usize = 1 << 12;

/// `y = epilogue(depthwise(x, w) + bias)` for `x` `[batch, channels, h, w]` and `w`
/// `[channels, 1, kh, kw]` (`g.in_channels == g.out_channels`), with `isa`'s vectors.
///
/// Panics if the slices are shorter than `g` says (a caller's error, not the data's).
pub fn forward(
    g: &Geometry,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    epilogue: Epilogue,
    isa: Isa,
) -> Vec<f32> {
    assert_fits(g, x, w);
    let (in_len, out_len, taps) = (g.in_len(), g.out_len(), g.taps());
    let channels = g.out_channels;
    let mut out = crate::outputs::take(g.batch * channels * out_len);
    if out.is_empty() {
        return out;
    }
    if interleaved::applies(g) {
        let f = Filters {
            w,
            bias,
            epilogue,
            isa,
        };
        blocks(g, Some(x), false, &mut out, f);
        return out;
    }
    let per_task = TASK_FLOATS.div_ceil(out_len).max(1);
    over_planes(
        &mut out,
        out_len * per_task,
        scratch_len(g),
        |task, planes, buffer| {
            isa.run(
                #[inline(always)]
                || {
                    for (i, plane) in planes.chunks_mut(out_len).enumerate() {
                        let p = task * per_task + i;
                        let c = p % channels;
                        let src = &x[p * in_len..][..in_len];
                        let b = bias.map_or(0.0, |b| b[c]);
                        let w = &w[c * taps..][..taps];
                        plane_forward(g, src, w, b, epilogue, buffer, plane);
                    }
                },
            );
        },
    );
    out
}

/// Panics unless `g` has one filter per channel and `x` and `w` hold what it says (a caller's
/// error, not the data's).
fn assert_fits(g: &Geometry, x: &[f32], w: &[f32]) {
    assert_eq!(
        g.in_channels, g.out_channels,
        "depthwise: one filter per channel"
    );
    assert!(
        x.len() >= g.batch * g.in_channels * g.in_len(),
        "depthwise: x too short"
    );
    assert!(
        w.len() >= g.out_channels * g.taps(),
        "depthwise: w too short"
    );
}

/// `work(task, chunk, scratch)` on rayon's threads for each `chunk`-float piece of `dst` (whole
/// planes), each with a scratch buffer of `need` floats.
fn over_planes(
    dst: &mut [f32],
    chunk: usize,
    need: usize,
    work: impl Fn(usize, &mut [f32], &mut [f32]) + Sync,
) {
    // One chunk a piece for rayon to hand out, as `blocked_direct::forward`'s tasks.
    dst.par_chunks_mut(chunk)
        .with_max_len(1)
        .enumerate()
        .for_each(|(task, dst)| scratch::with_aligned(need, |scratch| work(task, dst, scratch)));
}

/// The interleaved path (`interleaved.rs`) over `dst` (`[batch, channels, out_h, out_w]`), one
/// task per image's block of 16 channels, reading `x` or, when it is none, `dst` itself; with
/// `blocked`, `x` and `dst` hold interleaved blocks (`blocked.rs`) rather than planes.
fn blocks(g: &Geometry, x: Option<&[f32]>, blocked: bool, dst: &mut [f32], f: Filters) {
    let block = interleaved::CHANNELS;
    let in_len = g.in_len();
    let need = interleaved::scratch_len(g, blocked && x.is_some());
    over_planes(dst, block * g.out_len(), need, |i, dst, scratch| {
        // Blocks run image by image, channel block by channel block.
        let x = x.map(|x| &x[i * block * in_len..][..block * in_len]);
        f.block(g, x, blocked, (i * block) % g.out_channels, scratch, dst);
    });
}

/// A depthwise layer's filters, bias and epilogue, and the vectors it runs with. The filters
/// are `[channel][tap]` for the planes paths and [`BlockedFilters`]' `[block][tap][16]` for the
/// blocked ones: the same offsets a block, so a block's slice is found alike.
#[derive(Clone, Copy)]
pub(crate) struct Filters<'a> {
    pub(crate) w: &'a [f32],
    pub(crate) bias: Option<&'a [f32]>,
    pub(crate) epilogue: Epilogue,
    pub(crate) isa: Isa,
}

/// A depthwise layer's filters laid out once for the blocked kernels: per block of 16 channels,
/// `[tap][16]`, one vector a tap, channels past the layer's zero. Laid out per block and call
/// instead, the filters took about 1% of a Lite0 batch-1 pass (`perf`), done again by every
/// band and image.
#[derive(Clone, Debug)]
pub struct BlockedFilters {
    pub(crate) values: Vec<f32>,
}

impl BlockedFilters {
    /// From `w` `[channels][taps]` (a depthwise convolution's weight).
    ///
    /// Panics if `w` is shorter than `channels * taps` (a caller's error).
    pub fn new(w: &[f32], channels: usize, taps: usize) -> BlockedFilters {
        assert!(w.len() >= channels * taps, "depthwise: w too short");
        let per_block = interleaved::CHANNELS * taps;
        let len = channels.div_ceil(interleaved::CHANNELS) * per_block;
        let mut padded = w[..channels * taps].to_vec();
        padded.resize(len, 0.0);
        let mut values = vec![0.0; len];
        for (out, w) in values
            .chunks_exact_mut(per_block)
            .zip(padded.chunks_exact(per_block))
        {
            interleaved::interleave_filters(taps, w, out);
        }
        BlockedFilters { values }
    }
}

impl Filters<'_> {
    /// The block of channels from `c0` of one image, `g` its geometry (see
    /// [`interleaved::Block`]).
    pub(crate) fn block(
        &self,
        g: &Geometry,
        x: Option<&[f32]>,
        blocked: bool,
        c0: usize,
        scratch: &mut [f32],
        dst: &mut [f32],
    ) {
        let (block, taps) = (interleaved::CHANNELS, g.taps());
        self.isa.dispatch(interleaved::Block {
            g,
            x,
            blocked,
            w: &self.w[c0 * taps..][..block * taps],
            bias: self.bias.map(|b| &b[c0..][..block]),
            epilogue: self.epilogue,
            scratch,
            dst,
        });
    }
}

/// As [`forward`] over blocked activations (`blocked.rs`' layout, `g`'s channels a multiple of
/// 16): `x` `[batch, channels / 16, h * w, 16]`, and the output likewise.
///
/// Panics if the channels are not whole blocks or a slice is shorter than `g` says.
pub fn forward_blocked(
    g: &Geometry,
    x: &[f32],
    w: &BlockedFilters,
    bias: Option<&[f32]>,
    epilogue: Epilogue,
    isa: Isa,
) -> crate::outputs::Lines {
    assert_fits(g, x, &w.values);
    assert!(
        g.out_channels.is_multiple_of(interleaved::CHANNELS),
        "depthwise: blocked channels come in whole blocks"
    );
    let mut out = crate::outputs::Lines::take(g.batch * g.out_channels * g.out_len());
    if out.is_empty() || !interleaved::applies(g) {
        return out;
    }
    let f = Filters {
        w: &w.values,
        bias,
        epilogue,
        isa,
    };
    match bands(g) {
        1 => blocks(g, Some(x), true, &mut out, f),
        n => banded(g, n, x, &mut out, f),
    }
    out
}

/// Row bands each block of a blocked layer is split into: one a worker when the batch has
/// fewer images than there are workers and its blocks do not share out evenly, else 1 (a task
/// per image's block). At batch 1, Lite0's 144- and 240-channel layers (9 and 15 blocks) ran
/// 1.05-1.19x faster on 2 threads than on 1 as a task per block: an odd count of tasks, each
/// reading an input that the 1x1 layer before had written half on each core (its tasks split
/// the pixels). In bands, three of those four layers took 0.67-0.77 of the time; the 14x14
/// and 7x7 layers of 30, 42 and 72 blocks took up to twice as long (the rows a band shares
/// with the next are copied twice, and the layer no longer runs over its input). A layer that
/// reads its input where it lies (`blocked_depthwise.rs`) copies nothing and never runs over
/// its input, so it always runs in bands at such a batch: each worker then reads the rows the
/// 1x1 layer before wrote on its own core (Lite0 at batch 1: 0.973 and 1/1.023 of the time,
/// its 32- and 96-channel layers at 112x112 being the ones that change).
fn bands(g: &Geometry) -> usize {
    let workers = rayon::current_num_threads();
    let tasks = g.batch * g.out_channels.div_ceil(interleaved::CHANNELS);
    let direct = crate::blocked_depthwise::applies(g);
    if g.batch >= workers || (tasks.is_multiple_of(workers) && !direct) {
        return 1;
    }
    let n = (workers / g.batch.max(1)).min(g.out_size[0]).max(1);
    let rows = g.out_size[0].div_ceil(n);
    // Every band must read some of the input (a band wholly in the padding has no kernel).
    let all_apply = (0..n).all(|b| {
        let r0 = (b * rows).min(g.out_size[0]);
        r0 == g.out_size[0] || interleaved::applies(&band(g, r0, (r0 + rows).min(g.out_size[0])).0)
    });
    if all_apply { n } else { 1 }
}

/// Output rows `r0..r1` of blocked layer `g` as a layer of their own: the input rows they read
/// (from the returned row on) with the padding they reach into.
pub(crate) fn band(g: &Geometry, r0: usize, r1: usize) -> (Geometry, usize) {
    let (s, d, k, top, h) = (
        g.stride[0],
        g.dilation[0],
        g.kernel[0],
        g.padding[0],
        g.in_size[0],
    );
    // Padded rows the band's taps read: `first..last`.
    let (first, last) = (r0 * s, (r1.max(r0 + 1) - 1) * s + (k - 1) * d + 1);
    let y0 = first.saturating_sub(top).min(h);
    let y1 = last.saturating_sub(top).min(h);
    let sub = Geometry {
        batch: 1,
        in_size: [y1 - y0, g.in_size[1]],
        out_size: [r1 - r0, g.out_size[1]],
        padding: [top.saturating_sub(first), g.padding[1]],
        ..*g
    };
    (sub, y0)
}

/// [`blocks`] for blocked `x`, each image's block split into `n` bands of output rows, the
/// tasks band by band: the first half of the tasks, which the worker that starts the loop
/// keeps, covers the top rows of every block, as it did in the 1x1 layer before (whose tasks
/// run pixel range by pixel range), and as the 1x1 layer after reads them.
fn banded(g: &Geometry, n: usize, x: &[f32], dst: &mut [f32], f: Filters) {
    let block = interleaved::CHANNELS;
    let (oh, ow) = (g.out_size[0], g.out_size[1]);
    let rows = oh.div_ceil(n);
    let (in_plane, out_plane) = (g.in_len() * block, g.out_len() * block);
    let mut planes: Vec<_> = dst
        .chunks_mut(out_plane)
        .map(|p| p.chunks_mut(rows * ow * block))
        .collect();
    let mut tasks = Vec::new();
    for b in 0..n {
        for (i, plane) in planes.iter_mut().enumerate() {
            if let Some(d) = plane.next() {
                tasks.push((b * rows, i, d));
            }
        }
    }
    tasks
        .into_par_iter()
        .with_max_len(1)
        .for_each(|(r0, i, dst)| {
            let (sub, y0) = band(g, r0, (r0 + rows).min(oh));
            let x = &x[i * in_plane + y0 * g.in_size[1] * block..][..sub.in_len() * block];
            let need = interleaved::scratch_len(&sub, true);
            let c0 = (i * block) % g.out_channels;
            scratch::with_aligned(need, |scratch| {
                f.block(&sub, Some(x), true, c0, scratch, dst)
            });
        });
}

/// Whether depthwise layer `g`'s output has its input's shape (stride 1, "same" padding), so
/// that it can be written over the input.
fn same_size(g: &Geometry) -> bool {
    g.in_channels == g.out_channels && g.in_size == g.out_size && g.stride == [1, 1]
}

/// As [`forward_blocked`], written over `x` itself when the output has the input's size
/// (stride 1, "same" padding; each block is copied into its padded layout before its output is
/// written). Returns `false`, leaving `x` as it was, for any other geometry.
pub fn forward_blocked_in_place(
    g: &Geometry,
    x: &mut [f32],
    w: &BlockedFilters,
    bias: Option<&[f32]>,
    epilogue: Epilogue,
    isa: Isa,
) -> bool {
    let whole = g.out_channels.is_multiple_of(interleaved::CHANNELS);
    let len = g.batch * g.out_channels * g.out_len();
    // A band would read rows of its neighbours that their tasks may already have overwritten.
    let banded = interleaved::applies(g) && bands(g) > 1;
    // A wide map reads its input where it lies, so it cannot write over it.
    let direct = crate::blocked_depthwise::applies(g);
    if !same_size(g)
        || !whole
        || x.len() != len
        || w.values.len() < g.out_channels * g.taps()
        || banded
        || direct
    {
        return false;
    }
    if interleaved::applies(g) {
        blocks(
            g,
            None,
            true,
            x,
            Filters {
                w: &w.values,
                bias,
                epilogue,
                isa,
            },
        );
    }
    true
}

/// As [`forward`], written over `x` itself (`[batch, channels, h, w]`) when the output has the
/// input's size (stride 1, "same" padding): each plane is copied into its padded layout, then
/// overwritten with its output. The output then goes to lines the copy just read (in cache)
/// instead of a second buffer. Returns `false`, leaving `x` as it was, for any other geometry.
pub fn forward_in_place(
    g: &Geometry,
    x: &mut [f32],
    w: &[f32],
    bias: Option<&[f32]>,
    epilogue: Epilogue,
    isa: Isa,
) -> bool {
    let (len, taps, channels) = (g.in_len(), g.taps(), g.out_channels);
    if !same_size(g) || len == 0 || x.len() != g.batch * channels * len || w.len() < channels * taps
    {
        return false;
    }
    if interleaved::applies(g) {
        blocks(
            g,
            None,
            false,
            x,
            Filters {
                w,
                bias,
                epilogue,
                isa,
            },
        );
        return true;
    }
    let per_task = TASK_FLOATS.div_ceil(len).max(1);
    over_planes(x, len * per_task, scratch_len(g), |task, planes, buffer| {
        isa.run(
            #[inline(always)]
            || {
                for (i, plane) in planes.chunks_mut(len).enumerate() {
                    let c = (task * per_task + i) % channels;
                    let b = bias.map_or(0.0, |b| b[c]);
                    let l = Layout::of(g);
                    let (phases, acc) = buffer.split_at_mut(l.len(g));
                    scatter(g, plane, &l, phases);
                    taps_and_write(g, &w[c * taps..][..taps], b, epilogue, phases, acc, plane);
                }
            },
        );
    });
    true
}

/// How one plane is laid out for the taps: the input, zero-padded, split into `stride x stride`
/// phases (phase `(a, b)` holds the padded values at rows `a, a + s, ...` and columns `b, b + s,
/// ...`), each `rows x cols`. Tap `(ki, kj)` then reads phase `(ki d % s, kj d % s)` shifted by
/// `(ki d / s, kj d / s)`, and output `(oy, ox)` sits at `oy * cols + ox` in every phase: one
/// contiguous multiply-add over the whole plane per tap, its length `oh * cols` (the columns past
/// `ow` are computed and dropped), instead of `oh` short rows.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    /// Floats per phase, with room for the last tap's overrun into the dropped columns.
    pub(crate) phase: usize,
}

impl Layout {
    pub(crate) fn of(g: &Geometry) -> Layout {
        let reach = |a: usize| {
            (g.out_size[a].max(1) - 1) * g.stride[a] + (g.kernel[a] - 1) * g.dilation[a] + 1
        };
        let rows = reach(0).div_ceil(g.stride[0]);
        let cols = reach(1).div_ceil(g.stride[1]);
        let overrun = ((g.kernel[0] - 1) * g.dilation[0] / g.stride[0] + 1) * cols;
        Layout {
            rows,
            cols,
            phase: rows * cols + overrun,
        }
    }

    pub(crate) fn len(&self, g: &Geometry) -> usize {
        self.phase * g.stride[0] * g.stride[1]
    }

    /// The same layout with `extra` more floats at the end of each phase (for readers that run
    /// past the last output position in whole vectors).
    pub(crate) fn with_slack(self, extra: usize) -> Layout {
        Layout {
            phase: self.phase + extra,
            ..self
        }
    }
}

/// Scratch floats one task needs: the phases and the accumulator.
fn scratch_len(g: &Geometry) -> usize {
    let l = Layout::of(g);
    l.len(g) + g.out_size[0] * l.cols
}

#[inline(always)]
fn plane_forward(
    g: &Geometry,
    x: &[f32],
    w: &[f32],
    b: f32,
    epilogue: Epilogue,
    scratch: &mut [f32],
    y: &mut [f32],
) {
    let l = Layout::of(g);
    let (phases, acc) = scratch.split_at_mut(l.len(g));
    scatter(g, x, &l, phases);
    taps_and_write(g, w, b, epilogue, phases, acc, y);
}

/// The taps over `phases` (a plane as [`scatter`] lays it out), then `epilogue` into `y`.
#[inline(always)]
fn taps_and_write(
    g: &Geometry,
    w: &[f32],
    b: f32,
    epilogue: Epilogue,
    phases: &[f32],
    acc: &mut [f32],
    y: &mut [f32],
) {
    let [oh_len, ow_len] = g.out_size;
    let [kh, kw] = g.kernel;
    let [sh, sw] = g.stride;
    let [dh, dw] = g.dilation;
    let l = Layout::of(g);
    let acc = &mut acc[..oh_len * l.cols];
    acc.fill(b);
    // Every tap over one strip of the plane before the next strip, so the strip stays in L1
    // (a 112x112 plane's accumulator is 50 KB: tap by tap over all of it ran from L2).
    for (n, strip) in acc.chunks_mut(STRIP).enumerate() {
        let at = n * STRIP;
        for ki in 0..kh {
            for kj in 0..kw {
                let (ri, ci) = (ki * dh, kj * dw);
                let phase = &phases[((ri % sh) * sw + ci % sw) * l.phase..][..l.phase];
                let src = &phase[(ri / sh) * l.cols + ci / sw + at..][..strip.len()];
                let wv = w[ki * kw + kj];
                strip.iter_mut().zip(src).for_each(|(d, s)| *d += wv * s);
            }
        }
    }
    for (dst, src) in y.chunks_exact_mut(ow_len).zip(acc.chunks_exact(l.cols)) {
        epilogue.write(dst, &src[..ow_len], 0.0);
    }
}

/// Writes plane `x` (`g.in_size`) into `phases` as `l` lays it out, and zero everywhere else
/// (the padding, and the overrun past each phase): each float once, rather than zeroing the
/// whole buffer first (`memset` was 5% of Lite0 at batch 1).
#[inline(always)]
pub(crate) fn scatter(g: &Geometry, x: &[f32], l: &Layout, phases: &mut [f32]) {
    let [h, width] = g.in_size;
    let [sh, sw] = g.stride;
    let [ph, pw] = g.padding;
    for a in 0..sh {
        for bq in 0..sw {
            let phase = &mut phases[(a * sw + bq) * l.phase..][..l.phase];
            let (body, overrun) = phase.split_at_mut(l.rows * l.cols);
            overrun.fill(0.0);
            // Input column i sits at padded column i + pw, in phase (i + pw) % sw at (i + pw) / sw:
            // this phase's first is `first`, at `start`, then every sw-th, `n` of them.
            let first = (bq + sw - pw % sw) % sw;
            let start = (first + pw) / sw;
            let n = if first < width && start < l.cols {
                (width - first).div_ceil(sw).min(l.cols - start)
            } else {
                0
            };
            for (pr, dst) in body.chunks_exact_mut(l.cols.max(1)).enumerate() {
                let row = (pr * sh + a).checked_sub(ph).filter(|&r| r < h);
                match row {
                    Some(r) if n > 0 => {
                        let src = &x[r * width + first..];
                        dst[..start].fill(0.0);
                        dst[start..start + n]
                            .iter_mut()
                            .zip(src.iter().step_by(sw))
                            .for_each(|(d, s)| *d = *s);
                        dst[start + n..].fill(0.0);
                    }
                    _ => dst.fill(0.0),
                }
            }
        }
    }
}
