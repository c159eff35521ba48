//! Small helpers over burn-flex tensors shared by the kernels (the autodiff ops, the forward
//! convolution, the pools, batch norm and activations): contiguous `f32` views, building a
//! tensor from values, and a convolution's geometry from its shapes.

use burn::tensor::TensorData;
use burn_backend::Shape;
use burn_backend::ops::ConvOptions;
use burn_flex::FlexTensor;

use crate::grad::Geometry;

/// The geometry of convolving `x` with `w`; the output size follows PyTorch's formula with the
/// padding at each end.
pub(crate) fn geometry_of(x: &Shape, w: &Shape, options: &ConvOptions<2>) -> Geometry {
    Geometry::new(
        [x[0], x[1], x[2], x[3]],
        w[0],
        [w[2], w[3]],
        options.stride,
        options.padding,
        options.dilation,
    )
}

/// Whether convolution `g` with `options` is depthwise: one filter per channel.
pub(crate) fn is_depthwise(g: &Geometry, options: &ConvOptions<2>) -> bool {
    options.groups == g.in_channels && g.out_channels == g.in_channels
}

pub(crate) fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.as_slice::<f32>().is_some() {
        t
    } else {
        t.to_contiguous()
    }
}

/// Applies `f` to a uniquely owned, contiguous tensor's values where they lie; hands the tensor
/// back untouched otherwise.
pub(crate) fn in_place(
    mut x: FlexTensor,
    f: impl FnOnce(&mut [f32]),
) -> Result<FlexTensor, FlexTensor> {
    if x.as_slice::<f32>().is_none() {
        return Err(x);
    }
    match x.try_storage_mut::<f32>() {
        Some(v) => f(v),
        None => return Err(x),
    }
    Ok(x)
}

pub(crate) fn values(t: &FlexTensor) -> &[f32] {
    match t.as_slice::<f32>() {
        Some(v) => v,
        None => unreachable!("graft-kernels: f32 tensors are made contiguous before use"),
    }
}

pub(crate) fn tensor(values: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}
