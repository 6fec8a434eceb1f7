//! What turns an energy into a detector: the [`normalization`] of raw features and the
//! [`calibration`] on held-out in-distribution rows (threshold and conformal p-values).

pub mod calibration;
pub mod normalization;
