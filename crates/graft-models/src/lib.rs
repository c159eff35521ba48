//! Pretrained CNN backbones for graft, each split into ordered, named block groups so that
//! transfer strategies can freeze by name, and the registry that says how each model is run.

mod backend;
pub mod efficientnet_lite;
pub mod imagenet;
pub mod layers;
mod network;
pub mod registry;
pub mod resnet;
pub mod vgg;

pub use backend::default_device;
/// The allocator policy graft's binaries set at start-up (see graft-kernels' `memory.rs`).
pub use graft_kernels::{keep_freed_memory, release_freed_memory, resident_memory_bytes};
pub use network::{Arch, Network};
pub use registry::{ModelError, ModelSpec, Normalization, find_model, registry};
