//! The process's allocator policy for tensor work: freed memory is kept for reuse instead of
//! going back to the kernel.
//!
//! Every op allocates its output fresh (burn-flex tensors, graft's own kernels), and a step
//! frees as much as it allocates. glibc's malloc serves blocks above its (adaptive) mmap
//! threshold with a fresh `mmap` and unmaps them on free, and trims the heap's free top, so the
//! next step pays again for zeroed pages, page faults and TLB shootdowns: 10-15% of an
//! EfficientNet-Lite0 `partial:2` step was in the kernel. With the threshold fixed at glibc's
//! largest adaptive value (32 MiB) and no trimming, those blocks are recycled from the heap. Peak
//! memory is unchanged (what a step frees, the next reuses); only the return of memory to the
//! system between steps is given up.
//!
//! One arena for every thread: a pass runs on rayon's workers ([`crate::on_workers`]), whichever
//! is free, and with an arena per thread each kept its own high-water mark of activations (peak
//! RSS of EfficientNet-Lite0 at batch 32: 123 MiB with one, 224 MiB with two). The fast path of
//! small allocations is glibc's per-thread cache, which takes no lock either way.
//!
//! Any glibc program can be given the same settings from outside: `GLIBC_TUNABLES=
//! glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=N:glibc.malloc.arena_max=1`.
//! Other allocators (musl, macOS, Windows) are left as they are.

/// The largest mmap threshold glibc's adaptive rule reaches on 64-bit targets
/// (`DEFAULT_MMAP_THRESHOLD_MAX`): larger blocks (a VGG activation) are still mapped.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 32 << 20;

/// Sets the policy above (idempotent; a no-op off glibc). Returns whether glibc accepted every
/// setting. For binaries: a library should not change its host's allocator.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` only sets allocator parameters; it has no memory-safety
        // preconditions and glibc serialises it against concurrent allocation.
        #[allow(unsafe_code)]
        let set = |param, value| unsafe { libc::mallopt(param, value) } == 1;
        let mmap = set(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        let trim = set(libc::M_TRIM_THRESHOLD, i32::MAX);
        let arenas = set(libc::M_ARENA_MAX, 1);
        mmap && trim && arenas
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
