//! What a convolution applies to each output value as it writes it: the bias, then optionally
//! ReLU or ReLU6, so that a convolution + activation costs no extra pass over the activation.

/// The activation fused into a convolution's output (`Bias` alone: none). NaN is kept by each, as by burn's and
/// PyTorch's activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Epilogue {
    Bias,
    BiasRelu,
    BiasRelu6,
}

impl Epilogue {
    /// The epilogue of one value that already includes its bias.
    #[inline(always)]
    pub(crate) fn apply(self, v: f32) -> f32 {
        match self {
            Epilogue::Bias => v,
            // NaN fails the comparison and is kept.
            Epilogue::BiasRelu => {
                if v < 0.0 {
                    0.0
                } else {
                    v
                }
            }
            // f32::clamp returns NaN for NaN.
            Epilogue::BiasRelu6 => v.clamp(0.0, 6.0),
        }
    }

    /// [`Epilogue::apply`] on a vector of values that include their bias, NaN kept the same way.
    ///
    /// With x86 vectors, `max(0, v)` and `min(6, v)` with `v` second: `vmaxps`/`vminps` give
    /// their second operand when either is NaN, so NaN is kept in two instructions, where a
    /// comparison and a select per bound took four on the ports the multiply-adds use. `pulp`'s
    /// scalar `max` is `f32::max`, which drops NaN, so that level compares and selects.
    #[inline(always)]
    pub(crate) fn apply_simd<S: pulp::Simd>(self, simd: S, v: S::f32s) -> S::f32s {
        // A function, not a closure: a closure is not marked `inline(always)` and may be
        // compiled on its own, outside the vector context (`Isa::run`).
        #[inline(always)]
        fn relu<S: pulp::Simd>(simd: S, v: S::f32s) -> S::f32s {
            let zero = simd.splat_f32s(0.0);
            if S::IS_SCALAR {
                simd.select_f32s(simd.less_than_f32s(v, zero), zero, v)
            } else {
                simd.max_f32s(zero, v)
            }
        }
        match self {
            Epilogue::Bias => v,
            Epilogue::BiasRelu => relu(simd, v),
            Epilogue::BiasRelu6 => {
                let (six, v) = (simd.splat_f32s(6.0), relu(simd, v));
                if S::IS_SCALAR {
                    simd.select_f32s(simd.greater_than_f32s(v, six), six, v)
                } else {
                    simd.min_f32s(six, v)
                }
            }
        }
    }

    /// `dst[i] = apply(src[i] + b)`; the match is outside the loop so each arm vectorises.
    #[inline(always)]
    pub(crate) fn write(self, dst: &mut [f32], src: &[f32], b: f32) {
        let pairs = dst.iter_mut().zip(src);
        match self {
            Epilogue::Bias => pairs.for_each(|(d, s)| *d = s + b),
            Epilogue::BiasRelu => pairs.for_each(|(d, s)| *d = Epilogue::BiasRelu.apply(s + b)),
            Epilogue::BiasRelu6 => pairs.for_each(|(d, s)| *d = Epilogue::BiasRelu6.apply(s + b)),
        }
    }

    /// `v = apply(v + b)` in place.
    #[inline(always)]
    pub(crate) fn finish(self, values: &mut [f32], b: f32) {
        match self {
            Epilogue::Bias => values.iter_mut().for_each(|v| *v += b),
            Epilogue::BiasRelu => values
                .iter_mut()
                .for_each(|v| *v = Epilogue::BiasRelu.apply(*v + b)),
            Epilogue::BiasRelu6 => values
                .iter_mut()
                .for_each(|v| *v = Epilogue::BiasRelu6.apply(*v + b)),
        }
    }
}
