//! An MBConv block's 1x1 expansion and the depthwise layer after it, run together over bands
//! of rows, for fewer images than workers (one image at batch 1 on two cores) on wide maps
//! (EfficientNet-Lite0's 112x112 and 56x56 blocks).
//!
//! Run one after the other, the expansion writes its whole output (4.8 MB on Lite0's first
//! 112x112 block, several times a core's 1 MiB L2) and the depthwise layer reads it back from
//! L3: at batch 1 those depthwise layers took 1.3-1.5x ONNX Runtime's time in the network,
//! and up to twice their own time alone (BENCHMARKS.md, twenty-ninth round). Here each worker
//! takes a share of an image's output rows and goes down them a band at a time: it expands the
//! input rows the band's taps read into a buffer sized for L2, runs the depthwise layer over
//! it, and keeps the rows the next band reads again, so that no row is expanded twice but the
//! few at the seams between shares. The pair is also one parallel loop instead of two.
//!
//! With as many images as workers (batch 32), each image would be a task: 1.011 of the time of
//! the layers one after the other (8 pairs) and 30 MiB smaller at its peak, so that
//! case keeps the plain order.

use rayon::prelude::*;

use crate::blocked::{LANES, Lines, blocks};
use crate::blocked_direct::Packed;
use crate::depthwise::{BlockedFilters, Filters, band};
use crate::epilogue::Epilogue;
use crate::grad::Geometry;
use crate::isa::Isa;

/// Floats of expanded rows a band holds at most (256 KiB: a quarter of this machine's L2, with
/// room for the weights and the band's output).
const BAND_FLOATS: usize = 1 << 16;

/// The depthwise half of a fused pair: its geometry (channels padded to whole blocks), filters,
/// bias over whole blocks and epilogue.
pub(crate) struct Depthwise<'a> {
    pub(crate) g: &'a Geometry,
    pub(crate) filters: &'a BlockedFilters,
    pub(crate) bias: &'a [f32],
    pub(crate) epilogue: Epilogue,
}

/// Columns a map needs for the pair to run fused. The workers' shares meet at a seam whose
/// rows both expand: on 28x28 maps with a 5x5 kernel that is 4 of every 28 rows again, and
/// Lite0 at batch 1 took 1.01 of the time with those blocks fused, 0.99 with them left as
/// they were (medians of 11 alternating rounds in a quiet spell of the machine).
const MIN_WIDTH: usize = 56;

/// The part of [`applies`] that needs only the batch and the map's width.
pub(crate) fn may_apply(batch: usize, width: usize) -> bool {
    batch < rayon::current_num_threads() && width >= MIN_WIDTH
}

/// Whether the pair whose depthwise layer is `dw` runs fused: fewer images than workers, and a
/// map wide enough (at least [`MIN_WIDTH`]) for the seams to cost little and for the depthwise
/// taps to read their input where it lies (`blocked_depthwise.rs`), so that a band's rows need
/// no padded copy.
pub(crate) fn applies(dw: &Geometry) -> bool {
    may_apply(dw.batch, dw.in_size[1])
        && dw.out_size[0] >= rayon::current_num_threads()
        && crate::blocked_depthwise::applies(dw)
        && bands(dw, 0, dw.out_size[0]).all(|(o0, o1)| {
            let (sub, _) = band(dw, o0, o1);
            sub.in_size[0] > 0 && crate::blocked_depthwise::applies(&sub)
        })
}

/// Output rows a band covers: as many as keep its expanded input rows within [`BAND_FLOATS`].
fn band_rows(dw: &Geometry) -> usize {
    let row = blocks(dw.in_channels) * dw.in_size[1] * LANES;
    let rows_in = (BAND_FLOATS / row.max(1)).max(1);
    let reach = (dw.kernel[0] - 1) * dw.dilation[0];
    (rows_in.saturating_sub(reach) / dw.stride[0]).max(1)
}

/// The bands of output rows `r0..r1`.
fn bands(dw: &Geometry, r0: usize, r1: usize) -> impl Iterator<Item = (usize, usize)> {
    let step = band_rows(dw);
    (r0..r1)
        .step_by(step)
        .map(move |o0| (o0, (o0 + step).min(r1)))
}

