//! The short diffusion schedule (`docs/method.md#schedule`): T+1 noise levels `k = 0..T` and every coefficient the
//! forward pairs, the posterior and the sampler need.
//!
//! All coefficients are computed in f64, exactly as the reference code does, and cast to f32
//! only when they are turned into tensors.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Largest number of diffusion steps a model may declare. The method is meant for a handful of
/// steps; the bound keeps hostile model files from asking for absurd tables.
pub const MAX_TIMESTEPS: usize = 1000;

/// How the variance of level `k` grows with the continuous time `t_k`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VarianceKind {
    /// Variance-preserving SDE: `var(t) = 1 − exp(−½ t² (β_max − β_min) − t β_min)`.
    Vp,
    /// Geometric: `var(t) = β_min (β_max / β_min)^t`, still applied variance-preserving.
    Geometric,
}

/// Everything needed to rebuild a [`Schedule`]; stored in the model file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduleConfig {
    /// Number of denoising steps T (levels `0..=T`).
    pub num_timesteps: usize,
    pub beta_min: f64,
    pub beta_max: f64,
    pub kind: VarianceKind,
    /// `t_0`: level 0 carries a tiny noise of variance `var(t_0)`.
    pub eps_small: f64,
}

impl ScheduleConfig {
    /// The toy schedule of the reference code (β 0.01 → 0.1). It never reaches noise
    /// (`x_T = 0.973 x + 0.231 ε`, `docs/method.md#departures`), so ddaebm does not use it by default.
    pub fn toy(num_timesteps: usize) -> Self {
        Self {
            num_timesteps,
            beta_min: 0.01,
            beta_max: 0.1,
            kind: VarianceKind::Vp,
            eps_small: 1e-3,
        }
    }

    /// The image schedule of the reference code (β 0.1 → 20), whose level T is pure noise
    /// (`ā_T = 0.0066` for T = 4). This is ddaebm's default for every data type: sampling
    /// starts from N(0, I), so the last level must actually be N(0, I) (`docs/method.md#departures`).
    pub fn image(num_timesteps: usize) -> Self {
        Self {
            num_timesteps,
            beta_min: 0.1,
            beta_max: 20.0,
            kind: VarianceKind::Vp,
            eps_small: 1e-3,
        }
    }

    /// ddaebm's default: a geometric variance schedule from 1e-4 to 0.99. Level noise stds are
    /// 0.010, 0.032, 0.10, 0.31 and 0.995 for T = 4, a constant ratio of ≈ 3.2 per step: the last
    /// level is (nearly) N(0, I) as sampling assumes, and each lower step is a local refinement,
    /// so the generator's last steps are close to unimodal. On 25-Gaussians this covered the
    /// modes with far fewer stray samples than the VP schedules (README, "Choices").
    pub fn ddaebm(num_timesteps: usize) -> Self {
        Self {
            num_timesteps,
            beta_min: 1e-4,
            beta_max: 0.99,
            kind: VarianceKind::Geometric,
            eps_small: 1e-3,
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(format!("schedule: {m}")));
        if self.num_timesteps == 0 || self.num_timesteps > MAX_TIMESTEPS {
            return bad(format!(
                "num_timesteps must be in 1..={MAX_TIMESTEPS}, got {}",
                self.num_timesteps
            ));
        }
        let finite = [self.beta_min, self.beta_max, self.eps_small]
            .iter()
            .all(|v| v.is_finite());
        if !finite || self.beta_min <= 0.0 || self.beta_max < self.beta_min {
            return bad(format!(
                "need 0 < beta_min <= beta_max, got {} and {}",
                self.beta_min, self.beta_max
            ));
        }
        if !(self.eps_small > 0.0 && self.eps_small < 1.0) {
            return bad(format!(
                "eps_small must be in (0, 1), got {}",
                self.eps_small
            ));
        }
        Ok(())
    }
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self::ddaebm(4)
    }
}

/// Upper clamp on the per-step β (the image code's clamp; never active for the toy values).
const BETA_MAX_CLAMP: f64 = 0.999;

/// The coefficient arrays of `docs/method.md#schedule`. Arrays named per level have length T+1; the posterior
/// arrays have length T and are indexed by the *less noisy* level `k = 0..T−1`.
#[derive(Clone, Debug)]
pub struct Schedule {
    config: ScheduleConfig,
    /// Continuous times `t_k`.
    pub t: Vec<f64>,
    /// Marginal variances `var(t_k)`.
    pub var: Vec<f64>,
    pub betas: Vec<f64>,
    /// `sqrt(β_k)`: noise std of the one-step forward transition into level k.
    pub sigmas: Vec<f64>,
    /// `sqrt(1 − β_k)`.
    pub a_s: Vec<f64>,
    /// Cumulative product of `a_s`: the signal scale of level k.
    pub a_s_cum: Vec<f64>,
    /// `sqrt(1 − a_s_cum²)`: the noise std of level k.
    pub sigmas_cum: Vec<f64>,
    pub post_var: Vec<f64>,
    /// Posterior mean coefficient on the clean-data estimate.
    pub post_c1: Vec<f64>,
    /// Posterior mean coefficient on `x_{k+1}`.
    pub post_c2: Vec<f64>,
    pub post_logvar: Vec<f64>,
}

