//! The kernels over activations in blocks of 16 channels (`blocked.rs`): the layout's
//! conversions, 1x1 and depthwise convolutions against the definition of a convolution at
//! every instruction set level this CPU has, with each fused activation and a residual.

mod common;

use common::conv::{forward, geometry};
use common::noise;
use graft_kernels::blocked::{LANES, blocks, from_blocks, to_blocks};
use graft_kernels::blocked_direct;
use graft_kernels::blocked_pointwise::{self, Packed};
use graft_kernels::{Epilogue, Isa, depthwise};

const EPILOGUES: [Epilogue; 3] = [Epilogue::Bias, Epilogue::BiasRelu, Epilogue::BiasRelu6];

fn activate(v: f32, epilogue: Epilogue) -> f32 {
    match epilogue {
        Epilogue::Bias => v,
        Epilogue::BiasRelu => v.max(0.0),
        Epilogue::BiasRelu6 => v.clamp(0.0, 6.0),
    }
}

fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= 1e-4 * scale,
            "{what}: value {i} is {a}, want {b} (scale {scale})"
        );
    }
}

/// Every lane past `c` channels of blocked `y` (`pixels` a block) is zero.
fn assert_padded_lanes_zero(what: &str, y: &[f32], c: usize, pixels: usize) {
    let padded = y.iter().enumerate().filter(|(j, _)| {
        let (lane, block) = (j % LANES, j / (pixels * LANES) % blocks(c));
        block * LANES + lane >= c
    });
    assert!(
        padded.clone().all(|(_, v)| *v == 0.0),
        "{what}: padded lanes"
    );
}

/// The definition's output joined by `skip` before the activation (ResNet's
/// `relu(conv + shortcut)`).
fn joined(want: &[f32], skip: &[f32], epilogue: Epilogue) -> Vec<f32> {
    want.iter()
        .zip(skip)
        .map(|(a, b)| activate(a + b, epilogue))
        .collect()
}

/// `f(threads)` on rayon pools of 1, 2 and 3 threads: the kernels split their work by the
/// pool's size.
fn in_pools(f: impl Fn(usize) + Send + Sync) {
    for threads in [1, 2, 3] {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool")
            .install(|| f(threads));
    }
}

#[test]
fn blocks_round_trip_and_padded_lanes_are_zero() {
    for (batch, c, pixels) in [(2, 24, 7), (1, 16, 1), (3, 5, 10), (1, 40, 49)] {
        let x = noise(batch * c * pixels, c as u64);
        let b = to_blocks(&x, batch, c, pixels);
        assert_eq!(b.len(), batch * blocks(c) * pixels * LANES);
        assert_padded_lanes_zero(&format!("{c} channels"), &b, c, pixels);
        // One value in its place: image n, channel ch, pixel p.
        let (n, ch, p) = (batch - 1, c - 1, pixels - 1);
        let at = ((n * blocks(c) + ch / LANES) * pixels + p) * LANES + ch % LANES;
        assert_eq!(b[at], x[(n * c + ch) * pixels + p]);
        assert_eq!(from_blocks(&b, batch, c, pixels), x, "{c} channels");
    }
}

/// The global average pool from blocks equals the one from planes to the bit (each channel's
/// pixels summed in the same order), including channels that fill only part of a block.
#[test]
fn global_average_pool_from_blocks_equals_the_pool_of_planes() {
    use burn::tensor::{Device, Tensor, TensorData};
    use graft_kernels::blocked::Blocked;
    for (batch, c, [h, w]) in [(1, 1280, [7, 7]), (3, 40, [5, 3]), (2, 7, [1, 1])] {
        let x = TensorData::new(noise(batch * c * h * w, 7 + c as u64), [batch, c, h, w]);
        let x = Tensor::<4>::from_data(x, &Device::flex());
        let Ok(b) = Blocked::from_tensor(x.clone()) else {
            panic!("{c} channels: not blocked");
        };
        let (got, want) = (b.global_avg_pool(), graft_kernels::global_avg_pool(x));
        assert_eq!(got.dims(), [batch, c], "{c} channels");
        let values = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().ok();
        assert_eq!(values(got), values(want), "{c} channels");
    }
}