/// `depthwise(expand(x))` for blocked `x` (`expand_g.batch` images, `expand_g`'s input): the
/// depthwise layer's output, blocked. `expand_g` is the 1x1 layer's geometry, `dw.g` the
/// depthwise layer's (its input the expansion's output). Each image is a task, or, with fewer
/// images than workers, a task a worker's share of its rows. Callers check [`applies`] first.
///
/// Panics if the geometries disagree with each other or the slices (a caller's error).
pub(crate) fn forward(
    expand_g: &Geometry,
    x: &[f32],
    expand: &Packed,
    expand_epilogue: Epilogue,
    dw: Depthwise<'_>,
    isa: Isa,
) -> Lines {
    let g = dw.g;
    assert_eq!(expand_g.out_size, g.in_size, "fused: maps disagree");
    assert_eq!(expand_g.batch, g.batch, "fused: batches disagree");
    assert_eq!(
        blocks(expand.cout),
        blocks(g.in_channels),
        "fused: channels disagree"
    );
    let [oh, ow] = g.out_size;
    let kb = blocks(g.out_channels);
    let image_in = blocks(expand_g.in_channels) * expand_g.in_len() * LANES;
    assert!(x.len() >= g.batch * image_in, "fused: x too short");
    let mut out = Lines::take(g.batch * kb * oh * ow * LANES);
    let workers = rayon::current_num_threads().max(1);
    let shares = workers.div_ceil(g.batch.max(1));
    let rows = oh.div_ceil(shares);
    // Per image and share: its rows `share * rows..` of every block, one slice a block.
    let mut tasks = Vec::new();
    for (n, image) in out.chunks_mut((kb * oh * ow * LANES).max(1)).enumerate() {
        let mut parts: Vec<Vec<&mut [f32]>> = (0..shares).map(|_| Vec::new()).collect();
        for plane in image.chunks_mut(oh * ow * LANES) {
            for (i, part) in plane.chunks_mut(rows * ow * LANES).enumerate() {
                parts[i].push(part);
            }
        }
        // A map of fewer rows than `shares * rows` leaves the last shares empty.
        let shared = parts
            .into_iter()
            .enumerate()
            .filter(|(_, dst)| !dst.is_empty());
        tasks.extend(shared.map(|(i, dst)| (n, i * rows, dst)));
    }
    let filters = Filters {
        w: &dw.filters.values,
        bias: Some(dw.bias),
        epilogue: dw.epilogue,
        isa,
    };
    let pair = Pair {
        expand_g,
        expand,
        expand_epilogue,
        g,
        filters,
        isa,
    };
    tasks
        .into_par_iter()
        .with_max_len(1)
        .for_each(|(n, r0, mut dst)| {
            let image = &x[n * image_in..][..image_in];
            pair.rows(image, r0, (r0 + rows).min(oh), &mut dst)
        });
    out
}

/// The fused pair's layers, which every task runs over its share of an image's rows.
struct Pair<'a> {
    expand_g: &'a Geometry,
    expand: &'a Packed,
    expand_epilogue: Epilogue,
    g: &'a Geometry,
    filters: Filters<'a>,
    isa: Isa,
}

