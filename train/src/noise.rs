//! Drawing NCE rows from the energy's mixture base measure at each row's diffusion level.

use anyhow::{bail, Result};
use candle::{Device, Tensor};
use ddaebm::energy::base::MixtureParams;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The mixture base measure in sampling form.
pub struct BaseSampler {
    components: usize,
    /// Cumulative mixture weights (ends at 1).
    cumulative: Vec<f64>,
    /// (T·K, d): component means and standard deviations, row `level·K + j`.
    means: Tensor,
    stds: Tensor,
}

impl BaseSampler {
    /// From the per-level parameters for `levels` levels and `dim` features.
    pub fn new(params: &MixtureParams, levels: usize, dim: usize, device: &Device) -> Result<Self> {
        let k = params.log_weights.len();
        if k == 0
            || params.means.len() != levels * k * dim
            || params.variances.len() != levels * k * dim
        {
            bail!("mixture parameters do not match {levels} levels of {dim} features");
        }
        let weights: Vec<f64> = params
            .log_weights
            .iter()
            .map(|lw| f64::from(lw.exp()))
            .collect();
        let total: f64 = weights.iter().sum();
        let mut acc = 0.0;
        let cumulative = weights
            .iter()
            .map(|w| {
                acc += w / total;
                acc
            })
            .collect();
        let stds: Vec<f32> = params.variances.iter().map(|v| v.sqrt()).collect();
        Ok(Self {
            components: k,
            cumulative,
            means: Tensor::from_slice(&params.means, (levels * k, dim), device)?,
            stds: Tensor::from_vec(stds, (levels * k, dim), device)?,
        })
    }

    /// One row per entry of `levels`, drawn from the mixture at that level; `eps` is a standard
    /// normal `(b, d)` tensor.
    pub fn sample(&self, levels: &[u32], eps: &Tensor, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let rows: Vec<u32> = levels
            .iter()
            .map(|&level| {
                let u = rng.random_range(0.0..1.0);
                let j = self
                    .cumulative
                    .iter()
                    .position(|&c| u < c)
                    .unwrap_or(self.components - 1);
                (level as usize * self.components + j) as u32
            })
            .collect();
        let rows = Tensor::from_vec(rows, levels.len(), eps.device())?;
        Ok((self.means.index_select(&rows, 0)? + eps.mul(&self.stds.index_select(&rows, 0)?)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// Draws have the mixture's mean and component shares at their level.
    #[test]
    fn samples_follow_the_mixture_at_their_level() {
        // Two levels, two components, one feature: level 1 is level 0 shifted by +10.
        let params = MixtureParams {
            log_weights: vec![0.25f32.ln(), 0.75f32.ln()],
            means: vec![-2.0, 1.5, 8.0, 11.5],
            variances: vec![0.04, 0.09, 0.04, 0.09],
        };
        let sampler = BaseSampler::new(&params, 2, 1, &Device::Cpu).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let n = 20_000;
        let eps = Tensor::randn(0f32, 1f32, (n, 1), &Device::Cpu).unwrap();
        for (level, shift) in [(0u32, 0.0f32), (1, 10.0)] {
            let x: Vec<f32> = sampler
                .sample(&vec![level; n], &eps, &mut rng)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let low = x.iter().filter(|&&v| v < shift).count() as f64 / n as f64;
            assert!((low - 0.25).abs() < 0.02, "level {level}: {low}");
            let mean = x.iter().map(|&v| f64::from(v - shift)).sum::<f64>() / n as f64;
            assert!((mean - (0.25 * -2.0 + 0.75 * 1.5)).abs() < 0.05, "{mean}");
        }
        assert!(BaseSampler::new(&params, 3, 1, &Device::Cpu).is_err());
    }
}
