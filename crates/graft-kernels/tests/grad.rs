//! The slice kernels against the definition of a convolution's gradients, written as the plain
//! sums over every output position (slow, obviously right).

mod common;

use common::conv::{each_term, geometry};
use common::noise;
use graft_kernels::grad::{self, Geometry};

/// (dX, dW) by definition.
fn reference(
    g: &Geometry,
    groups: usize,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let mut dx = vec![0.0f32; x.len()];
    let mut dw = vec![0.0f32; w.len()];
    each_term(g, groups, |x_i, w_i, y_i| {
        dx[x_i] += dy[y_i] * w[w_i];
        dw[w_i] += dy[y_i] * x[x_i];
    });
    (dx, dw)
}

fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= 1e-4 * scale,
            "{what}[{i}]: got {a}, want {b}"
        );
    }
}

fn matmul(a: &[f32], b_t: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    // a: [m, k], b_t: [n, k] -> [m, n]
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k).map(|t| a[i * k + t] * b_t[j * k + t]).sum();
        }
    }
    out
}

fn transpose(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; a.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = a[r * cols + c];
        }
    }
    out
}

/// `[batch, c, positions]` -> `[batch, positions, c]` for the geometry's input.
fn nhwc(g: &Geometry, x: &[f32]) -> Vec<f32> {
    per_image(x, g.batch, |image| {
        transpose(image, g.in_channels, g.in_len())
    })
}

/// The inverse of [`nhwc`].
fn nchw(g: &Geometry, x: &[f32]) -> Vec<f32> {
    per_image(x, g.batch, |image| {
        transpose(image, g.in_len(), g.in_channels)
    })
}

fn per_image(x: &[f32], batch: usize, f: impl Fn(&[f32]) -> Vec<f32>) -> Vec<f32> {
    x.chunks_exact(x.len() / batch).flat_map(f).collect()
}

/// Dense gradients through im2row / col2im, the way the autodiff op uses them, one chunk of
/// `chunk` images at a time.
fn dense_via_cols(
    g: &Geometry,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    chunk: usize,
) -> (Vec<f32>, Vec<f32>) {
    let (patch, cout) = (g.patch_len(), g.out_channels);
    let mut dx = vec![0.0f32; x.len()];
    let mut dw = vec![0.0f32; w.len()];
    let image_len = g.in_channels * g.in_len();
    for start in (0..g.batch).step_by(chunk) {
        let images = start..(start + chunk).min(g.batch);
        let width = images.len() * g.out_len();
        let mut dy_c = vec![0.0; cout * width];
        grad::channels_major(g, dy, images.clone(), &mut dy_c);
        let mut rows = vec![f32::NAN; width * patch];
        grad::im2row(g, &nhwc(g, x), images.clone(), &mut rows);
        // dW in (out, kh, kw, in) order, then back to the weight's (out, in, kh, kw).
        let part = matmul(&dy_c, &transpose(&rows, width, patch), cout, width, patch);
        let [kh, kw, cin] = [g.kernel[0], g.kernel[1], g.in_channels];
        for co in 0..cout {
            for ci in 0..cin {
                for t in 0..kh * kw {
                    dw[(co * cin + ci) * kh * kw + t] += part[co * patch + t * cin + ci];
                }
            }
        }
        // W^T [patch, cout] x dY_c [cout, width]
        let dcols = matmul(
            &transpose(w, cout, patch),
            &transpose(&dy_c, cout, width),
            patch,
            cout,
            width,
        );
        // Each input plane takes its channel's rows of the patch matrix.
        let rows_c = g.taps() * width;
        let dx_c = &mut dx[images.start * image_len..images.end * image_len];
        for (index, plane) in dx_c.chunks_mut(g.in_len()).enumerate() {
            let (n, c) = (index / g.in_channels, index % g.in_channels);
            grad::col2im_plane(g, &dcols[c * rows_c..][..rows_c], n, plane);
        }
    }
    (dx, dw)
}