impl Pair<'_> {
    /// Output rows `r0..r1` of every block of blocked image `x` into `dst` (one slice a
    /// block, from row `r0`).
    fn rows(&self, x: &[f32], r0: usize, r1: usize, dst: &mut [&mut [f32]]) {
        let g = self.g;
        let (w, ow, kb) = (g.in_size[1], g.out_size[1], blocks(g.in_channels));
        let most = bands(g, r0, r1)
            .map(|(o0, o1)| band(g, o0, o1).0.in_size[0])
            .max()
            .unwrap_or(0);
        // Each block's expanded rows, `most` rows apart, from a cache line (the depthwise
        // kernel loads whole 64-byte vectors) and reused from the thread's last call: every
        // row a band reads is written first.
        let stride = most * w * LANES;
        let (mut held_buf, start) = crate::scratch::take_aligned(kb * stride);
        let buf = &mut held_buf[start..][..kb * stride];
        // The input rows the buffer holds.
        let mut held = 0..0;
        for (o0, o1) in bands(g, r0, r1) {
            let (sub, y0) = band(g, o0, o1);
            let y1 = y0 + sub.in_size[0];
            // Rows the last band expanded that this one reads again move to the top.
            let from = if held.contains(&y0) {
                let kept = (held.end - y0) * w * LANES;
                let at = (y0 - held.start) * w * LANES;
                for b in buf.chunks_exact_mut(stride) {
                    b.copy_within(at..at + kept, 0);
                }
                held.end
            } else {
                y0
            };
            if y1 > from {
                let at = (from - y0) * w * LANES;
                let len = (y1 - from) * w * LANES;
                let mut rows: Vec<&mut [f32]> = buf
                    .chunks_exact_mut(stride)
                    .map(|b| &mut b[at..at + len])
                    .collect();
                crate::blocked_direct::pixels_into(
                    self.expand_g,
                    x,
                    self.expand,
                    self.expand_epilogue,
                    (from * w, (y1 - from) * w),
                    &mut rows,
                    self.isa,
                );
            }
            held = y0..y1;
            let need = crate::interleaved::scratch_len(&sub, true);
            let (out_at, out_len) = ((o0 - r0) * ow * LANES, (o1 - o0) * ow * LANES);
            for (b, (expanded, d)) in buf.chunks_exact(stride).zip(dst.iter_mut()).enumerate() {
                let expanded = &expanded[..sub.in_len() * LANES];
                let d = &mut d[out_at..out_at + out_len];
                crate::scratch::with_aligned(need, |scratch| {
                    self.filters
                        .block(&sub, Some(expanded), true, b * LANES, scratch, d)
                });
            }
        }
        crate::scratch::keep(held_buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pool of `threads` workers.
    fn pool(threads: usize) -> rayon::ThreadPool {
        match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
            Ok(pool) => pool,
            Err(e) => panic!("a pool of {threads} threads: {e}"),
        }
    }

    /// A pseudo-random value in [-0.5, 0.5) from an index.
    fn value(i: usize, seed: usize) -> f32 {
        ((i * 7919 + seed * 104_729) % 1000) as f32 / 1000.0 - 0.5
    }

    /// Fused against the two layers one after the other, on `threads` workers: the same
    /// values to the bit (the same kernels on the same rows, only the order of the work
    /// differs).
    fn check(
        batch: usize,
        (cin, cexp): (usize, usize),
        size: [usize; 2],
        (k, s, pad): (usize, usize, [usize; 2]),
        threads: usize,
    ) {
        let workers = pool(threads);
        workers.install(|| {
            let isa = Isa::detect();
            let pixels = size[0] * size[1];
            let x: Vec<f32> = (0..batch * cin * pixels).map(|i| value(i, 1)).collect();
            let xb = crate::blocked::to_blocks(&x, batch, cin, pixels);
            let w: Vec<f32> = (0..cexp * cin).map(|i| value(i, 2)).collect();
            let b: Vec<f32> = (0..cexp).map(|i| value(i, 3)).collect();
            let packed = Packed::new(&w, Some(&b), cexp, cin, 1);
            let ge = Geometry {
                batch,
                in_channels: cin,
                in_size: [1, pixels],
                out_channels: cexp,
                out_size: [1, pixels],
                kernel: [1, 1],
                stride: [1, 1],
                padding: [0, 0],
                dilation: [1, 1],
            };
            let c = blocks(cexp) * LANES;
            let out = |n: usize| (n + pad[0] + pad[1] - k) / s + 1;
            let gd = Geometry {
                batch,
                in_channels: c,
                in_size: size,
                out_channels: c,
                out_size: [out(size[0]), out(size[1])],
                kernel: [k, k],
                stride: [s, s],
                padding: [pad[0], pad[0]],
                dilation: [1, 1],
            };
            let fw: Vec<f32> = (0..cexp * k * k).map(|i| value(i, 4)).collect();
            let filters = BlockedFilters::new(&fw, cexp, k * k);
            let mut bias: Vec<f32> = (0..cexp).map(|i| value(i, 5)).collect();
            bias.resize(c, 0.0);
            assert!(applies(&gd), "the case must take the fused path");
            let relu6 = Epilogue::BiasRelu6;
            let fused = forward(
                &Geometry {
                    in_size: size,
                    out_size: size,
                    ..ge
                },
                &xb,
                &packed,
                relu6,
                Depthwise {
                    g: &gd,
                    filters: &filters,
                    bias: &bias,
                    epilogue: relu6,
                },
                isa,
            );
            let y = crate::blocked_direct::forward(&ge, &xb, &packed, relu6, None, isa);
            let want =
                crate::depthwise::forward_blocked(&gd, &y, &filters, Some(&bias), relu6, isa);
            assert_eq!(fused.len(), want.len());
            let differ = fused
                .iter()
                .zip(want.iter())
                .filter(|(a, b)| a.to_bits() != b.to_bits())
                .count();
            assert_eq!(
                differ, 0,
                "{batch}x {cin}>{cexp} {size:?} k{k} s{s} pad {pad:?} on {threads} threads"
            );
        });
    }

    #[test]
    fn fuses_fewer_images_than_workers_on_wide_maps() {
        let two = pool(2);
        two.install(|| {
            assert!(may_apply(1, 56));
            assert!(!may_apply(2, 112), "as many images as workers");
            assert!(!may_apply(1, 28), "a narrow map");
        });
        let one = pool(1);
        one.install(|| assert!(!may_apply(1, 112), "one worker"));
    }

    #[test]
    fn fused_pairs_give_the_layers_values() {
        // Lite0's wide-map pairs (stride 2 with TensorFlow's padding after, stride 1 "same"),
        // a map whose rows do not split evenly, and more workers.
        check(1, (16, 96), [112, 112], (3, 2, [0, 1]), 2);
        check(1, (24, 144), [56, 56], (3, 1, [1, 1]), 2);
        check(1, (24, 144), [56, 56], (5, 2, [1, 2]), 2);
        check(1, (40, 240), [56, 60], (5, 1, [2, 2]), 2);
        check(1, (40, 240), [57, 57], (3, 2, [0, 1]), 2);
        check(1, (20, 40), [33, 58], (5, 1, [2, 2]), 3);
        check(1, (8, 16), [61, 59], (3, 2, [1, 1]), 4);
        // Several images, fewer than the workers: each image in shares of its rows.
        check(3, (24, 144), [56, 56], (3, 1, [1, 1]), 4);
        check(2, (20, 40), [33, 64], (5, 2, [1, 2]), 3);
    }
}
