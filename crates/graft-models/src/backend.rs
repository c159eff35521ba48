//! The one place where graft picks its compute device. Model code takes a `&Device` and never
//! names a backend, so GPU backends are only cargo features here.

use burn::prelude::Device;

/// CUDA when built with `--features cuda`, wgpu with `--features wgpu`, else burn-flex (pure
/// Rust, CPU).
#[allow(unreachable_code)]
pub fn default_device() -> Device {
    #[cfg(feature = "cuda")]
    return Device::cuda(0);
    #[cfg(feature = "wgpu")]
    return Device::wgpu(Default::default());
    Device::flex()
}

/// Whether `device` is burn-flex, the CPU backend graft's own kernels run under.
pub fn is_cpu(device: &Device) -> bool {
    *device == Device::flex()
}
