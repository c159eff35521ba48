//! The direct inference kernels (depthwise, 1x1 over NCHW, and stems with few input channels)
//! against the definition of a convolution, at every instruction set level this CPU has, with
//! each fused activation.

mod common;

use common::conv::{forward, geometry};
use common::noise;
use graft_kernels::grad::Geometry;
use graft_kernels::{Epilogue, Isa, depthwise, pointwise, stem};

fn activate(y: &[f32], epilogue: Epilogue) -> Vec<f32> {
    y.iter()
        .map(|&v| match epilogue {
            Epilogue::Bias => v,
            Epilogue::BiasRelu => v.max(0.0),
            Epilogue::BiasRelu6 => v.clamp(0.0, 6.0),
        })
        .collect()
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

const EPILOGUES: [Epilogue; 3] = [Epilogue::Bias, Epilogue::BiasRelu, Epilogue::BiasRelu6];

/// The direct kernels' common signature.
type Kernel = fn(&Geometry, &[f32], &[f32], Option<&[f32]>, Epilogue, Isa) -> Vec<f32>;

/// `kernel` against the definition of a convolution with `groups` groups: with `bias` at every
/// level and activation, and without a bias.
fn assert_matches(
    what: &str,
    kernel: Kernel,
    (g, groups): (&Geometry, usize),
    x: &[f32],
    w: &[f32],
    bias: &[f32],
) {
    let want = forward(g, groups, x, w, Some(bias));
    for isa in Isa::available() {
        for epilogue in EPILOGUES {
            let got = kernel(g, x, w, Some(bias), epilogue, isa);
            let what = format!("{what} {isa:?} {epilogue:?}");
            assert_close(&what, &got, &activate(&want, epilogue));
        }
    }
    let no_bias = kernel(g, x, w, None, Epilogue::Bias, Isa::detect());
    assert_close(
        &format!("{what} no bias"),
        &no_bias,
        &forward(g, groups, x, w, None),
    );
}

/// Each case: (batch, channels, size, kernel, stride, begin padding, dilation, end padding).
type Case = (
    usize,
    usize,
    [usize; 2],
    usize,
    usize,
    [usize; 2],
    usize,
    [usize; 2],
);

#[test]
fn depthwise_matches_the_definition_at_every_isa() {
    let cases: [Case; 11] = [
        // EfficientNet-Lite's: 3x3 and 5x5, stride 1 and 2, TensorFlow "same" padding.
        (2, 5, [14, 14], 3, 1, [1, 1], 1, [1, 1]),
        (1, 3, [7, 7], 5, 1, [2, 2], 1, [2, 2]),
        (3, 4, [16, 16], 3, 2, [0, 0], 1, [1, 1]),
        (2, 3, [15, 15], 5, 2, [1, 1], 1, [2, 2]),
        // Odd shapes: non-square, stride 3, dilation 2, padding larger than the kernel reach.
        (1, 2, [9, 13], 3, 3, [1, 2], 1, [0, 1]),
        (2, 3, [11, 10], 3, 1, [2, 2], 2, [2, 2]),
        (1, 2, [5, 6], 3, 2, [3, 1], 1, [3, 2]),
        // A 1x1 map, and 64 planes of 2x2 in one task.
        (1, 4, [1, 1], 3, 1, [1, 1], 1, [1, 1]),
        (4, 16, [2, 2], 3, 1, [1, 1], 1, [1, 1]),
        // Planes longer than one strip of the accumulator (1024 floats), stride 1 and 2.
        (1, 2, [40, 41], 3, 1, [1, 1], 1, [1, 1]),
        (1, 2, [80, 77], 5, 2, [1, 1], 1, [2, 2]),
    ];
    // Each case also with 32 channels: two blocks of the interleaved path (`interleaved.rs`),
    // which takes whole blocks of 16; the listed counts take the plane path.
    let both = cases.iter().flat_map(|&(b, c, size, k, s, p, d, e)| {
        [(b, c, size, k, s, p, d, e), (b, 32, size, k, s, p, d, e)]
    });
    for (i, (b, c, size, k, s, p, d, e)) in both.enumerate() {
        let g = geometry(b, [c, c], size, [k, k], s, p, d, e);
        let x = noise(b * c * g.in_len(), 1 + i as u64);
        let w = noise(c * k * k, 100 + i as u64);
        let bias = noise(c, 200 + i as u64)
            .iter()
            .map(|v| 3.0 * v)
            .collect::<Vec<_>>();
        let what = format!("depthwise case {} with {c} channels", i / 2);
        assert_matches(&what, depthwise::forward, (&g, c), &x, &w, &bias);
        if g.out_size == g.in_size && s == 1 {
            assert_matches(
                &format!("{what} in place"),
                in_place,
                (&g, c),
                &x,
                &w,
                &bias,
            );
        } else {
            let mut y = x.clone();
            let done =
                depthwise::forward_in_place(&g, &mut y, &w, None, Epilogue::Bias, Isa::detect());
            assert!(
                !done && y == x,
                "{what}: in place only when the output has the input's size"
            );
        }
    }
}

/// [`depthwise::forward_in_place`] over a copy of `x`, which it must accept.
fn in_place(
    g: &Geometry,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    epilogue: Epilogue,
    isa: Isa,
) -> Vec<f32> {
    let mut y = x.to_vec();
    assert!(depthwise::forward_in_place(
        g, &mut y, w, bias, epilogue, isa
    ));
    y
}

/// Each case: (batch, [in, out] channels, size, kernel, stride, begin padding, dilation, end
/// padding).
type StemCase = (
    usize,
    [usize; 2],
    [usize; 2],
    usize,
    usize,
    [usize; 2],
    usize,
    [usize; 2],
);

#[test]
fn stems_match_the_definition_at_every_isa() {
    let cases: [StemCase; 6] = [
        // ResNet's 7x7/2 (64 channels: 10 blocks of 6 and one of 4), on a small map.
        (2, [3, 64], [29, 31], 7, 2, [3, 3], 1, [3, 3]),
        // EfficientNet-Lite's 3x3/2 with TensorFlow "same" padding, VGG's 3x3/1.
        (1, [3, 32], [30, 30], 3, 2, [0, 0], 1, [1, 1]),
        (3, [3, 8], [12, 13], 3, 1, [1, 1], 1, [1, 1]),
        // One or four input channels, an output channel count under one block, stride 3,
        // dilation 2, and a map whose positions are fewer than one tile.
        (1, [1, 5], [17, 9], 5, 3, [2, 1], 1, [0, 2]),
        (2, [4, 7], [16, 15], 3, 1, [2, 2], 2, [2, 2]),
        (1, [2, 6], [3, 4], 3, 1, [1, 1], 1, [1, 1]),
    ];
    for (i, &(b, chans, size, k, s, p, d, e)) in cases.iter().enumerate() {
        let g = geometry(b, chans, size, [k, k], s, p, d, e);
        assert!(stem::applies(&g), "case {i}");
        let x = noise(b * chans[0] * g.in_len(), 30 + i as u64);
        let w = noise(chans[1] * chans[0] * k * k, 40 + i as u64);
        let bias = noise(chans[1], 50 + i as u64);
        assert_matches(
            &format!("stem case {i}"),
            stem::forward,
            (&g, 1),
            &x,
            &w,
            &bias,
        );
    }
}

fn pointwise_geometry(batch: usize, chans: [usize; 2], size: [usize; 2]) -> Geometry {
    geometry(batch, chans, size, [1, 1], 1, [0, 0], 1, [0, 0])
}

#[test]
fn pointwise_matches_the_definition_at_every_isa() {
    // Batch 1 (split by bands of output channels, one band shorter), a batch larger than the
    // threads, and a map wider than one block of columns (1024) with a ragged last block.
    let cases = [
        (1, [16, 100], [14, 14]),
        (5, [8, 24], [7, 7]),
        (2, [3, 5], [40, 41]),
    ];
    for (i, &(b, chans, size)) in cases.iter().enumerate() {
        let g = pointwise_geometry(b, chans, size);
        let x = noise(b * chans[0] * g.in_len(), 10 + i as u64);
        let w = noise(chans[0] * chans[1], 20 + i as u64);
        let bias = noise(chans[1], 30 + i as u64);
        let what = format!("pointwise case {i}");
        assert_matches(&what, pointwise::forward, (&g, 1), &x, &w, &bias);
    }
}

/// An image's output does not depend on the images beside it in the batch, to the bit: a
/// resumed run extracts its remaining images in other batches than the uninterrupted run.
#[test]
fn an_images_output_does_not_depend_on_its_batch() {
    let (batch, size) = (5, [14, 14]);
    let pw = pointwise_geometry(batch, [24, 144], size);
    let dw = geometry(batch, [24, 24], size, [5, 5], 2, [1, 1], 1, [2, 2]);
    let st = geometry(batch, [3, 16], size, [3, 3], 2, [0, 0], 1, [1, 1]);
    for (name, g) in [("pointwise", pw), ("depthwise", dw), ("stem", st)] {
        let x = noise(batch * g.in_channels * g.in_len(), 7);
        let w = noise(
            g.out_channels * g.in_channels.min(g.out_channels) * g.taps(),
            8,
        );
        let run = |g: &Geometry, x: &[f32]| match name {
            "pointwise" => pointwise::forward(g, x, &w, None, Epilogue::Bias, Isa::detect()),
            "stem" => stem::forward(g, x, &w, None, Epilogue::Bias, Isa::detect()),
            _ => depthwise::forward(g, x, &w, None, Epilogue::Bias, Isa::detect()),
        };
        let all = run(&g, &x);
        let one = Geometry { batch: 1, ..g };
        let (in_len, out_len) = (g.in_channels * g.in_len(), g.out_channels * g.out_len());
        for n in 0..batch {
            let alone = run(&one, &x[n * in_len..][..in_len]);
            assert!(alone == all[n * out_len..][..out_len], "{name}: image {n}");
        }
    }
}

/// NaN passes through every activation, as burn's and PyTorch's do.
#[test]
fn activations_keep_nan() {
    let g = geometry(1, [1, 1], [3, 3], [1, 1], 1, [0, 0], 1, [0, 0]);
    let mut x = vec![1.0f32; 9];
    x[4] = f32::NAN;
    // 16 channels: the interleaved depthwise path; the NaN in the last plane.
    let g16 = geometry(1, [16, 16], [3, 3], [1, 1], 1, [0, 0], 1, [0, 0]);
    let mut x16 = vec![1.0f32; 16 * 9];
    x16[15 * 9 + 4] = f32::NAN;
    for isa in Isa::available() {
        for epilogue in EPILOGUES {
            let y = depthwise::forward(&g, &x, &[1.0], None, epilogue, isa);
            assert!(y[4].is_nan(), "{isa:?} {epilogue:?}");
            let y = depthwise::forward(&g16, &x16, &[1.0; 16], None, epilogue, isa);
            assert!(y[15 * 9 + 4].is_nan(), "16 channels {isa:?} {epilogue:?}");
            let y = pointwise::forward(&g, &x, &[1.0], None, epilogue, isa);
            assert!(y[4].is_nan(), "{isa:?} {epilogue:?}");
        }
    }
}

#[test]
fn this_cpu_reports_its_widest_level_first() {
    let levels = Isa::available();
    assert_eq!(levels[0], Isa::detect());
    assert_eq!(levels.last(), Some(&Isa::Baseline));
}
