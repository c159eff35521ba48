//! Output buffers for the forward kernels, recycled from the inputs that inference layers
//! consumed.
//!
//! Each kernel allocated its output zeroed (`vec![0.0; n]`). With freed memory kept in the heap
//! ([`crate::keep_freed_memory`]), that is a `memset` of memory every kernel then overwrites
//! in full: 6% of EfficientNet-Lite0's batch-32 pass. An inference convolution owns its input,
//! and once its output is written the input is garbage of a similar size, so it is kept here
//! and the next kernel writes its output over it instead. Only tensors nobody else holds are
//! taken (a training pass keeps its inputs for the backward pass, so nothing is recycled
//! there), and a buffer is only handed out to a kernel that writes every element.
//!
//! Memory: at most [`KEPT`] buffers a thread, each one an activation that was just freed.
//! glibc keeps freed blocks in the heap anyway (no trimming); this holds the same blocks a layer
//! longer.

use std::cell::RefCell;

use burn_flex::FlexTensor;

/// Buffers a thread holds at once. EfficientNet's blocked pass (`blocked.rs`) holds a block's
/// input, its expansion and its output, and its sizes change sixfold within a block and by
/// stage; with 4 buffers a small request took the large buffer the next expansion needed, every
/// pass. With 8 and a bound of 6 one pass missed about 10 MB of buffers a Lite0 batch.
///
/// The pool is per thread because a batch runs as one part of its images per worker, side by
/// side (`Network::forward_groups` in graft-models), each part taking and keeping its buffers
/// on its own thread. One pool of 8 for all of them missed, on 2 workers at batch 32, 280 MB a
/// Lite0 pass, 345 MB a ResNet-50 pass and 131 MB a ResNet-18 pass, each a fresh buffer zeroed
/// by `memset` (2.2% of ResNet-50's samples); 8 a thread miss 35, 126 and 3 MB. One pool of 24
/// missed less in inference but made a Lite0 training step 1.3x slower: the training step's
/// thread handed its backward pass's large freed buffers to smaller outputs of the next
/// forward pass, which the kernel then unmapped when they were freed (TLB shootdowns, 16% of
/// the samples). 12 a thread did the same to training (1.15x).
const KEPT: usize = 8;

/// A kept buffer serves a request of at least 1/`SPARE` of its size. A bound keeps a small
/// output that outlives the pass (logits, features) from pinning a large activation's buffer,
/// and a large buffer for the large requests: with 8 buffers a bound of 4 missed about 14 MB a
/// batch and 2 about 280 MB; 12 buffers with a bound of 8 missed 16 MB and peaked at 182 MiB.
const SPARE: usize = 6;

thread_local! {
    static POOL: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of `len` floats with unspecified contents, for a kernel that writes every one: a
/// kept buffer when one holds `len` floats and at most [`SPARE`] times as many (the smallest
/// such), else a fresh zeroed one.
pub(crate) fn take(len: usize) -> Vec<f32> {
    match kept(len) {
        Some(mut v) => {
            // Within capacity: `resize` zeroes only a grown tail, never the whole buffer.
            v.truncate(len);
            v.resize(len, 0.0);
            v
        }
        None => vec![0.0; len],
    }
}

/// A buffer of at least `len` floats, as [`take`] chooses it, but not cut to `len`: a kept
/// buffer shorter than `len` is zeroed up to its whole capacity, once, so that it never needs
/// zeroing again while it goes round as [`Lines`] (which use a window of it). Cutting and
/// growing it each time zeroed the difference on every take: 2% of Lite0's batch-1 pass in
/// `memset`.
fn take_whole(len: usize) -> Vec<f32> {
    match kept(len) {
        Some(mut v) => {
            if v.len() < len {
                v.resize(v.capacity(), 0.0);
            }
            v
        }
        None => vec![0.0; len],
    }
}

/// The smallest kept buffer that fits `len` floats (see [`take`]), taken from the pool.
fn kept(len: usize) -> Option<Vec<f32>> {
    let fits = |v: &Vec<f32>| v.capacity() >= len && v.capacity() <= SPARE * len;
    POOL.try_with(|pool| {
        let mut pool = pool.borrow_mut();
        let best = (0..pool.len())
            .filter(|&i| fits(&pool[i]))
            .min_by_key(|&i| pool[i].capacity())?;
        Some(pool.swap_remove(best))
    })
    .ok()
    .flatten()
}

/// Keeps `v` for a later [`take`] (a kernel's input it no longer needs).
pub(crate) fn keep(v: Vec<f32>) {
    if v.capacity() == 0 {
        return;
    }
    // A thread that is exiting has no pool left: the buffer is simply freed.
    let _ = POOL.try_with(|pool| {
        let mut pool = pool.borrow_mut();
        pool.push(v);
        if pool.len() > KEPT {
            // The oldest goes: the layers ahead look like the ones just run.
            pool.remove(0);
        }
    });
}

/// Keeps `t`'s storage for a later [`take`] when `t` is the only holder of an `f32` buffer
/// that can become a `Vec<f32>` without a copy; otherwise `t` is simply dropped.
pub(crate) fn recycle(t: FlexTensor) {
    // The whole buffer, and nobody else's: else `into_data` would copy.
    let whole = t.as_slice::<f32>().map(|v| 4 * v.len()) == Some(t.bytes().len());
    if !t.is_unique() || !whole {
        return;
    }
    let (bytes, _, _) = t.into_data().into_parts();
    // Zero-copy only: a buffer allocated with another alignment is not worth a copy.
    let Ok(v) = bytes.try_into_vec::<f32>() else {
        return;
    };
    keep(v);
}

/// A cache line, in floats.
pub(crate) const LINE: usize = 16;

/// The index in `buf` of its first float that starts a cache line (`LINE - 1` at most).
pub(crate) fn line_start(buf: &[f32]) -> usize {
    let bytes = 4 * LINE;
    (bytes - buf.as_ptr() as usize % bytes) % bytes / 4
}

/// Floats starting on a cache line, for kernels that load and store whole 64-byte vectors (the
/// blocked layout's pixels, `blocked.rs`): a buffer 15 floats longer than asked, used from its
/// first line boundary. glibc aligns blocks to 16 bytes, and over a Lite0 pass most of the
/// blocked 1x1 layers' inputs and outputs started 16, 32 or 48 bytes into a line, so that every
/// vector access spanned two lines. The buffer goes back to the pool when dropped.
#[derive(Debug)]
pub struct Lines {
    buf: Vec<f32>,
    at: usize,
    len: usize,
}

impl Lines {
    /// `len` floats from the pool (see [`take`]), with unspecified contents.
    pub(crate) fn take(len: usize) -> Lines {
        Lines::within(take_whole(len + LINE - 1), len)
    }

    /// `len` zeros in a fresh buffer (for values kept long, such as packed weights).
    pub(crate) fn zeroed(len: usize) -> Lines {
        Lines::within(vec![0.0; len + LINE - 1], len)
    }

    fn within(buf: Vec<f32>, len: usize) -> Lines {
        let at = line_start(&buf);
        Lines { buf, at, len }
    }
}

impl std::ops::Deref for Lines {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        &self.buf[self.at..][..self.len]
    }
}

