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
