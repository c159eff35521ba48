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
/// The buffer behind it keeps its whole length between uses: a `Vec` cut to a short use and
/// grown again for a long one zeroes the difference every time, even within its capacity (1.2%
/// of a ResNet-18 partial:2 step in `memset`, growing Winograd's transformed filters).
pub(crate) fn take(len: usize) -> Scratch {
    let mut buf = BUFFERS.with(|b| {
        let mut b = b.borrow_mut();
        // The smallest that fits; else the largest, which grows least.
        let fits = (0..b.len()).find(|&i| b[i].len() >= len);
        match fits {
            Some(i) => b.remove(i),
            None => b.pop().unwrap_or_default(),
        }
    });
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    Scratch { buf, len }
}

/// Keeps `s`'s buffer for the next [`take`] on this thread.
pub(crate) fn keep(s: Scratch) {
    if s.buf.is_empty() {
        return;
    }
    BUFFERS.with(|b| {
        let mut b = b.borrow_mut();
        b.push(s.buf);
        // The largest allocations are the ones worth keeping; `take` looks from the smallest.
        b.sort_by_key(Vec::len);
        if b.len() > POOL {
            b.remove(0);
        }
    });
}

/// A window of `len` floats at the start of a reused buffer (see [`take`]); derefs to the
/// window. The default is empty, for a kernel that may not need one.
#[derive(Default)]
pub(crate) struct Scratch {
    buf: Vec<f32>,
    len: usize,
}

impl Scratch {
    /// The window as a `Vec` of its own length, for a value kept beyond the kernel.
    pub(crate) fn into_vec(self) -> Vec<f32> {
        let mut v = self.buf;
        v.truncate(self.len);
        v.shrink_to_fit();
        v
    }
}

impl std::ops::Deref for Scratch {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.buf[..self.len]
    }
}

impl std::ops::DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.buf[..self.len]
    }
}

/// A [`Scratch`] given back to its thread's pool when dropped: for per-split state of a
/// parallel loop (`for_each_init`), which rayon drops itself, on the thread that made it.
#[derive(Default)]
pub(crate) struct Kept(pub(crate) Scratch);

impl Kept {
    pub(crate) fn take(len: usize) -> Self {
        Self(take(len))
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        keep(std::mem::take(&mut self.0));
    }
}

/// A buffer with room for `need` floats (unspecified contents) from a cache line, and the index
/// of that line: for kernels that load whole 64-byte vectors from it (the depthwise and blocked
/// Winograd kernels). Give the buffer back with [`keep`].
pub(crate) fn take_aligned(need: usize) -> (Scratch, usize) {
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