#[test]
fn pointwise_matches_the_definition_at_every_isa() {
    // Channel counts of whole blocks, of part of one, and ragged (24 and 40: EfficientNet's);
    // output groups of 4, 3, 2 and 1 blocks; pixel counts under one tile, ragged, and over
    // one task (1024 pixels); one image and several.
    let cases = [
        (2, [16, 64], [7, 7]),
        (1, [24, 144], [5, 6]),
        (3, [40, 48], [3, 3]),
        (1, [5, 100], [1, 1]),
        (2, [144, 40], [4, 5]),
        (1, [32, 16], [40, 41]),
        // More input channels than one chunk of the panel (`blocked_direct::CHUNK`): two.
        (1, [1100, 64], [3, 3]),
        // No input channels: the output is the bias (and the epilogue).
        (1, [0, 20], [2, 3]),
    ];
    // On 2 and 3 workers, one image's layers whose input outweighs their weights are split
    // evenly, one run of pixels a worker (`blocked_direct::even_split`); on 1, rayon's pieces.
    in_pools(|_| pointwise_cases(&cases));
}

fn pointwise_cases(cases: &[(usize, [usize; 2], [usize; 2])]) {
    for (i, &(batch, [cin, cout], size)) in cases.iter().enumerate() {
        let g = geometry(batch, [cin, cout], size, [1, 1], 1, [0, 0], 1, [0, 0]);
        let pixels = g.out_len();
        let x = noise(batch * cin * pixels, 10 + i as u64);
        let w = noise(cout * cin, 20 + i as u64);
        let bias: Vec<f32> = noise(cout, 30 + i as u64).iter().map(|v| 3.0 * v).collect();
        let skip = noise(batch * cout * pixels, 40 + i as u64);
        let want = forward(&g, 1, &x, &w, Some(&bias));
        let xb = to_blocks(&x, batch, cin, pixels);
        let packed = Packed::new(&w, Some(&bias), cout, cin, 1);
        let skip_b = to_blocks(&skip, batch, cout, pixels);
        for isa in Isa::available() {
            for epilogue in EPILOGUES {
                let what = format!("pointwise case {i} {isa:?} {epilogue:?}");
                let y =
                    blocked_pointwise::forward(&xb, batch, pixels, &packed, epilogue, None, isa);
                let expect: Vec<f32> = want.iter().map(|&v| activate(v, epilogue)).collect();
                assert_close(&what, &from_blocks(&y, batch, cout, pixels), &expect);
                assert_padded_lanes_zero(&what, &y, cout, pixels);
                let y_skip = blocked_pointwise::forward(
                    &xb,
                    batch,
                    pixels,
                    &packed,
                    epilogue,
                    Some(&skip_b),
                    isa,
                );
                assert_close(
                    &format!("{what} + skip"),
                    &from_blocks(&y_skip, batch, cout, pixels),
                    &joined(&want, &skip, epilogue),
                );
            }
        }
    }
}

#[test]
fn pointwise_keeps_nan() {
    let (cin, cout, pixels) = (16, 16, 7);
    let mut x = noise(cin * pixels, 5);
    x[3] = f32::NAN;
    let w = noise(cout * cin, 6);
    let packed = Packed::new(&w, None, cout, cin, 1);
    for isa in Isa::available() {
        for epilogue in EPILOGUES {
            let y = blocked_pointwise::forward(
                &to_blocks(&x, 1, cin, pixels),
                1,
                pixels,
                &packed,
                epilogue,
                None,
                isa,
            );
            let y = from_blocks(&y, 1, cout, pixels);
            // Pixel 3 of channel 0 is NaN, and so is every output at pixel 3.
            assert!(
                (0..cout).all(|c| y[c * pixels + 3].is_nan()),
                "{isa:?} {epilogue:?}"
            );
            assert!(
                y.iter().filter(|v| v.is_nan()).count() == cout,
                "{isa:?} {epilogue:?}"
            );
        }
    }
}

