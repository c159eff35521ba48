//! The forward pass of a dense convolution with few input channels (a network's stem: ResNet's
//! 7x7/2 and EfficientNet-Lite's 3x3/2 over RGB, VGG's first 3x3), directly in NCHW.
//!
//! As im2col and a matrix product, a stem's patch matrix is 27-147 rows by every output
//! position: written and read back for a product whose inner dimension is too short for the
//! matrix kernel's blocking (ResNet's stem ran at about 70 GFLOP/s in the network, ORT's direct
//! kernel at 161). Here each input plane is padded and split into its stride phases once, as
//! the depthwise kernel does (`depthwise::Layout`), so that every kernel tap reads a contiguous
//! run of inputs for a run of output positions. A tile of [`COUTS`] output channels by 4
//! AVX-512 vectors of positions then accumulates every tap of every input channel in
//! registers: per tap 4 loads and 6 broadcast weights feed 24 multiply-adds (4 channels: 1.8 ms
//! for ResNet's stem at batch 1, 6: 1.5, 8: 1.7-3.2, all 32 registers taken). Positions run over
//! each output plane in the phases' padded width; the padding columns are computed and
//! dropped when the tile is written home with its bias and activation.

use pulp::{Simd, WithSimd};
use rayon::prelude::*;

use crate::depthwise::{Layout, scatter};
use crate::epilogue::Epilogue;
use crate::grad::Geometry;
use crate::isa::Isa;
use crate::scratch;

/// Output channels a tile spans (the last block's missing ones are computed with zero weights
/// and dropped).
const COUTS: usize = 6;
/// Positions a tile spans at most (4 AVX-512 vectors); every phase has this much slack past
/// its last output position.
const WIDEST: usize = 64;
/// At most this many input channels: more make im2col's inner dimension long enough for the
/// matrix kernel.
const MAX_IN_CHANNELS: usize = 4;

/// Whether [`forward`] takes convolution `g`: dense (`groups == 1`, which the caller checks),
/// few input channels, and not a 1x1 (a plain product).
pub fn applies(g: &Geometry) -> bool {
    g.in_channels <= MAX_IN_CHANNELS && g.kernel != [1, 1] && g.out_len() > 0
}

/// `y = epilogue(conv(x, w) + bias)` for `x` `[batch, in, h, w]` and `w` `[out, in, kh, kw]`.
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
    let (cin, cout, taps) = (g.in_channels, g.out_channels, g.taps());
    assert!(x.len() >= g.batch * cin * g.in_len(), "stem: x too short");
    assert!(w.len() >= cout * cin * taps, "stem: w too short");
    assert!(bias.is_none_or(|b| b.len() >= cout), "stem: bias too short");
    let out_len = g.out_len();
    let mut out = crate::outputs::take(g.batch * cout * out_len);
    if out.is_empty() {
        return out;
    }
    let l = Layout::of(g).with_slack(WIDEST);
    let [oh_len, ow_len] = g.out_size;
    // Every output position in the phases' padded width, rounded up to whole tiles.
    let flat = (oh_len * l.cols).next_multiple_of(WIDEST);
    // The weights of each block of output channels as [tap][COUTS], zero past the last channel.
    let blocks = cout.div_ceil(COUTS);
    let mut packed = vec![0f32; blocks * cin * taps * COUTS];
    for co in 0..cout {
        for t in 0..cin * taps {
            packed[((co / COUTS) * cin * taps + t) * COUTS + co % COUTS] = w[co * cin * taps + t];
        }
    }
    let starts = tap_starts(g, &l);
    out.par_chunks_mut(cout * out_len)
        .enumerate()
        .for_each(|(n, image)| {
            let mut split = scratch::take(cin * l.len(g));
            let x = &x[n * cin * g.in_len()..][..cin * g.in_len()];
            for (c, plane) in x.chunks_exact(g.in_len()).enumerate() {
                scatter(g, plane, &l, &mut split[c * l.len(g)..][..l.len(g)]);
            }
            let phases = &split[..];
            image
                .par_chunks_mut(COUTS * out_len)
                .enumerate()
                .for_each(|(b, dst)| {
                    let mut sums = scratch::take(COUTS * flat);
                    isa.dispatch(Block {
                        starts: &starts,
                        phases,
                        weights: &packed[b * cin * taps * COUTS..][..cin * taps * COUTS],
                        flat,
                        sums: &mut sums,
                    });
                    isa.run(
                        #[inline(always)]
                        || {
                            for (q, plane) in dst.chunks_exact_mut(out_len).enumerate() {
                                let bias = bias.map_or(0.0, |v| v[b * COUTS + q]);
                                let sums = &sums[q * flat..];
                                for (row, src) in
                                    plane.chunks_exact_mut(ow_len).zip(sums.chunks(l.cols))
                                {
                                    epilogue.write(row, &src[..ow_len], bias);
                                }
                            }
                        },
                    );
                    scratch::keep(sums);
                });
            scratch::keep(split);
        });
    out
}