impl Schedule {
    pub fn new(config: ScheduleConfig) -> Result<Self> {
        config.validate()?;
        let n = config.num_timesteps;
        let t: Vec<f64> = (0..=n)
            .map(|k| config.eps_small + (1.0 - config.eps_small) * k as f64 / n as f64)
            .collect();
        let var: Vec<f64> = t
            .iter()
            .map(|&t| match config.kind {
                VarianceKind::Vp => {
                    let log_mean = -0.25 * t * t * (config.beta_max - config.beta_min)
                        - 0.5 * t * config.beta_min;
                    1.0 - (2.0 * log_mean).exp()
                }
                VarianceKind::Geometric => {
                    config.beta_min * (config.beta_max / config.beta_min).powf(t)
                }
            })
            .collect();
        if var.iter().any(|v| !(v.is_finite() && *v > 0.0 && *v < 1.0)) {
            return Err(Error::InvalidArgument(format!(
                "schedule: every level variance must lie in (0, 1), got {var:?}"
            )));
        }
        let alpha_bar: Vec<f64> = var.iter().map(|v| 1.0 - v).collect();
        let mut betas = Vec::with_capacity(n + 1);
        betas.push(var[0]);
        for k in 1..=n {
            betas.push((1.0 - alpha_bar[k] / alpha_bar[k - 1]).min(BETA_MAX_CLAMP));
        }
        let sigmas: Vec<f64> = betas.iter().map(|b| b.sqrt()).collect();
        let a_s: Vec<f64> = betas.iter().map(|b| (1.0 - b).sqrt()).collect();
        let a_s_cum: Vec<f64> = a_s
            .iter()
            .scan(1.0, |acc, a| {
                *acc *= a;
                Some(*acc)
            })
            .collect();
        let sigmas_cum: Vec<f64> = a_s_cum.iter().map(|a| (1.0 - a * a).sqrt()).collect();
        // ᾱc_k = Π_{j≤k} (1 − β_j), including β_0.
        let alphas_cumprod: Vec<f64> = betas
            .iter()
            .scan(1.0, |acc, b| {
                *acc *= 1.0 - b;
                Some(*acc)
            })
            .collect();
        let (mut post_var, mut post_c1, mut post_c2) = (vec![], vec![], vec![]);
        for k in 0..n {
            let denom = 1.0 - alphas_cumprod[k + 1];
            post_var.push(betas[k + 1] * (1.0 - alphas_cumprod[k]) / denom);
            post_c1.push(betas[k + 1] * alphas_cumprod[k].sqrt() / denom);
            post_c2.push((1.0 - alphas_cumprod[k]) * (1.0 - betas[k + 1]).sqrt() / denom);
        }
        let post_logvar = post_var.iter().map(|v| v.ln()).collect();
        Ok(Self {
            config,
            t,
            var,
            betas,
            sigmas,
            a_s,
            a_s_cum,
            sigmas_cum,
            post_var,
            post_c1,
            post_c2,
            post_logvar,
        })
    }

    pub fn config(&self) -> &ScheduleConfig {
        &self.config
    }

    /// Number of denoising steps T.
    pub fn num_timesteps(&self) -> usize {
        self.config.num_timesteps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_rel(name: &str, got: &[f64], want: &[f64]) {
        assert_eq!(got.len(), want.len(), "{name}: length");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let rel = (g - w).abs() / w.abs().max(1e-30);
            // The reference table is printed with 6 significant digits.
            assert!(rel < 1e-5, "{name}[{i}]: got {g}, want {w} (rel {rel:e})");
        }
    }

