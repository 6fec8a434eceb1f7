//! Per-feature standardisation fitted on the training data and stored in the model file, so
//! hosts pass raw features.

use candle::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// `x_norm = (x − mean) / std`, feature by feature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalization {
    /// Fits mean and standard deviation of every column of a row-major `rows × cols` matrix.
    /// A constant column gets `std = 1` so it passes through unscaled instead of dividing by 0.
    pub fn fit(data: &[f32], rows: usize, cols: usize) -> Result<Self> {
        if rows == 0 || cols == 0 || data.len() != rows * cols {
            return Err(Error::ShapeMismatch {
                expected: format!("a non-empty {rows}×{cols} matrix"),
                got: format!("{} values", data.len()),
            });
        }
        let mut mean = vec![0f64; cols];
        for row in data.chunks_exact(cols) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= rows as f64);
        let mut var = vec![0f64; cols];
        for row in data.chunks_exact(cols) {
            for ((s, &v), m) in var.iter_mut().zip(row).zip(&mean) {
                *s += (v as f64 - m).powi(2);
            }
        }
        let std = var
            .iter()
            .zip(&mean)
            .map(|(s, m)| {
                let sd = (s / rows as f64).sqrt();
                if sd.is_finite() && sd > 1e-7 * m.abs().max(1.0) {
                    sd as f32
                } else {
                    1.0
                }
            })
            .collect();
        Ok(Self {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            std,
        })
    }

    /// The identity transform for `dim` features.
    pub fn identity(dim: usize) -> Self {
        Self {
            mean: vec![0.0; dim],
            std: vec![1.0; dim],
        }
    }

    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Checks lengths and values (finite means, finite positive stds).
    pub fn validate(&self, dim: usize) -> Result<()> {
        if self.mean.len() != dim || self.std.len() != dim {
            return Err(Error::bad_model(format!(
                "normalization has {} means and {} stds for {dim} features",
                self.mean.len(),
                self.std.len()
            )));
        }
        if self.mean.iter().any(|m| !m.is_finite())
            || self.std.iter().any(|s| !(s.is_finite() && *s > 0.0))
        {
            return Err(Error::bad_model(
                "normalization holds non-finite means or non-positive stds",
            ));
        }
        Ok(())
    }

    /// The (1, d) mean and std tensors on `device`, ready to broadcast.
    pub fn tensors(&self, device: &candle::Device) -> Result<(Tensor, Tensor)> {
        let d = self.dim();
        Ok((
            Tensor::from_slice(&self.mean, (1, d), device)?,
            Tensor::from_slice(&self.std, (1, d), device)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_mean_and_population_std() {
        // Column 0: 1, 3 → mean 2, std 1. Column 1: constant 5 → std falls back to 1.
        let n = Normalization::fit(&[1.0, 5.0, 3.0, 5.0], 2, 2).unwrap();
        assert_eq!(n.mean, vec![2.0, 5.0]);
        assert_eq!(n.std, vec![1.0, 1.0]);
        let n = Normalization::fit(&[0.0, 4.0], 2, 1).unwrap();
        assert_eq!((n.mean[0], n.std[0]), (2.0, 2.0));
        assert!(Normalization::fit(&[1.0], 2, 1).is_err());
    }

    #[test]
    fn validate_rejects_bad_values() {
        assert!(Normalization::identity(3).validate(3).is_ok());
        assert!(Normalization::identity(3).validate(2).is_err());
        let mut n = Normalization::identity(2);
        n.std[1] = 0.0;
        assert!(n.validate(2).is_err());
        n.std[1] = f32::NAN;
        assert!(n.validate(2).is_err());
    }
}