#[test]
fn depthwise_matches_the_definition_at_every_isa() {
    // (batch, channels, size, kernel, stride, begin padding, end padding, dilation):
    // EfficientNet's 3x3 and 5x5 at stride 1 and 2 with TensorFlow "same" padding, a non-square
    // map, and maps of a few rows (fewer than the bands an image is split into on some pools).
    // Maps of 28 columns and more read the blocked input where it lies, with no padded copy:
    // rows of whole tiles of 7 and 8 and a ragged one, tiles reaching into the padding on both
    // sides, kernel rows skipped at the top and bottom, stride 2 and a dilated kernel.
    let cases = [
        (2, 32, [14, 14], 3, 1, [1, 1], [1, 1], 1),
        (1, 16, [7, 7], 5, 1, [2, 2], [2, 2], 1),
        (3, 48, [16, 16], 3, 2, [0, 0], [1, 1], 1),
        (1, 32, [15, 15], 5, 2, [1, 1], [2, 2], 1),
        (1, 48, [9, 13], 3, 1, [1, 1], [1, 1], 1),
        (1, 16, [2, 9], 3, 1, [1, 1], [1, 1], 1),
        (1, 32, [5, 6], 5, 2, [2, 2], [2, 2], 1),
        (1, 48, [28, 28], 5, 1, [2, 2], [2, 2], 1),
        (2, 16, [12, 32], 3, 1, [1, 1], [1, 1], 1),
        (1, 32, [9, 33], 5, 1, [2, 2], [2, 2], 1),
        (1, 16, [14, 56], 3, 2, [0, 0], [1, 1], 1),
        (1, 48, [11, 29], 5, 2, [1, 1], [2, 2], 1),
        (1, 16, [3, 30], 5, 1, [2, 2], [2, 2], 1),
        (1, 16, [10, 30], 3, 1, [2, 2], [2, 2], 2),
    ];
    // With fewer images than workers, and blocks that do not share out evenly among them,
    // each block is split into bands of rows, one a worker; then the layer runs out of place
    // (a band would read rows its neighbour overwrote).
    in_pools(|threads| {
        for (i, &(batch, c, size, k, s, p, e, d)) in cases.iter().enumerate() {
            let g = geometry(batch, [c, c], size, [k, k], s, p, d, e);
            let x = noise(batch * c * g.in_len(), 50 + i as u64);
            let w = noise(c * k * k, 60 + i as u64);
            let bias: Vec<f32> = noise(c, 70 + i as u64).iter().map(|v| 3.0 * v).collect();
            let want = forward(&g, c, &x, &w, Some(&bias));
            let xb = to_blocks(&x, batch, c, g.in_len());
            let w = depthwise::BlockedFilters::new(&w, c, k * k);
            for isa in Isa::available() {
                for epilogue in EPILOGUES {
                    let what = format!("depthwise case {i} {threads} threads {isa:?} {epilogue:?}");
                    let expect: Vec<f32> = want.iter().map(|&v| activate(v, epilogue)).collect();
                    let y = depthwise::forward_blocked(&g, &xb, &w, Some(&bias), epilogue, isa);
                    let mut own = xb.to_vec();
                    let done = depthwise::forward_blocked_in_place(
                        &g,
                        &mut own,
                        &w,
                        Some(&bias),
                        epilogue,
                        isa,
                    );
                    assert_close(&what, &from_blocks(&y, batch, c, g.out_len()), &expect);
                    let copied = size[1] < 28;
                    if s == 1
                        && copied
                        && (threads / batch <= 1 || (batch * c / 16).is_multiple_of(threads))
                    {
                        assert!(done, "{what}: in place");
                        assert_close(
                            &format!("{what} in place"),
                            &from_blocks(&own, batch, c, g.out_len()),
                            &expect,
                        );
                    } else {
                        assert!(
                            !done && own == *xb,
                            "{what}: in place only at the input's size, a task a block, copied"
                        );
                    }
                }
            }
        }
    });
}