/// Where each tap's run of inputs starts in an image's phase-split planes (`l` per input
/// channel, one after another), input channel by input channel, in the weights' tap order.
fn tap_starts(g: &Geometry, l: &Layout) -> Vec<usize> {
    let [kh, kw] = g.kernel;
    let [sh, sw] = g.stride;
    let [dh, dw] = g.dilation;
    let len = l.len(g);
    (0..g.in_channels)
        .flat_map(|c| {
            (0..kh).flat_map(move |ki| {
                (0..kw).map(move |kj| {
                    let (ri, ci) = (ki * dh, kj * dw);
                    c * len + ((ri % sh) * sw + ci % sw) * l.phase + (ri / sh) * l.cols + ci / sw
                })
            })
        })
        .collect()
}

/// One block of [`COUTS`] output channels over one image: `sums[q * flat + p]` for channel `q`
/// and flat position `p` (`oy * l.cols + ox`).
struct Block<'a> {
    /// [`tap_starts`].
    starts: &'a [usize],
    phases: &'a [f32],
    /// `[cin * taps][COUTS]`.
    weights: &'a [f32],
    flat: usize,
    sums: &'a mut [f32],
}

impl Block<'_> {
    #[inline(always)]
    fn run<S: Simd, const V: usize>(self, simd: S) {
        let Block {
            starts,
            phases,
            weights,
            flat,
            sums,
        } = self;
        let wide = V * S::F32_LANES;
        for p0 in (0..flat).step_by(wide) {
            let mut acc = [[simd.splat_f32s(0.0); V]; COUTS];
            for (&start, w) in starts.iter().zip(weights.chunks_exact(COUTS)) {
                let xs = vectors::<S, V>(&phases[start + p0..]);
                for (acc, &w) in acc.iter_mut().zip(w) {
                    let w = simd.splat_f32s(w);
                    for (acc, x) in acc.iter_mut().zip(xs) {
                        *acc = simd.mul_add_e_f32s(w, *x, *acc);
                    }
                }
            }
            for (q, acc) in acc.iter().enumerate() {
                *vectors_mut::<S, V>(&mut sums[q * flat + p0..]) = *acc;
            }
        }
    }
}

impl WithSimd for Block<'_> {
    type Output = ();

    /// 4 vectors a tile with AVX-512 (24 accumulators of 32 registers), else 2 (12 of 16).
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        match S::F32_LANES {
            16.. => self.run::<S, 4>(simd),
            _ => self.run::<S, 2>(simd),
        }
    }
}

/// The first `V` vectors of `s`.
#[inline(always)]
fn vectors<S: Simd, const V: usize>(s: &[f32]) -> &[S::f32s; V] {
    match S::as_simd_f32s(s)
        .0
        .get(..V)
        .and_then(|v| v.try_into().ok())
    {
        Some(v) => v,
        None => panic!("stem: a tile past the end of its operand"),
    }
}

#[inline(always)]
fn vectors_mut<S: Simd, const V: usize>(s: &mut [f32]) -> &mut [S::f32s; V] {
    match S::as_mut_simd_f32s(s)
        .0
        .get_mut(..V)
        .and_then(|v| v.try_into().ok())
    {
        Some(v) => v,
        None => panic!("stem: a tile past the end of its operand"),
    }
}
