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
//! A long-running process (a server) calls [`release_freed_memory`] now and then, so that its
//! resident memory follows its working set rather than the heap's high-water mark.
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

/// Gives the free pages inside the heap back to the system (glibc's `malloc_trim(0)`, which
/// also releases whole free pages in the middle of the heap, not only its top). Returns whether
/// any memory was released; a no-op off glibc.
///
/// For a long-running process under [`keep_freed_memory`]: without trimming its resident memory
/// is the heap's high-water mark, and work whose sizes vary (a server's batches of 1 to 32
/// images) leaves holes that later requests cannot reuse, so the mark creeps up. The pages
/// released are faulted in again by the next pass that touches them.
pub fn release_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `malloc_trim` only returns free memory to the system; it has no memory-safety
        // preconditions and takes the arena's lock like any allocation.
        #[allow(unsafe_code)]
        let released = unsafe { libc::malloc_trim(0) } == 1;
        released
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// This process's resident memory in bytes (`VmRSS` of `/proc/self/status`), or `None` where
/// the system has no such file (off Linux) or it cannot be read.
///
/// What a long-running process reports as Prometheus's `process_resident_memory_bytes`, so
/// that a soak's memory can be watched from outside without access to the host's `/proc`.
pub fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    vm_rss_bytes(&status)
}

/// The `VmRSS:` line of a `/proc/PID/status` text, in bytes (the kernel writes it in kB).
fn vm_rss_bytes(status: &str) -> Option<u64> {
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_rss_in_bytes() {
        let status = "Name:\tgraft\nVmHWM:\t  9000 kB\nVmRSS:\t    1234 kB\nThreads:\t3\n";
        assert_eq!(vm_rss_bytes(status), Some(1234 * 1024));
        assert_eq!(vm_rss_bytes("Name:\tgraft\n"), None);
        assert_eq!(vm_rss_bytes("VmRSS:\t12 MB\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_resident_memory() {
        assert!(resident_memory_bytes().is_some_and(|b| b > 0));
    }
}
