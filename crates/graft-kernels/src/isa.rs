//! Which vector instructions graft's own loops run with, chosen at run time.
//!
//! The kernels are written as plain loops over slices; the compiler vectorises them for the
//! instruction set of the function they are compiled in. The crate is built for the baseline
//! x86-64 target (SSE2, 4 floats a vector), so each kernel's work is handed to [`Isa::run`],
//! which calls it from a function compiled for AVX-512 or AVX2+FMA when the CPU has them
//! (`pulp`'s dispatch, which `gemm` also builds on): the same source, three builds, and no
//! `unsafe` here. The choice is a value, so the tests run every level the machine has against
//! the scalar one.

/// An instruction set level the kernels can be run with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// x86-64-v4: AVX-512 (F, BW, CD, DQ, VL), 16 floats a vector.
    Avx512,
    /// x86-64-v3: AVX2 and FMA, 8 floats a vector.
    Avx2,
    /// The build's baseline (SSE2 on x86-64; whatever the target has elsewhere).
    Baseline,
}

impl Isa {
    /// The widest level this CPU supports. Asked once a process: kernels call this for every
    /// tensor they touch, and [`Isa::available`] builds a list each time.
    pub fn detect() -> Isa {
        static DETECTED: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *DETECTED.get_or_init(|| Isa::available()[0])
    }

    /// Every level this CPU supports, widest first (the baseline always).
    pub fn available() -> Vec<Isa> {
        let mut levels = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if pulp::x86::V4::try_new().is_some() {
                levels.push(Isa::Avx512);
            }
            if pulp::x86::V3::try_new().is_some() {
                levels.push(Isa::Avx2);
            }
        }
        levels.push(Isa::Baseline);
        levels
    }

    /// Runs `f` compiled for this level; a level the CPU lacks falls back to the baseline.
    /// `f` and what it calls should be `#[inline(always)]` so they are compiled in that context.
    /// A closure cannot be marked so, and the compiler may keep it a function of its own,
    /// compiled for the baseline: the classifier's band sums (`linear.rs`) were SSE code that
    /// way. For a loop whose speed matters, use [`Isa::dispatch`] with a small op type whose
    /// `with_simd` is `#[inline(always)]`, and check the `objdump` for the level's registers.
    #[inline(always)]
    pub fn run<R>(self, f: impl FnOnce() -> R) -> R {
        self.dispatch(Call(f))
    }

    /// Runs `op` with this level's vectors (`pulp`'s [`pulp::Simd`]): for kernels written with
    /// explicit vectors rather than loops for the compiler (which left a tile's accumulators
    /// on the stack). A level the CPU lacks falls back to the scalar one.
    #[inline(always)]
    pub fn dispatch<Op: pulp::WithSimd>(self, op: Op) -> Op::Output {
        #[cfg(target_arch = "x86_64")]
        match self {
            Isa::Avx512 => {
                if let Some(simd) = pulp::x86::V4::try_new() {
                    return pulp::Simd::vectorize(simd, op);
                }
            }
            Isa::Avx2 => {
                if let Some(simd) = pulp::x86::V3::try_new() {
                    return pulp::Simd::vectorize(simd, op);
                }
            }
            Isa::Baseline => {}
        }
        pulp::Simd::vectorize(pulp::Scalar::new(), op)
    }
}

/// A closure as a [`pulp::WithSimd`] op that ignores the vectors it is given: [`Isa::run`]'s
/// kernels are plain loops the compiler vectorises in the op's context.
struct Call<F>(F);

impl<R, F: FnOnce() -> R> pulp::WithSimd for Call<F> {
    type Output = R;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> R {
        (self.0)()
    }
}
