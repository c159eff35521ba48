//! A value derived from some tensors, kept until one of them is replaced: an inference-mode
//! layer's BatchNorm-folded weights, computed once instead of on every forward pass (on
//! ResNet-18 at batch 1 the per-call fold was 7% of the time, one multiply over every weight).
//!
//! A source is identified by its burn-flex storage (address and length). The memo holds a clone
//! of every source, so that storage stays alive and cannot be reused by another tensor at the
//! same address while the memo refers to it: a training step or a loaded record makes new
//! tensors, which no longer match, and the value is derived again. Tensors on other backends are
//! never memoised (the value is derived on every call, as without a memo).

use std::sync::{Arc, Mutex, PoisonError};

use burn::tensor::{DType, Tensor};
use burn_backend::TensorMetadata;
use burn_flex::{Flex, FlexTensor};

/// One source tensor's identity, holding its storage alive.
#[derive(Clone, Debug)]
pub struct Source {
    tensor: FlexTensor,
    at: usize,
    len: usize,
}

impl Source {
    /// The identity of `t`'s storage, if it is a contiguous `f32` burn-flex tensor. Takes the
    /// tensor (a parameter's `val()` is already a clone): the checks run on every inference
    /// call of every layer, serially between its parallel loops, and a second clone and
    /// conversion a source was a third of their cost.
    pub fn of<const D: usize>(t: Tensor<D>) -> Option<Source> {
        if t.dtype() != DType::F32 || t.is_autodiff() {
            return None;
        }
        let tensor = t.try_into_primitive::<Flex>().ok()?;
        let values = tensor.as_slice::<f32>()?;
        let (at, len) = (values.as_ptr() as usize, values.len());
        Some(Source { tensor, at, len })
    }

    fn same(&self, other: &Source) -> bool {
        self.at == other.at && self.len == other.len && self.tensor.shape() == other.tensor.shape()
    }
}

/// A memoised `T`, shared by the clones of the module that holds it (a clone that keeps the
/// same tensors may use the value; one whose tensors changed derives its own).
#[derive(Clone, Debug)]
pub struct Memo<T> {
    slot: Arc<Mutex<Option<Kept<T>>>>,
}

/// A derived value with the sources it was derived from.
type Kept<T> = (Vec<Source>, T);

impl<T> Default for Memo<T> {
    fn default() -> Self {
        Memo {
            slot: Arc::new(Mutex::new(None)),
        }
    }
}

impl<T: Clone> Memo<T> {
    /// The value derived from `sources`: the kept one when every source is the tensor it was
    /// derived from, else `derive()`, kept for next time when every source is a burn-flex tensor.
    pub fn get(&self, sources: Vec<Option<Source>>, derive: impl FnOnce() -> T) -> T {
        let Some(sources) = sources.into_iter().collect::<Option<Vec<Source>>>() else {
            return derive();
        };
        // A panic while deriving leaves the slot as it was; the value is simply derived again.
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((kept, value)) = slot.as_ref()
            && kept.len() == sources.len()
            && kept.iter().zip(&sources).all(|(a, b)| a.same(b))
        {
            return value.clone();
        }
        let value = derive();
        *slot = Some((sources, value.clone()));
        value
    }
}