#[test]
fn direct_matches_the_definition_at_every_isa() {
    // (batch, channels, size, kernel, stride, begin padding, end padding): ResNet's 3x3 at
    // stride 1 and 2 and its strided 1x1 shortcut, ragged channel counts (groups of 4, 3, 2
    // and 1 blocks; part of one input block), maps under one tile, rows shorter than a tile
    // (tiles across row ends), a non-square map and more pixels than one task.
    let cases = [
        (2, [64, 64], [7, 7], 3, 1, [1, 1], [1, 1]),
        (1, [24, 40], [9, 13], 3, 1, [1, 1], [1, 1]),
        (3, [32, 48], [8, 8], 3, 2, [1, 1], [1, 1]),
        (1, [16, 112], [15, 15], 3, 2, [1, 1], [0, 0]),
        (2, [40, 32], [14, 14], 1, 2, [0, 0], [0, 0]),
        (1, [5, 16], [2, 3], 3, 1, [1, 1], [1, 1]),
        (1, [16, 16], [40, 41], 3, 1, [1, 1], [1, 1]),
        (1, [16, 20], [6, 6], 2, 1, [0, 0], [1, 1]),
        // Input blocks in two chunks of the panel (`blocked_direct::CHUNK`), the last block
        // part padding; a full group of 4 output blocks and one of 1.
        (1, [120, 70], [5, 6], 3, 1, [1, 1], [1, 1]),
    ];
    in_pools(|_| direct_cases(&cases));
}

/// Each case: (batch, [in, out] channels, size, kernel, stride, begin padding, end padding).
type DirectCase = (
    usize,
    [usize; 2],
    [usize; 2],
    usize,
    usize,
    [usize; 2],
    [usize; 2],
);

fn direct_cases(cases: &[DirectCase]) {
    for (i, &(batch, [cin, cout], size, k, s, p, e)) in cases.iter().enumerate() {
        let g = geometry(batch, [cin, cout], size, [k, k], s, p, 1, e);
        assert!(blocked_direct::applies(&g), "case {i}");
        let (pin, pout) = (g.in_len(), g.out_len());
        let x = noise(batch * cin * pin, 130 + i as u64);
        let w = noise(cout * cin * k * k, 140 + i as u64);
        let bias: Vec<f32> = noise(cout, 150 + i as u64)
            .iter()
            .map(|v| 3.0 * v)
            .collect();
        let skip = noise(batch * cout * pout, 160 + i as u64);
        let want = forward(&g, 1, &x, &w, Some(&bias));
        let xb = to_blocks(&x, batch, cin, pin);
        let skip_b = to_blocks(&skip, batch, cout, pout);
        let packed = Packed::new(&w, Some(&bias), cout, cin, k * k);
        for isa in Isa::available() {
            for epilogue in EPILOGUES {
                let what = format!("direct case {i} {isa:?} {epilogue:?}");
                let y = blocked_direct::forward(&g, &xb, &packed, epilogue, None, isa);
                let expect: Vec<f32> = want.iter().map(|&v| activate(v, epilogue)).collect();
                assert_close(&what, &from_blocks(&y, batch, cout, pout), &expect);
                assert_padded_lanes_zero(&what, &y, cout, pout);
                let y = blocked_direct::forward(&g, &xb, &packed, epilogue, Some(&skip_b), isa);
                let what = format!("{what} + skip");
                let expect = joined(&want, &skip, epilogue);
                assert_close(&what, &from_blocks(&y, batch, cout, pout), &expect);
            }
        }
    }
}

