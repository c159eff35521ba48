//! A convolution written as its definition: every product term, skipping padding.

use graft_kernels::grad::Geometry;

#[allow(clippy::too_many_arguments)]
pub fn geometry(
    batch: usize,
    chans: [usize; 2],
    size: [usize; 2],
    k: [usize; 2],
    s: usize,
    p: [usize; 2],
    d: usize,
    end_pad: [usize; 2],
) -> Geometry {
    let out = |a: usize| (size[a] + p[a] + end_pad[a] - d * (k[a] - 1) - 1) / s + 1;
    Geometry {
        batch,
        in_channels: chans[0],
        in_size: size,
        out_channels: chans[1],
        out_size: [out(0), out(1)],
        kernel: k,
        stride: [s, s],
        padding: p,
        dilation: [d, d],
    }
}

/// Calls `f(x index, w index, y index)` for every product term `y += w * x` of the convolution
/// with `groups` groups, skipping padding.
pub fn each_term(g: &Geometry, groups: usize, mut f: impl FnMut(usize, usize, usize)) {
    let (cin_g, cout_g) = (g.in_channels / groups, g.out_channels / groups);
    for n in 0..g.batch {
        for co in 0..g.out_channels {
            let group = co / cout_g;
            for ci_g in 0..cin_g {
                let ci = group * cin_g + ci_g;
                for ki in 0..g.kernel[0] {
                    for kj in 0..g.kernel[1] {
                        for oh in 0..g.out_size[0] {
                            for ow in 0..g.out_size[1] {
                                let ih = (oh * g.stride[0] + ki * g.dilation[0]) as isize
                                    - g.padding[0] as isize;
                                let iw = (ow * g.stride[1] + kj * g.dilation[1]) as isize
                                    - g.padding[1] as isize;
                                if ih < 0
                                    || iw < 0
                                    || ih as usize >= g.in_size[0]
                                    || iw as usize >= g.in_size[1]
                                {
                                    continue;
                                }
                                let x_i = ((n * g.in_channels + ci) * g.in_size[0] + ih as usize)
                                    * g.in_size[1]
                                    + iw as usize;
                                let w_i =
                                    ((co * cin_g + ci_g) * g.kernel[0] + ki) * g.kernel[1] + kj;
                                let y_i = ((n * g.out_channels + co) * g.out_size[0] + oh)
                                    * g.out_size[1]
                                    + ow;
                                f(x_i, w_i, y_i);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `y` of a convolution with `groups` groups and an optional bias, by definition.
pub fn forward(
    g: &Geometry,
    groups: usize,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
) -> Vec<f32> {
    let mut y = vec![0.0f32; g.batch * g.out_channels * g.out_len()];
    each_term(g, groups, |x_i, w_i, y_i| y[y_i] += w[w_i] * x[x_i]);
    if let Some(b) = bias {
        for (i, v) in y.iter_mut().enumerate() {
            *v += b[(i / g.out_len()) % g.out_channels];
        }
    }
    y
}