impl std::ops::DerefMut for Lines {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.buf[self.at..][..self.len]
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        keep(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn a_recycled_buffer_is_handed_out_again_at_its_size() {
        let t = FlexTensor::from_data(TensorData::new(vec![f32::NAN; 4096], [4096]));
        let at = t.bytes().as_ptr() as usize;
        recycle(t);
        // The pool is this test's thread's own.
        let v = take(4000);
        assert_eq!((v.as_ptr() as usize, v.len()), (at, 4000));
    }

    #[test]
    fn a_buffer_kept_on_one_thread_is_not_handed_out_on_another() {
        // Parts of a batch run side by side, one a worker, each with buffers of its own. The
        // keeping thread stays alive (holding its pool) until this thread has taken.
        let (kept_at, at) = std::sync::mpsc::channel();
        let (taken, done) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || {
            let v = vec![0.0f32; 4096];
            let _ = kept_at.send(v.as_ptr() as usize);
            keep(v);
            let _ = done.recv();
        });
        let at = at.recv().expect("the other thread keeps a buffer");
        let v = take(4096);
        let _ = taken.send(());
        other.join().expect("the other thread ends");
        assert_ne!(v.as_ptr() as usize, at);
    }

    #[test]
    fn a_shared_tensor_is_not_taken() {
        let t = FlexTensor::from_data(TensorData::new(vec![1.0f32; 64], [64]));
        let other = t.clone();
        recycle(t);
        assert_eq!(other.as_slice::<f32>().map(<[f32]>::len), Some(64));
    }

    #[test]
    fn lines_over_a_kept_buffer_shorter_than_asked_are_whole() {
        // A buffer with room for 10000 floats that last held 100 (taken by a smaller output).
        let mut v = Vec::with_capacity(10_000);
        v.resize(100, 1.0f32);
        let at = v.as_ptr() as usize;
        keep(v);
        let taken: Vec<Lines> = (0..KEPT).map(|_| Lines::take(5000)).collect();
        assert!(
            taken
                .iter()
                .all(|l| l.len() == 5000 && (l.as_ptr() as usize).is_multiple_of(64))
        );
        let l = taken.iter().find(|l| l.buf.as_ptr() as usize == at);
        let l = l.expect("the kept buffer is among the takes");
        assert!(l.buf.len() >= l.at + 5000);
        assert_eq!(l.buf.len(), l.buf.capacity());
    }

    #[test]
    fn lines_start_on_a_cache_line() {
        for len in [1, 100, 5000] {
            let mut l = Lines::take(len);
            assert_eq!(l.len(), len);
            assert_eq!(l.as_ptr() as usize % 64, 0);
            l.fill(1.0);
            let z = Lines::zeroed(len);
            assert_eq!((z.len(), z.as_ptr() as usize % 64), (len, 0));
            assert!(z.iter().all(|&v| v == 0.0));
        }
    }
}