/// An image's output does not depend on the images beside it in the batch, to the bit (a
/// resumed run extracts its remaining images in other batches), though the blocked kernels
/// split their pixels into tasks by the batch's size.
#[test]
fn an_images_blocked_output_does_not_depend_on_its_batch() {
    let (batch, cin, cout, pixels) = (5, 40, 144, 14 * 14);
    let x = to_blocks(&noise(batch * cin * pixels, 90), batch, cin, pixels);
    let packed = Packed::new(&noise(cout * cin, 91), None, cout, cin, 1);
    let isa = Isa::detect();
    let all = blocked_pointwise::forward(&x, batch, pixels, &packed, Epilogue::Bias, None, isa);
    let g = geometry(batch, [32, 32], [14, 14], [5, 5], 2, [1, 1], 1, [2, 2]);
    let xd = to_blocks(&noise(batch * 32 * g.in_len(), 92), batch, 32, g.in_len());
    let w = depthwise::BlockedFilters::new(&noise(32 * 25, 93), 32, 25);
    let dw = depthwise::forward_blocked(&g, &xd, &w, None, Epilogue::Bias, isa);
    let (image_in, image_out) = (blocks(cin) * pixels * LANES, blocks(cout) * pixels * LANES);
    let (dw_in, dw_out) = (32 * g.in_len(), 32 * g.out_len());
    let one = graft_kernels::grad::Geometry { batch: 1, ..g };
    // A strided 3x3 on a 14x14 map: the tasks' pixel spans follow the batch's size.
    let g3 = geometry(batch, [32, 48], [14, 14], [3, 3], 2, [1, 1], 1, [1, 1]);
    let x3 = to_blocks(&noise(batch * 32 * g3.in_len(), 94), batch, 32, g3.in_len());
    let packed3 = Packed::new(&noise(48 * 32 * 9, 95), None, 48, 32, 9);
    let d3 = blocked_direct::forward(&g3, &x3, &packed3, Epilogue::BiasRelu, None, isa);
    let (in3, out3) = (2 * g3.in_len() * LANES, 3 * g3.out_len() * LANES);
    let one3 = graft_kernels::grad::Geometry { batch: 1, ..g3 };
    for n in 0..batch {
        let x1 = &x[n * image_in..][..image_in];
        let alone = blocked_pointwise::forward(x1, 1, pixels, &packed, Epilogue::Bias, None, isa);
        assert!(
            *alone == all[n * image_out..][..image_out],
            "pointwise: image {n}"
        );
        let alone = depthwise::forward_blocked(
            &one,
            &xd[n * dw_in..][..dw_in],
            &w,
            None,
            Epilogue::Bias,
            isa,
        );
        assert!(*alone == dw[n * dw_out..][..dw_out], "depthwise: image {n}");
        let alone = blocked_direct::forward(
            &one3,
            &x3[n * in3..][..in3],
            &packed3,
            Epilogue::BiasRelu,
            None,
            isa,
        );
        assert!(*alone == d3[n * out3..][..out3], "direct: image {n}");
    }
}

/// The stem from planes into blocks against the definition, at every level and activation:
/// EfficientNet-Lite's 3x3/2 with TensorFlow "same" padding (two blocks: one tile of both),
/// ResNet's 7x7/2 with 64 channels (four blocks), one input channel with a 5x5/3 and a ragged
/// block, dilation 2; rows shorter than a tile and longer than one.
#[test]
fn stem_into_blocks_matches_the_definition_at_every_isa() {
    use graft_kernels::blocked_stem;
    let cases = [
        (2, [3, 32], [30, 30], 3, 2, [0, 0], 1, [1, 1]),
        (1, [3, 64], [29, 31], 7, 2, [3, 3], 1, [3, 3]),
        (1, [1, 5], [17, 9], 5, 3, [2, 1], 1, [0, 2]),
        (2, [4, 20], [16, 15], 3, 1, [2, 2], 2, [2, 2]),
    ];
    for (i, &(batch, chans, size, k, s, p, d, e)) in cases.iter().enumerate() {
        let g = geometry(batch, chans, size, [k, k], s, p, d, e);
        assert!(blocked_stem::applies(&g), "case {i}");
        let x = noise(batch * chans[0] * g.in_len(), 100 + i as u64);
        let w = noise(chans[1] * chans[0] * k * k, 110 + i as u64);
        let bias: Vec<f32> = noise(chans[1], 120 + i as u64)
            .iter()
            .map(|v| 3.0 * v)
            .collect();
        let want = forward(&g, 1, &x, &w, Some(&bias));
        let packed = blocked_stem::Packed::new(&g, &w, Some(&bias));
        for isa in Isa::available() {
            for epilogue in EPILOGUES {
                let y = blocked_stem::forward(&g, &x, &packed, epilogue, isa);
                let expect: Vec<f32> = want.iter().map(|&v| activate(v, epilogue)).collect();
                let what = format!("stem case {i} {isa:?} {epilogue:?}");
                assert_close(
                    &what,
                    &from_blocks(&y, batch, chans[1], g.out_len()),
                    &expect,
                );
            }
        }
    }
}

