//! Kernels graft adds under burn where burn 0.22's CPU path is slow, each behind a small boundary
//! that could move upstream unchanged.
//!
//! - [`conv2d`]: burn's `conv2d` with graft's dense forward pass on burn-flex (3x3 stride-1
//!   convolutions by Winograd's F(4x4, 3x3), see `winograd.rs`; the others by im2col over
//!   cache-sized blocks of output positions, one long matrix product each, see `forward.rs`),
//!   and its own backward pass on the burn-flex autodiff device; [`conv2d_relu`] applies ReLU as
//!   the inference kernel writes its output. Products whose output graft owns go through one
//!   safe wrapper over the `gemm` crate (`matmul.rs`; with `memory.rs`'s `mallopt` call and `prefetch.rs`'s prefetch instruction, the crate's only `unsafe`).
//!   burn-backend computes a convolution's weight gradient as another convolution (whose shape
//!   lands in gemm's narrowest micro-kernel), a depthwise weight gradient as one convolution per
//!   channel, and the input gradient as a generic transposed convolution. Here the dense weight
//!   gradient is one matrix product `dY x im2col(x)^T`, the input gradient `col2im(W^T x dY)`,
//!   and both depthwise gradients are direct loops (the im2col/col2im formulation of Caffe and
//!   PyTorch's `slow_conv2d`; cuDNN/oneDNN use direct kernels).
//! - [`depthwise`], [`pointwise`]: inference-and-training forward passes of depthwise and 1x1
//!   convolutions directly over NCHW (burn-flex converts whole batches to channels-last and back
//!   on one thread): a depthwise layer with whole blocks of 16 channels holds each block
//!   interleaved (`[row][col][16]`, MLAS's and XNNPACK's layout) inside the layer, so each tap
//!   is one vector multiply-add per pixel with the accumulators in registers (`interleaved.rs`);
//!   other channel counts take each tap as one contiguous multiply-add over a padded,
//!   phase-split plane. A stride-1 layer runs over its own input when nobody else holds it.
//!   Each 1x1 layer is one matrix product per image. [`conv2d_relu6`] fuses ReLU6.
//!   [`stem`]: dense convolutions with few input channels (RGB stems) directly over NCHW, on the
//!   same phase-split planes, in register tiles of output channels by positions.
//! - [`blocked`]: activations in blocks of 16 channels (`[image][block][pixel][16]`, ONNX
//!   Runtime's NCHWc) carried through an inference pass (EfficientNet's, ResNet's), converted
//!   only at its ends: [`blocked_direct`] runs every dense layer after the stem as register tiles
//!   over weights laid out once (no im2col, no packing per call; [`blocked_pointwise`] is its
//!   1x1 case), [`blocked_winograd`] the 3x3 stride-1 ones with enough tiles (F(4x4, 3x3), its
//!   36 products on the 1x1 register tile), [`blocked_stem`] writes a stem's output into blocks, and the depthwise layers
//!   and the max pool read and write the blocks directly.
//! - [`linear`]: a fully connected layer for a few rows (an ImageNet classifier at batch 1)
//!   streaming its weights once over both threads; `gemm` packs them on every call.
//! - [`Isa`]: graft's own loops are compiled three times (AVX-512, AVX2+FMA, baseline) and
//!   chosen at run time through `pulp`; tests run every level the CPU has.
//! - [`batch_norm_train`]: BatchNorm with batch statistics as one op each way (burn composes it
//!   from ~20 element-wise ops and layout copies).
//! - [`relu`], [`relu6`]: in place on both threads for inference, one op with a one-pass
//!   backward for training (burn-flex runs them on one thread; relu6 as clamp_min + clamp_max).
//!   [`add_relu`], [`add`]: residual joins, formed in place for inference.
//! - `outputs.rs`: inference kernels write their outputs over the buffers of inputs that were
//!   consumed, instead of zeroing fresh ones.
//! - [`max_pool2d`]: max pooling without the argmax indices burn-flex always computes; on the
//!   autodiff device the backward pass finds each window's maximum again.
//! - [`grad`]: the convolution kernels over plain `f32` slices, tested against the definition.
//! - [`Memo`]: a value derived from tensors (an inference layer's folded weights), kept until one
//!   of them is replaced.
//! - [`on_workers`]: a whole pass run on rayon's workers, so its many short parallel loops do
//!   not each put the calling thread to sleep and wake it.
//! - [`keep_freed_memory`]: the allocator policy graft's binaries set (freed blocks are reused,
//!   not unmapped and faulted in again every step); [`release_freed_memory`] gives the free pages
//!   back, for a process that runs for long.

mod activation;
mod autodiff;
mod batch_norm;
pub mod blocked;
mod blocked_depthwise;
pub mod blocked_direct;
mod blocked_fused;
pub mod blocked_pointwise;
pub mod blocked_stem;
pub mod blocked_winograd;
pub mod depthwise;
mod epilogue;
mod flex;
mod forward;
pub mod grad;
mod interleaved;
mod isa;
pub mod linear;
mod matmul;
mod memo;
mod memory;
pub(crate) mod outputs;
pub mod pointwise;
mod pool;
mod prefetch;
mod scratch;
pub mod stem;
mod winograd;
mod workers;

pub use activation::{add, add_relu, relu, relu6};
pub use autodiff::{conv2d, conv2d_prepared, conv2d_relu, conv2d_relu6};
pub use batch_norm::{BatchNormTrain, batch_norm_train};
pub use epilogue::Epilogue;
pub use forward::Prepared;
pub use isa::Isa;
pub use matmul::{Mat, matmul_into};
pub use memo::{Memo, Source};
pub use memory::{keep_freed_memory, release_freed_memory, resident_memory_bytes};
pub use pool::{global_avg_pool, max_pool2d};
pub use workers::on_workers;