#[test]
fn dense_gradients_through_im2row_and_col2im_match_the_definition() {
    let cases = [
        // batch, [in, out], size, kernel, stride, pad begin, dilation, pad end
        (2, [3, 4], [7, 6], [3, 3], 1, [1, 1], 1, [1, 1]),
        (3, [2, 5], [9, 9], [7, 7], 2, [3, 3], 1, [3, 3]),
        (2, [4, 3], [6, 5], [1, 1], 2, [0, 0], 1, [0, 0]),
        (2, [3, 2], [8, 7], [3, 3], 2, [0, 0], 1, [1, 1]),
        (1, [2, 2], [9, 8], [3, 2], 1, [2, 1], 2, [2, 0]),
    ];
    for (i, &(b, ch, size, k, s, p, d, e)) in cases.iter().enumerate() {
        let g = geometry(b, ch, size, k, s, p, d, e);
        let x = noise(b * ch[0] * g.in_len(), 1 + i as u64);
        let w = noise(ch[1] * g.patch_len(), 2 + i as u64);
        let dy = noise(b * ch[1] * g.out_len(), 3 + i as u64);
        let (want_dx, want_dw) = reference(&g, 1, &x, &w, &dy);
        for chunk in [1, 2, b] {
            let (dx, dw) = dense_via_cols(&g, &x, &w, &dy, chunk);
            assert_close(&format!("case {i} chunk {chunk} dx"), &dx, &want_dx);
            assert_close(&format!("case {i} chunk {chunk} dw"), &dw, &want_dw);
        }
    }
}

#[test]
fn depthwise_gradients_match_the_definition() {
    let cases = [
        (2, 3, [7, 6], [3, 3], 1, [1, 1], 1, [1, 1]),
        (2, 4, [9, 8], [5, 5], 2, [1, 1], 1, [2, 2]),
        (1, 2, [8, 8], [3, 3], 2, [0, 0], 1, [1, 1]),
        (2, 2, [6, 7], [3, 3], 1, [2, 2], 2, [2, 2]),
        (1, 3, [21, 19], [3, 3], 1, [1, 1], 1, [1, 1]),
    ];
    for (i, &(b, c, size, k, s, p, d, e)) in cases.iter().enumerate() {
        let g = geometry(b, [c, c], size, k, s, p, d, e);
        let x = noise(b * c * g.in_len(), 10 + i as u64);
        let w = noise(c * g.taps(), 20 + i as u64);
        let dy = noise(b * c * g.out_len(), 30 + i as u64);
        let (want_dx, want_dw) = reference(&g, c, &x, &w, &dy);
        // The kernels are channels-last: x, dy as [n, h, w, c], weights and dW as [taps, c].
        let out_geometry = Geometry {
            in_channels: c,
            in_size: g.out_size,
            ..g
        };
        let dy_nhwc = nhwc(&out_geometry, &dy);
        let dx = grad::depthwise_input_grad(&g, &transpose(&w, c, g.taps()), &dy_nhwc);
        let dw = grad::depthwise_weight_grad(&g, &nhwc(&g, &x), &dy_nhwc);
        let in_geometry = Geometry {
            in_size: g.in_size,
            ..g
        };
        assert_close(&format!("case {i} dx"), &nchw(&in_geometry, &dx), &want_dx);
        assert_close(
            &format!("case {i} dw"),
            &transpose(&dw, g.taps(), c),
            &want_dw,
        );
    }
}

/// The weight gradient sums over images; the order of that sum must not follow the thread
/// schedule, or the same training step gives different weights run to run (a scratch run's
/// depthwise weights differed between two runs with one seed when steps ran on rayon's workers).
#[test]
fn the_depthwise_weight_gradient_does_not_depend_on_the_threads() {
    let (b, c) = (12, 40);
    let g = geometry(b, [c, c], [9, 9], [3, 3], 1, [1, 1], 1, [1, 1]);
    let out_geometry = Geometry {
        in_channels: c,
        in_size: g.out_size,
        ..g
    };
    let x = nhwc(&g, &noise(b * c * g.in_len(), 3));
    let dy = nhwc(&out_geometry, &noise(b * c * g.out_len(), 4));
    let on = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool");
        pool.install(|| grad::depthwise_weight_grad(&g, &x, &dy))
    };
    let one = on(1);
    for threads in [2, 3, 5] {
        for _ in 0..3 {
            assert!(on(threads) == one, "{threads} threads");
        }
    }
}

#[test]
fn bias_gradient_sums_over_images_and_positions() {
    let g = geometry(3, [2, 4], [5, 5], [3, 3], 1, [1, 1], 1, [1, 1]);
    let dy = noise(3 * 4 * g.out_len(), 7);
    let mut want = vec![0.0f32; 4];
    for (i, v) in dy.iter().enumerate() {
        want[(i / g.out_len()) % 4] += v;
    }
    assert_close("bias", &grad::bias_grad(&g, &dy), &want);
}
