//! The allocator policy graft's binaries set at start-up.

/// `mallopt` answers 0 for a parameter it does not take (the policy would then silently not
/// apply): both must be accepted.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn glibc_accepts_the_allocator_policy() {
    assert!(graft_kernels::keep_freed_memory());
    // Idempotent: a second call (another binary entry point) is accepted as well.
    assert!(graft_kernels::keep_freed_memory());
}

/// This process's resident memory.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn rss_kib() -> u64 {
    graft_kernels::resident_memory_bytes().expect("VmRSS in /proc/self/status") / 1024
}

/// Under the policy, a freed block below the mmap threshold stays resident in the heap until
/// `release_freed_memory` gives its pages back: a hole in the middle of the heap, as a server's
/// batches of varying sizes leave.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn released_memory_leaves_the_process() {
    assert!(graft_kernels::keep_freed_memory());
    let mib = 24;
    // Behind `black_box`, or the optimiser drops a block nothing reads.
    let block = std::hint::black_box(vec![1u8; mib << 20]);
    // A live allocation after the block keeps it off the top of its arena. The test runs on a
    // thread of its own, usually in a thread arena, whose top `malloc_trim` does not shrink
    // (only the main arena's): without the fence, the freed block merged into the top and
    // stayed resident, and the test failed in 146 of 200 runs here (100 of 100 with
    // --test-threads=1, 0 of 100 alone).
    let fence = std::hint::black_box(vec![1u8; 1 << 20]);
    let touched = rss_kib();
    drop(block);
    // Kept: the policy never trims on its own.
    assert!(
        rss_kib() + 1024 > touched,
        "freed memory was returned unasked"
    );
    assert!(graft_kernels::release_freed_memory());
    let released = rss_kib();
    assert!(
        released + (mib as u64 / 2) * 1024 < touched,
        "RSS {touched} KiB with the block, {released} KiB after releasing it"
    );
    drop(fence);
}
