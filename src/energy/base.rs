//! The energy's base measures `b(x)`: the isotropic Gaussian [`GaussianBase`] and the diagonal
//! Gaussian mixture per diffusion level [`MixtureBase`]. Each formula is written once here and
//! used by the candle path, the fused CPU path ([`crate::energy::folded`]) and the trainer.
//!
//! With `base_components = K > 0`, the energy network is `f(x, k) = g(u, k) + log p_k(x)` where
//! `p_k` is a K-component diagonal Gaussian mixture fitted to the normalised training rows and
//! carried to level k by the forward process: `x_k = a_k x_0 + s_k ε` turns component
//! `N(μ_j, diag v_j)` into `N(a_k μ_j, diag(a_k² v_j + s_k²))`. The trainer stores the per-level
//! parameters, so the model file holds everything needed:
//!
//! | tensor | shape |
//! |---|---|
//! | `energy.base.log_weights` | (K,): log mixture weights |
//! | `energy.base.means` | (T, K, d) |
//! | `energy.base.variances` | (T, K, d), all > 0 |
//!
//! `log p_k(x) = logsumexp_j [c_kj − ½ Σ_i x_i² / v_kji + Σ_i x_i μ_kji / v_kji]` with the
//! constants `c_kj = log w_j − ½ Σ_i (log 2π v_kji + μ_kji² / v_kji)`; the two sums are matrix
//! products with (d, T·K) matrices, so the cost is two small matmuls per batch.

use candle::{DType, Tensor, D};
use candle_nn::VarBuilder;

use crate::error::{Error, Result};

/// `N(0, s²I)` without its normalising constant: `b(x) = −½‖x‖²/s²` (normalised units). The
/// constant does not change a ranking, and leaving it out keeps energies of older files as
/// they were.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GaussianBase {
    std: f32,
}

impl GaussianBase {
    /// The base measure of standard deviation `std` (> 0).
    pub fn new(std: f32) -> Self {
        Self { std }
    }

    /// `s`.
    pub fn std(&self) -> f32 {
        self.std
    }

    /// `1 / s²`, the precision; `∇b(x) = −x / s²`.
    pub fn precision(&self) -> f64 {
        1.0 / f64::from(self.std).powi(2)
    }

    /// `1 / (2 s²)`, the coefficient of `‖x‖²` in `−b(x)`. Equal, bit for bit, to
    /// `0.5 · precision()` (halving is exact).
    pub fn coefficient(&self) -> f64 {
        0.5 / f64::from(self.std).powi(2)
    }

    /// `−b(x) = ‖x‖² / (2 s²)` per row of `xs` (B, d), shape (B,).
    pub fn half_squared_norm(&self, xs: &Tensor) -> Result<Tensor> {
        Ok((xs.sqr()?.sum(1)? * self.coefficient())?)
    }
}

/// Smallest variance a component may have (normalised units).
pub const MIN_VARIANCE: f32 = 1e-4;

/// A diagonal Gaussian mixture per level.
///
/// The parameters are held detached from any gradient graph (they are fitted to the data, never
/// trained) but share storage with the trainer's variables, so setting those is seen here.
#[derive(Clone, Debug)]
pub struct MixtureBase {
    levels: usize,
    components: usize,
    dim: usize,
    /// (K,)
    log_weights: Tensor,
    /// (T, K, d)
    means: Tensor,
    /// (T, K, d)
    variances: Tensor,
}

/// Mixture parameters in plain vectors (as fitted or read back).
#[derive(Clone, Debug, PartialEq)]
pub struct MixtureParams {
    /// (K,) log weights.
    pub log_weights: Vec<f32>,
    /// (T, K, d) row-major.
    pub means: Vec<f32>,
    /// (T, K, d) row-major.
    pub variances: Vec<f32>,
}

impl MixtureBase {
    /// Reads `log_weights`, `means` and `variances` under `vb` for `levels` levels, `components`
    /// components and `dim` features. Values are checked when `vb` holds tensors from a file; a
    /// trainer's fresh variables start as K standard normals at 0.
    pub fn new(levels: usize, components: usize, dim: usize, vb: VarBuilder) -> Result<Self> {
        let log_weights =
            vb.get_with_hints(components, "log_weights", candle_nn::Init::Const(0.))?;
        let means = vb.get_with_hints(
            (levels, components, dim),
            "means",
            candle_nn::Init::Const(0.),
        )?;
        let variances = vb.get_with_hints(
            (levels, components, dim),
            "variances",
            candle_nn::Init::Const(1.),
        )?;
        Self::from_tensors(&log_weights, &means, &variances)
    }

