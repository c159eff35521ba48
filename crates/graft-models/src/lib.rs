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
pub use network::{Arch, Network};
pub use registry::{ModelError, ModelSpec, Normalization, find_model, registry};
