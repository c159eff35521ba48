//! Reusable buffers per thread for matrices the kernels overwrite entirely (patch matrices,
//! Winograd's transformed tiles and products): reusing the last block's buffers saves zeroing
//! and page-faulting up to 32 MiB per block (9% of a ResNet-18 training step was `memset` of
//! fresh buffers). A few buffers are held between calls, each at most the largest block's size.

use crate::outputs::{LINE, line_start};
use std::cell::RefCell;

/// Buffers kept per thread (a kernel holds at most this many at once).
const POOL: usize = 3;

thread_local! {
    static BUFFERS: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of `len` floats with unspecified contents, for a kernel that writes every entry.
pub(crate) fn take(len: usize) -> Vec<f32> {
    let mut v = BUFFERS.with(|b| b.borrow_mut().pop()).unwrap_or_default();
    // Shrinking keeps the allocation; growing zeroes only the new tail.
    v.resize(len, 0.0);
    v
}

/// Keeps `v`'s allocation for the next [`take`] on this thread.
pub(crate) fn keep(v: Vec<f32>) {
    BUFFERS.with(|b| {
        let mut b = b.borrow_mut();
        b.push(v);
        // The largest allocations are the ones worth keeping; they are taken first.
        b.sort_by_key(Vec::capacity);
        if b.len() > POOL {
            b.remove(0);
        }
    });
}

/// A buffer with room for `need` floats (unspecified contents) from a cache line, and the index
/// of that line: for kernels that load whole 64-byte vectors from it (the depthwise and blocked
/// Winograd kernels). Give the buffer back with [`keep`].
pub(crate) fn take_aligned(need: usize) -> (Vec<f32>, usize) {
    let buf = take(need + LINE - 1);
    let at = line_start(&buf);
    (buf, at)
}

/// `work` with [`take_aligned`]'s `need` floats. Not for use inside a vectorised kernel: `work`
/// is a closure the compiler may not inline there, and it would lose the vector context (the
/// blocked Winograd kernel ran 40x slower that way).
pub(crate) fn with_aligned(need: usize, work: impl FnOnce(&mut [f32])) {
    let (mut buf, at) = take_aligned(need);
    work(&mut buf[at..][..need]);
    keep(buf);
}
