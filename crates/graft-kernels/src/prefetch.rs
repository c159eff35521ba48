//! Asking the cache for weights a thread is about to read, while it computes: at batch 1 a
//! layer's weights come from memory, not cache, and a kernel reads them faster than memory
//! delivers them on demand (`blocked_direct.rs`). The crate's one use of a prefetch
//! instruction, behind one safe function.

/// Floats in a 64-byte cache line.
const LINE: usize = 16;

/// Asks for the cache lines of `data` to be brought into L2 (`prefetcht1`), without waiting for
/// them. A no-op off x86-64.
#[inline(always)]
pub(crate) fn into_l2(data: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in data.chunks(LINE) {
        use std::arch::x86_64::{_MM_HINT_T1, _mm_prefetch};
        // SAFETY: a prefetch reads and writes no memory that Rust can observe and never
        // faults, whatever its address (here one inside `data`); SSE, which it needs, is part
        // of x86-64's baseline.
        #[allow(unsafe_code)]
        unsafe {
            _mm_prefetch::<_MM_HINT_T1>(line.as_ptr().cast())
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

/// Weights to bring into L2 a few lines at a time, spread over a loop's steps.
pub(crate) struct Ahead<'a> {
    rest: &'a [f32],
    step: usize,
}

impl<'a> Ahead<'a> {
    /// `data` over `steps` calls of [`Ahead::step`].
    pub(crate) fn new(data: &'a [f32], steps: usize) -> Ahead<'a> {
        let lines = data.len().div_ceil(LINE).div_ceil(steps.max(1));
        Ahead {
            rest: data,
            step: lines.max(1) * LINE,
        }
    }

    /// Nothing to fetch.
    pub(crate) fn none() -> Ahead<'static> {
        Ahead { rest: &[], step: 0 }
    }

    /// Asks for the next few lines.
    #[inline(always)]
    pub(crate) fn step(&mut self) {
        if !self.rest.is_empty() {
            let (now, later) = self.rest.split_at(self.step.min(self.rest.len()));
            into_l2(now);
            self.rest = later;
        }
    }
}