/// Max pooling in blocks against its definition: ResNet's 3x3/2 with padding 1, a window
/// starting in the padding, a ragged block, NaN winning, and an asymmetric end padding.
#[test]
fn max_pool_in_blocks_matches_the_definition() {
    use graft_kernels::blocked::Blocked;
    use graft_kernels::grad::Geometry;
    let cases = [
        (2, 64, [12, 12], [3, 3], [2, 2], [(1, 1), (1, 1)]),
        (1, 20, [7, 9], [2, 3], [1, 2], [(0, 1), (1, 0)]),
    ];
    for (i, &(batch, c, [h, w], kernel, stride, padding)) in cases.iter().enumerate() {
        let mut x = noise(batch * c * h * w, 170 + i as u64);
        x[5] = f32::NAN;
        let g = Geometry::new([batch, c, h, w], c, kernel, stride, padding, [1, 1]);
        let [oh, ow] = g.out_size;
        let mut want = vec![f32::NEG_INFINITY; batch * c * oh * ow];
        for (plane, out) in want.chunks_mut(oh * ow).enumerate() {
            for (p, m) in out.iter_mut().enumerate() {
                let (oy, ox) = (p / ow, p % ow);
                for ky in 0..kernel[0] {
                    for kx in 0..kernel[1] {
                        let iy = (oy * stride[0] + ky) as isize - padding[0].0 as isize;
                        let ix = (ox * stride[1] + kx) as isize - padding[1].0 as isize;
                        if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                            continue;
                        }
                        let v = x[(plane * h + iy as usize) * w + ix as usize];
                        if v > *m || v.is_nan() {
                            *m = v;
                        }
                    }
                }
            }
        }
        let t = burn::tensor::Tensor::<4>::from_data(
            burn::tensor::TensorData::new(x, [batch, c, h, w]),
            &Default::default(),
        );
        let b = Blocked::from_tensor(t).unwrap_or_else(|_| panic!("case {i}: not blocked"));
        let y = b.max_pool2d(kernel, stride, padding).into_tensor();
        assert_eq!(y.dims(), [batch, c, oh, ow], "case {i}");
        let got = y.into_data().try_to_vec::<f32>().unwrap_or_default();
        let nans = |v: &[f32]| v.iter().map(|v| v.is_nan()).collect::<Vec<_>>();
        assert_eq!(nans(&got), nans(&want), "case {i}: NaN wins");
        assert!(
            nans(&want).contains(&true),
            "case {i}: a window holds the NaN"
        );
        let finite = |v: &[f32]| {
            v.iter()
                .map(|v| if v.is_nan() { 0.0 } else { *v })
                .collect::<Vec<_>>()
        };
        assert_close(&format!("max pool case {i}"), &finite(&got), &finite(&want));
    }
}

/// 3x3 stride-1 layers by Winograd over blocks against the definition, at every level and
/// activation, with and without a residual: whole and partial 4x4 tiles (maps of 1x1 up to
/// several task rows), ragged input and output blocks, output groups of 4 blocks and fewer,
/// a batch whose tasks span images.
#[test]
fn winograd_matches_the_definition_at_every_isa() {
    use graft_kernels::blocked_winograd;
    let cases = [
        (2, [16, 16], [8, 8]),
        (1, [20, 40], [7, 7]),
        (3, [32, 80], [14, 13]),
        (1, [64, 64], [5, 9]),
        (2, [48, 16], [1, 1]),
        (1, [16, 24], [2, 3]),
        (1, [16, 16], [30, 29]),
        (5, [64, 128], [7, 7]),
        // ResNet's widest: the longest sums the transforms' rounding goes into, 8 groups.
        (4, [512, 512], [7, 7]),
    ];
    for (i, &(batch, [cin, cout], size)) in cases.iter().enumerate() {
        let g = geometry(batch, [cin, cout], size, [3, 3], 1, [1, 1], 1, [1, 1]);
        assert!(blocked_winograd::applies(&g), "case {i}");
        let pixels = g.out_len();
        let x = noise(batch * cin * pixels, 330 + i as u64);
        // Scaled by fan-in, as trained layers are, so that sums stay near the epilogues' range
        // (ReLU6 clips at 6): unscaled, 512x9 products reach 70, and a clipped output's 1e-4
        // would hold the rounding of values 10x its size.
        let fan_in = 3.0 / ((cin * 9) as f32).sqrt();
        let w: Vec<f32> = noise(cout * cin * 9, 340 + i as u64)
            .iter()
            .map(|v| fan_in * v)
            .collect();
        let bias: Vec<f32> = noise(cout, 350 + i as u64)
            .iter()
            .map(|v| 3.0 * v)
            .collect();
        let skip = noise(batch * cout * pixels, 360 + i as u64);
        let want = forward(&g, 1, &x, &w, Some(&bias));
        let xb = to_blocks(&x, batch, cin, pixels);
        let skip_b = to_blocks(&skip, batch, cout, pixels);
        let packed = blocked_winograd::Packed::new(&w, Some(&bias), cout, cin);
        for isa in Isa::available() {
            for epilogue in EPILOGUES {
                let what = format!("winograd case {i} {isa:?} {epilogue:?}");
                let y = blocked_winograd::forward(&g, &xb, &packed, epilogue, None, isa);
                let expect: Vec<f32> = want.iter().map(|&v| activate(v, epilogue)).collect();
                assert_close(&what, &from_blocks(&y, batch, cout, pixels), &expect);
                assert_padded_lanes_zero(&what, &y, cout, pixels);
                let y = blocked_winograd::forward(&g, &xb, &packed, epilogue, Some(&skip_b), isa);
                let what = format!("{what} + skip");
                let expect = joined(&want, &skip, epilogue);
                assert_close(&what, &from_blocks(&y, batch, cout, pixels), &expect);
            }
        }
    }
}

