//! What turns an energy into a detector: the [`normalization`] of raw features and the
//! [`calibration`] on held-out in-distribution rows (threshold and conformal p-values), and the
//! [`drift`] test of a whole batch against those rows.

pub mod calibration;
pub mod drift;
pub mod normalization;