    #[test]
    fn toy_schedule_matches_reference_table() {
        let s = Schedule::new(ScheduleConfig::toy(4)).unwrap();
        assert_rel("t", &s.t, &[0.001, 0.25075, 0.5005, 0.75025, 1.0]);
        assert_rel(
            "var",
            &s.var,
            &[1.00449e-05, 0.00532268, 0.0161457, 0.0322988, 0.0535149],
        );
        assert_rel(
            "betas",
            &s.betas,
            &[1.00449e-05, 0.00531269, 0.010881, 0.0164181, 0.0219242],
        );
        assert_rel(
            "sigmas",
            &s.sigmas,
            &[0.00316938, 0.0728882, 0.104312, 0.128133, 0.148068],
        );
        assert_rel(
            "a_s",
            &s.a_s,
            &[0.999995, 0.99734, 0.994545, 0.991757, 0.988977],
        );
        assert_rel(
            "a_s_cum",
            &s.a_s_cum,
            &[0.999995, 0.997335, 0.991894, 0.983718, 0.972875],
        );
        assert_rel(
            "sigmas_cum",
            &s.sigmas_cum,
            &[0.00316938, 0.0729567, 0.127066, 0.179719, 0.231333],
        );
        assert_rel(
            "post_var",
            &s.post_var,
            &[1.00261e-05, 0.00358708, 0.0082072, 0.0132323],
        );
        assert_rel(
            "post_c1",
            &s.post_c1,
            &[0.998118, 0.672126, 0.504199, 0.403014],
        );
        assert_rel(
            "post_c2",
            &s.post_c2,
            &[0.00188218, 0.327866, 0.495767, 0.596895],
        );
    }

    #[test]
    fn image_schedule_matches_reference_table() {
        let s = Schedule::new(ScheduleConfig::image(4)).unwrap();
        assert_rel(
            "var",
            &s.var,
            &[0.000109944, 0.478313, 0.921333, 0.996571, 0.999957],
        );
        assert_rel(
            "betas",
            &s.betas,
            &[0.000109944, 0.478255, 0.849206, 0.956418, 0.987404],
        );
        assert_rel(
            "sigmas",
            &s.sigmas,
            &[0.0104854, 0.69156, 0.921524, 0.977966, 0.993682],
        );
        assert_rel(
            "a_s",
            &s.a_s,
            &[0.999945, 0.722319, 0.388322, 0.208764, 0.112232],
        );
        assert_rel(
            "a_s_cum",
            &s.a_s_cum,
            &[0.999945, 0.722279, 0.280477, 0.0585534, 0.00657159],
        );
        assert_rel(
            "sigmas_cum",
            &s.sigmas_cum,
            &[0.0104854, 0.691602, 0.959861, 0.998284, 0.999978],
        );
        assert_rel(
            "post_var",
            &s.post_var,
            &[0.000109931, 0.440868, 0.88421, 0.984061],
        );
        assert_rel(
            "post_c1",
            &s.post_c1,
            &[0.999825, 0.665736, 0.269176, 0.0578184],
        );
        assert_rel(
            "post_c2",
            &s.post_c2,
            &[0.000166031, 0.201599, 0.193003, 0.111852],
        );
        assert_rel(
            "post_logvar",
            &s.post_logvar,
            &[-9.11566, -0.81901, -0.12306, -0.0160673],
        );
    }

    #[test]
    fn geometric_variance_matches_reference() {
        let cfg = ScheduleConfig {
            kind: VarianceKind::Geometric,
            ..ScheduleConfig::toy(4)
        };
        let s = Schedule::new(cfg).unwrap();
        assert_rel(
            "var",
            &s.var,
            &[0.0100231, 0.0178135, 0.0316592, 0.0562665, 0.1],
        );
        // Still variance preserving: a_s_cum² + sigmas_cum² = 1 and a_s_cum² = 1 − var.
        for k in 0..=4 {
            assert!((s.a_s_cum[k].powi(2) - (1.0 - s.var[k])).abs() < 1e-12);
        }
    }

    #[test]
    fn default_schedule_reaches_noise_with_even_steps() {
        let s = Schedule::new(ScheduleConfig::default()).unwrap();
        assert_eq!(s.num_timesteps(), 4);
        // Level T is nearly N(0, I): signal scale 0.1, noise std 0.995.
        assert!((s.a_s_cum[4] - 0.1).abs() < 1e-3 && s.sigmas_cum[4] > 0.99);
        // Noise stds grow by a constant factor (geometric variance).
        let ratios: Vec<f64> = (1..=4)
            .map(|k| s.sigmas_cum[k] / s.sigmas_cum[k - 1])
            .collect();
        for r in &ratios[..3] {
            assert!((r - ratios[0]).abs() < 0.02, "{ratios:?}");
        }
        assert!((s.var[0] - 1e-4 * 9900f64.powf(1e-3)).abs() < 1e-12);
    }

    #[test]
    fn rejects_bad_configs() {
        for cfg in [
            ScheduleConfig::image(0),
            ScheduleConfig::image(MAX_TIMESTEPS + 1),
            ScheduleConfig {
                beta_min: -1.0,
                ..ScheduleConfig::image(4)
            },
            ScheduleConfig {
                beta_max: f64::NAN,
                ..ScheduleConfig::image(4)
            },
            ScheduleConfig {
                eps_small: 0.0,
                ..ScheduleConfig::image(4)
            },
        ] {
            assert!(Schedule::new(cfg.clone()).is_err(), "{cfg:?} accepted");
        }
    }
}