/// Which of ResNet's 3x3 layers take Winograd: from 16 tiles in the call (so the 7x7 maps from
/// 4 images), the layers on 256 and 512 channels from 2 images (their panels cost more memory
/// than they save time for one), and never a layer wider than ResNet's widest.
#[test]
fn winograd_takes_resnets_layers_from_sixteen_tiles() {
    use graft_kernels::blocked_winograd::worth;
    let layer =
        |batch, c, side| geometry(batch, [c, c], [side, side], [3, 3], 1, [1, 1], 1, [1, 1]);
    assert!(worth(&layer(1, 64, 56)));
    assert!(worth(&layer(1, 128, 28)));
    assert!(!worth(&layer(1, 256, 14)), "one image");
    assert!(worth(&layer(2, 256, 14)));
    assert!(!worth(&layer(3, 512, 7)), "12 tiles");
    assert!(worth(&layer(4, 512, 7)));
    assert!(worth(&layer(32, 512, 7)));
    assert!(!worth(&layer(32, 1024, 7)), "panels past ResNet's widest");
}

/// An empty batch gives an empty output, as the direct kernel's does.
#[test]
fn winograd_over_no_images_is_empty() {
    use graft_kernels::blocked_winograd;
    let g = geometry(0, [16, 32], [8, 8], [3, 3], 1, [1, 1], 1, [1, 1]);
    let packed = blocked_winograd::Packed::new(&noise(32 * 16 * 9, 380), None, 32, 16);
    let y = blocked_winograd::forward(&g, &[], &packed, Epilogue::Bias, None, Isa::detect());
    assert!(y.is_empty());
}

/// An image's Winograd output is the same to the bit whatever batch it comes in, though the
/// tasks' rows of tiles span images in a batch (see
/// `an_images_blocked_output_does_not_depend_on_its_batch`).
#[test]
fn an_images_winograd_output_does_not_depend_on_its_batch() {
    use graft_kernels::blocked_winograd;
    let (batch, cin, cout) = (7, 48, 80);
    let g = geometry(batch, [cin, cout], [10, 10], [3, 3], 1, [1, 1], 1, [1, 1]);
    let pixels = g.out_len();
    let x = to_blocks(&noise(batch * cin * pixels, 370), batch, cin, pixels);
    let packed = blocked_winograd::Packed::new(&noise(cout * cin * 9, 371), None, cout, cin);
    let isa = Isa::detect();
    let all = blocked_winograd::forward(&g, &x, &packed, Epilogue::BiasRelu, None, isa);
    let (image_in, image_out) = (blocks(cin) * pixels * LANES, blocks(cout) * pixels * LANES);
    let one = graft_kernels::grad::Geometry { batch: 1, ..g };
    for n in 0..batch {
        let x1 = &x[n * image_in..][..image_in];
        let alone = blocked_winograd::forward(&one, x1, &packed, Epilogue::BiasRelu, None, isa);
        assert!(*alone == all[n * image_out..][..image_out], "image {n}");
    }
}
