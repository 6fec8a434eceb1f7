//! Helpers shared by the unit tests of several modules.

use candle::{Tensor, WithDType};

/// `max |a − b|` over all elements, read back as `T` (the tensors' dtype or a wider one).
pub(crate) fn max_abs_diff<T: WithDType>(a: &Tensor, b: &Tensor) -> T {
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.max_all())
        .and_then(|d| d.to_dtype(T::DTYPE))
        .and_then(|d| d.to_scalar::<T>())
        .expect("max |a - b| of two tensors of one shape")
}