    /// Checks the parameters: finite, variances at least [`MIN_VARIANCE`].
    pub fn from_tensors(log_weights: &Tensor, means: &Tensor, variances: &Tensor) -> Result<Self> {
        let (levels, components, dim) = means.dims3()?;
        let bad = |what: &str| Error::bad_model(format!("mixture base measure: {what}"));
        if log_weights.dims() != [components] || variances.dims() != means.dims() {
            return Err(bad("parameter shapes disagree"));
        }
        let finite = |t: &Tensor| -> Result<bool> {
            Ok(t.flatten_all()?
                .to_dtype(DType::F32)?
                .to_vec1::<f32>()?
                .iter()
                .all(|v| v.is_finite()))
        };
        if !finite(log_weights)? || !finite(means)? {
            return Err(bad("non-finite weight or mean"));
        }
        let v: Vec<f32> = variances.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
        if v.iter().any(|&v| !(v.is_finite() && v >= MIN_VARIANCE)) {
            return Err(bad("variances must be finite and at least 1e-4"));
        }
        Ok(Self {
            levels,
            components,
            dim,
            log_weights: log_weights.detach(),
            means: means.detach(),
            variances: variances.detach(),
        })
    }

    pub fn components(&self) -> usize {
        self.components
    }

    /// The parameters at one level as plain vectors: log weights (K), means and variances
    /// (K × d, row-major).
    pub fn level_params(&self, level: usize) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        if level >= self.levels {
            return Err(Error::InvalidArgument(format!(
                "level {level} of a {}-level mixture",
                self.levels
            )));
        }
        let flat = |t: &Tensor| -> Result<Vec<f32>> {
            Ok(t.get(level)?
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1()?)
        };
        Ok((
            self.log_weights.to_dtype(DType::F32)?.to_vec1()?,
            flat(&self.means)?,
            flat(&self.variances)?,
        ))
    }

    /// `log p_k(x)` for rows `xs` (B, d) at levels `levels` (B,) u32: shape (B,).
    pub fn log_density(&self, xs: &Tensor, levels: &Tensor) -> Result<Tensor> {
        let (at_level, _) = self.component_log_densities(xs, levels)?;
        Ok(at_level.log_sum_exp(D::Minus1)?)
    }

    /// `log p_k(x)` and its gradient with respect to `x`, shapes (B,) and (B, d), both
    /// detached (the mixture is fixed during training): `∇ log p = Σ_j r_j (μ_j − x) / v_j`
    /// with `r` the components' posterior probabilities.
    pub fn log_density_and_grad(&self, xs: &Tensor, levels: &Tensor) -> Result<(Tensor, Tensor)> {
        let xs = xs.detach();
        let (at_level, one_hot) = self.component_log_densities(&xs, levels)?;
        let log_density = at_level.log_sum_exp(D::Minus1)?;
        let b = xs.dim(0)?;
        let tk = self.levels * self.components;
        // Posterior of each (level, component) pair, zero at the other levels: (B, T·K).
        let posterior = at_level
            .broadcast_sub(&log_density.unsqueeze(1)?)?
            .exp()?
            .unsqueeze(1)?
            .broadcast_mul(&one_hot)?
            .reshape((b, tk))?;
        let precision = self.variances.reshape((tk, self.dim))?.recip()?;
        let mean_precision = (self.means.reshape((tk, self.dim))? * &precision)?;
        let grad = (posterior.matmul(&mean_precision)? - (posterior.matmul(&precision)? * &xs)?)?;
        Ok((log_density, grad))
    }

    /// Each row's component log-densities `log w_j + log N(x; μ_j, v_j)` at its level, (B, K),
    /// and the rows' one-hot level masks, (B, T, 1).
    fn component_log_densities(&self, xs: &Tensor, levels: &Tensor) -> Result<(Tensor, Tensor)> {
        let (b, tk, d) = (xs.dim(0)?, self.levels * self.components, self.dim);
        let variances = self.variances.reshape((tk, d))?;
        let means = self.means.reshape((tk, d))?;
        let precision = variances.recip()?;
        let mean_precision = (&means * &precision)?;
        // c = log w − ½ Σ (log 2π v + μ² / v)
        let log_two_pi = (2.0 * std::f64::consts::PI).ln();
        let constant =
            ((((variances.log()? + log_two_pi)? + (means.sqr()? * &precision)?)?.sum(1)? * -0.5)?
                + self
                    .log_weights
                    .unsqueeze(0)?
                    .repeat((self.levels, 1))?
                    .reshape(tk)?)?;
        let quad = xs.sqr()?.matmul(&precision.t()?)?;
        let lin = xs.matmul(&mean_precision.t()?)?;
        let all = (lin - (quad * 0.5)?)?
            .broadcast_add(&constant.unsqueeze(0)?)?
            .reshape((b, self.levels, self.components))?;
        // Select each row's level with a one-hot mask (candle's gather has no usable gradient).
        let level_ids = Tensor::arange(0u32, self.levels as u32, xs.device())?;
        let one_hot = levels
            .to_dtype(DType::U32)?
            .reshape((b, 1))?
            .broadcast_eq(&level_ids.reshape((1, self.levels))?)?
            .to_dtype(xs.dtype())?
            .reshape((b, self.levels, 1))?;
        let at_level = all.broadcast_mul(&one_hot)?.sum(1)?;
        Ok((at_level, one_hot))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle::Device;

    /// Direct evaluation of a diagonal mixture density, in f64.
    fn reference(x: &[f32], lw: &[f32], means: &[f32], vars: &[f32], d: usize) -> f64 {
        let terms: Vec<f64> = lw
            .iter()
            .enumerate()
            .map(|(j, &w)| {
                let mut s = f64::from(w);
                for i in 0..d {
                    let (m, v) = (f64::from(means[j * d + i]), f64::from(vars[j * d + i]));
                    let dx = f64::from(x[i]) - m;
                    s -= 0.5 * ((2.0 * std::f64::consts::PI * v).ln() + dx * dx / v);
                }
                s
            })
            .collect();
        let mx = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        mx + terms.iter().map(|t| (t - mx).exp()).sum::<f64>().ln()
    }

    #[test]
    fn matches_direct_evaluation_at_each_level() {
        let dev = Device::Cpu;
        let (t, k, d) = (2, 3, 4);
        let lw: Vec<f32> = vec![0.2f32.ln(), 0.5f32.ln(), 0.3f32.ln()];
        let means: Vec<f32> = (0..t * k * d)
            .map(|i| ((i * 7) % 5) as f32 * 0.3 - 0.6)
            .collect();
        let vars: Vec<f32> = (0..t * k * d)
            .map(|i| 0.2 + ((i * 3) % 4) as f32 * 0.25)
            .collect();
        let base = MixtureBase::from_tensors(
            &Tensor::new(lw.as_slice(), &dev).unwrap(),
            &Tensor::from_slice(&means, (t, k, d), &dev).unwrap(),
            &Tensor::from_slice(&vars, (t, k, d), &dev).unwrap(),
        )
        .unwrap();
        let rows: Vec<f32> = (0..3 * d).map(|i| (i as f32 * 0.37).sin() * 1.5).collect();
        let levels = Tensor::new(&[1u32, 0, 1], &dev).unwrap();
        let got: Vec<f32> = base
            .log_density(&Tensor::from_slice(&rows, (3, d), &dev).unwrap(), &levels)
            .unwrap()
            .to_vec1()
            .unwrap();
        for (r, &level) in [1usize, 0, 1].iter().enumerate() {
            let off = level * k * d;
            let want = reference(
                &rows[r * d..(r + 1) * d],
                &lw,
                &means[off..off + k * d],
                &vars[off..off + k * d],
                d,
            );
            assert!(
                (f64::from(got[r]) - want).abs() < 1e-4 * want.abs().max(1.0),
                "row {r}: {} vs {want}",
                got[r]
            );
        }
    }

    #[test]
    fn refuses_degenerate_parameters() {
        let dev = Device::Cpu;
        let lw = Tensor::new(&[0f32], &dev).unwrap();
        let means = Tensor::zeros((1, 1, 2), DType::F32, &dev).unwrap();
        for v in [0.0f32, -1.0, f32::NAN, 1e-6] {
            let vars = Tensor::new(&[[[1.0f32, v]]], &dev).unwrap();
            assert!(
                MixtureBase::from_tensors(&lw, &means, &vars).is_err(),
                "{v}"
            );
        }
    }
}
