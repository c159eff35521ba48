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

/// Runs `f`, one training step (forward, backward and the optimizer's update), on rayon's
/// workers when `device` is the CPU, as inference passes run (`graft_kernels::on_workers`).
/// Called from outside the pool, each of a step's many parallel loops was injected into it
/// while the caller slept on a lock, a futex wait and wake-up per loop: ResNet-18's training
/// step ran 1.04x faster on the workers. A GPU step runs where it is called: there the
/// kernels are the device's, and a worker would spin beside it for nothing.
pub fn on_cpu_workers<R: Send>(device: &Device, f: impl FnOnce() -> R + Send) -> R {
    if is_cpu(device) {
        graft_kernels::on_workers(f)
    } else {
        f()
    }
}
