//! The Langevin sampler of DCD models (`docs/method.md#dcd`): annealed Langevin dynamics down
//! the energy's noise levels, each level a short chain on the posterior of that level given the
//! state one level up.
//!
//! The energy `f_θ(x, k)` is an unnormalised log-density of the data diffused to level `k`. One
//! forward step of the schedule, `y = a x + σ ε` with `a = a_s[k+1]` and `σ = sigmas[k+1]`,
//! turns level `k` into level `k + 1`; the posterior of `x` given `y` is
//!
//! `q_θ(x | y) ∝ exp(f_θ(x, k) − ‖y − a x‖² / (2σ²))`,
//!
//! the distribution DCD training draws its negatives from and the one each level of the sampler
//! draws from. A chain takes `K` unadjusted Langevin steps
//! `x ← x + h ∇ₓ log q_θ(x | y) + √(2h) ξ`, started at `a·y` (the posterior mean of a
//! standardised feature given `y`, since `a² + σ² = 1` per step).
//!
//! Sampling: `x_T ~ N(0, I)`, then for `k = T−1 … 0` a chain on `q_θ(x_k | x_{k+1})`; `x_0` is
//! the sample. The model file stores `K` and the step size of every level
//! ([`LangevinConfig`]); the default `h_k = c² / (1/s_k² + a²/σ²)`
//! ([`LangevinConfig::with_default_steps`]) is `c²` over a bound on the posterior's curvature:
//! the data diffused to level `k` has noise of variance `s_k²` in every direction, so its
//! log-density bends by at most about `1/s_k²`, and the tie adds exactly `a²/σ²`. With `c ≤ 1`
//! (DCD's default is 0.7) the chains of the true diffused density take steps well inside ULA's
//! stability limit `2/L`; a
//! learned energy stiffer than that can still make a chain diverge, which sampling reports as an
//! error.
//!
//! All randomness comes from a seeded ChaCha8 stream in a fixed order (`x_T`, then one `ξ` per
//! step, level by level), so a seed gives the same rows on every run.

use candle::{DType, Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::energy::grad::log_density_ratio_and_input_grad;
use crate::energy::EnergyNet;
use crate::error::{Error, Result};
use crate::sampler::normal_tensor;
use crate::schedule::Schedule;

/// Most Langevin steps per level a model file may declare: sampling costs this many energy
/// gradients per level and row, so a hostile file must not ask for billions.
pub const MAX_LANGEVIN_STEPS: usize = 10_000;

/// Largest step size a model file may hold, in normalised units (the default sizes are below
/// 1: `h_k < s_k² ≤ 1`).
pub const MAX_STEP_SIZE: f64 = 10.0;

/// Largest magnitude a chain's value may reach, in normalised units (the data has unit
/// variance per feature): beyond it the chain has diverged (an unstable chain grows
/// geometrically, by a factor of `|1 − hλ|` per step), even while its values are still finite.
pub const DIVERGENCE_BOUND: f32 = 1e6;

/// Whether every value of `x` is finite and within [`DIVERGENCE_BOUND`].
pub fn within_bounds(x: &Tensor) -> Result<bool> {
    Ok(x.to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?
        .iter()
        .all(|v| v.abs() < DIVERGENCE_BOUND))
}

/// Most energy gradients one sampled row may cost, `T × K` (the default is 5 × 20 = 100): a
/// file within both other bounds could otherwise ask for 10⁷ per row.
pub const MAX_LANGEVIN_GRADIENTS: usize = 20_000;

/// The Langevin sampler's settings in the model file (the metadata's `langevin` entry).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LangevinConfig {
    /// `K`: Langevin steps at every level.
    pub steps: usize,
    /// `h_k` of levels `k = 0 … T−1`, in normalised units.
    pub step_sizes: Vec<f64>,
}

/// `h_k = c² / (1/s_k² + a²/σ²)` for level `k < T` of `schedule`, with `a`, `σ` of the forward
/// step into level `k + 1` and `s_k` the noise std of level `k` (see the module docs).
fn default_step_size(schedule: &Schedule, k: usize, scale: f64) -> f64 {
    let s = schedule.sigmas_cum[k];
    let (a, sigma) = (schedule.a_s[k + 1], schedule.sigmas[k + 1]);
    scale * scale / (1.0 / (s * s) + a * a / (sigma * sigma))
}

impl LangevinConfig {
    /// `steps` per level with the default step sizes for step scale `c` (`scale`).
    pub fn with_default_steps(schedule: &Schedule, steps: usize, scale: f64) -> Self {
        Self {
            steps,
            step_sizes: (0..schedule.num_timesteps())
                .map(|k| default_step_size(schedule, k, scale))
                .collect(),
        }
    }

    /// Checks the settings against the model's `T`-step schedule (built by the caller, who has
    /// it already), which must add noise at every step (the tie's `a/σ²` is infinite otherwise).
    pub fn validate(&self, schedule: &Schedule) -> Result<()> {
        if self.steps == 0 || self.steps > MAX_LANGEVIN_STEPS {
            return Err(Error::InvalidArgument(format!(
                "langevin: steps must be in 1..={MAX_LANGEVIN_STEPS}, got {}",
                self.steps
            )));
        }
        let t = schedule.num_timesteps();
        if self.steps.saturating_mul(t) > MAX_LANGEVIN_GRADIENTS {
            return Err(Error::InvalidArgument(format!(
                "langevin: {} steps at each of {t} levels exceed {MAX_LANGEVIN_GRADIENTS} energy gradients per sampled row",
                self.steps
            )));
        }
        if let Some(k) = (1..=t).find(|&k| schedule.sigmas[k].is_nan() || schedule.sigmas[k] <= 0.0)
        {
            return Err(Error::InvalidArgument(format!(
                "langevin: the schedule adds no noise in its step into level {k}; the Langevin sampler needs noise at every step"
            )));
        }
        if self.step_sizes.len() != t {
            return Err(Error::InvalidArgument(format!(
                "langevin: {} step sizes for a schedule of {t} levels; one per level is needed",
                self.step_sizes.len()
            )));
        }
        if let Some(h) = self
            .step_sizes
            .iter()
            .find(|h| !(h.is_finite() && **h > 0.0 && **h <= MAX_STEP_SIZE))
        {
            return Err(Error::InvalidArgument(format!(
                "langevin: every step size must be in (0, {MAX_STEP_SIZE}], got {h}"
            )));
        }
        Ok(())
    }
}

/// The Gaussian tie of a posterior chain, row by row: `−‖y − a x‖² / (2σ²)` added to the
/// energy's log-density.
#[derive(Clone, Debug)]
pub struct PosteriorTie {
    /// The noisier state `y`, one row per chain.
    pub y: Tensor,
    /// `a` and `σ` of the forward step from the chain's level to `y`'s, per row.
    pub a: Vec<f64>,
    pub sigma: Vec<f64>,
}

/// A `(B, 1)` column of per-row values in `like`'s dtype and device.
fn column(values: impl Iterator<Item = f64>, like: &Tensor) -> Result<Tensor> {
    let v: Vec<f64> = values.collect();
    let n = v.len();
    Ok(Tensor::from_vec(v, (n, 1), like.device())?.to_dtype(like.dtype())?)
}

/// Runs `steps` unadjusted Langevin steps from the rows `x` (B, d): row `i` follows
/// `f(·, levels[i])`, plus `tie` when given, with step size `step_sizes[i]`. One `ξ` of shape
/// (B, d) is drawn from `rng` per step. The result is detached (no gradient graph).
pub fn langevin_chain(
    energy: &EnergyNet,
    x: &Tensor,
    levels: &[usize],
    step_sizes: &[f64],
    tie: Option<&PosteriorTie>,
    steps: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Tensor> {
    let (b, d) = x.dims2()?;
    let rows_ok = levels.len() == b
        && step_sizes.len() == b
        && tie.is_none_or(|t| t.a.len() == b && t.sigma.len() == b && t.y.dims() == x.dims());
    if !rows_ok {
        return Err(Error::InvalidArgument(format!(
            "langevin_chain: {b} rows need {b} levels, step sizes and tie coefficients, and a tie row of {d} values per row"
        )));
    }
    let dev = x.device();
    let level_ids: Vec<u32> = levels.iter().map(|&k| k as u32).collect();
    let level_ids = Tensor::from_vec(level_ids, b, dev)?;
    let h = column(step_sizes.iter().copied(), x)?;
    let noise = column(step_sizes.iter().map(|h| (2.0 * h).sqrt()), x)?;
    // The tie's gradient a (y − a x) / σ² = a/σ² · y − a²/σ² · x.
    let tie = match tie {
        Some(t) => {
            let pull = column(t.a.iter().zip(&t.sigma).map(|(a, s)| a / (s * s)), x)?;
            let stiffness = column(t.a.iter().zip(&t.sigma).map(|(a, s)| a * a / (s * s)), x)?;
            Some((t.y.detach().broadcast_mul(&pull)?, stiffness))
        }
        None => None,
    };
    let mut x = x.detach();
    for _ in 0..steps {
        let (_, _, grad) = log_density_ratio_and_input_grad(energy, &x, &level_ids)?;
        let grad = match &tie {
            Some((pull, stiffness)) => ((grad + pull)? - x.broadcast_mul(stiffness)?)?,
            None => grad,
        };
        let xi = normal_tensor(rng, b, d, dev)?.to_dtype(x.dtype())?;
        x = ((&x + grad.broadcast_mul(&h)?)? + xi.broadcast_mul(&noise)?)?.detach();
    }
    Ok(x)
}

/// The Langevin sampler of a model: its energy, schedule and settings.
#[derive(Clone, Debug)]
pub struct LangevinSampler {
    energy: EnergyNet,
    schedule: Schedule,
    config: LangevinConfig,
}

impl LangevinSampler {
    /// The sampler of `energy` on `schedule` with `config` (checked against the schedule).
    pub fn new(energy: EnergyNet, schedule: Schedule, config: LangevinConfig) -> Result<Self> {
        config.validate(&schedule)?;
        Ok(Self {
            energy,
            schedule,
            config,
        })
    }

    pub fn config(&self) -> &LangevinConfig {
        &self.config
    }

    /// The chain of level `k < T` on the posterior given the rows `y` of level `k + 1`, started
    /// at `a·y`.
    fn posterior_chain(&self, y: &Tensor, k: usize, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let b = y.dim(0)?;
        let (a, sigma) = (self.schedule.a_s[k + 1], self.schedule.sigmas[k + 1]);
        let tie = PosteriorTie {
            y: y.clone(),
            a: vec![a; b],
            sigma: vec![sigma; b],
        };
        langevin_chain(
            &self.energy,
            &y.affine(a, 0.0)?,
            &vec![k; b],
            &vec![self.config.step_sizes[k]; b],
            Some(&tie),
            self.config.steps,
            rng,
        )
    }

    /// `n` rows in normalised units: `x_T ~ N(0, I)`, then a posterior chain per level down to
    /// level 0. A chain that diverges (an energy stiffer than its step sizes, e.g. in a damaged
    /// or hand-edited model: values beyond [`DIVERGENCE_BOUND`] or not finite) is a
    /// [`Error::BadModel`], found at the end of the level where it happens, never rows of
    /// garbage.
    pub fn sample(&self, n: usize, dim: usize, seed: u64, device: &Device) -> Result<Tensor> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut x = normal_tensor(&mut rng, n, dim, device)?;
        for k in (0..self.schedule.num_timesteps()).rev() {
            x = self.posterior_chain(&x, k, &mut rng)?;
            if !within_bounds(&x)? {
                return Err(Error::bad_model(format!(
                    "Langevin sampling diverged at level {k} (values beyond ±{DIVERGENCE_BOUND:e} normalised units or not finite): the model's energy is too stiff for its step sizes"
                )));
            }
        }
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::architecture::NetworkConfig;
    use crate::schedule::ScheduleConfig;
    use candle_nn::{VarBuilder, VarMap};

    /// An energy whose learned part is 0 (every weight zero), so that `f` is its base measure:
    /// `−½‖x‖²/s²` with `base_std = s`, or a one-component Gaussian per level with
    /// `mixture = Some((means (T·d), variances (T·d)))`.
    fn base_only_energy(
        d: usize,
        levels: usize,
        base_std: f32,
        mixture: Option<(&[f32], &[f32])>,
    ) -> EnergyNet {
        let dev = Device::Cpu;
        let mut cfg = NetworkConfig::toy(d);
        cfg.head_widths = vec![8, 8];
        cfg.branch_widths = vec![4, 4];
        cfg.base_std = base_std;
        cfg.base_components = usize::from(mixture.is_some());
        let vm = VarMap::new();
        EnergyNet::new(&cfg, levels, VarBuilder::from_varmap(&vm, DType::F32, &dev)).unwrap();
        for (name, var) in vm.data().lock().unwrap().iter() {
            let value = match (name.as_str(), mixture) {
                ("base.means", Some((m, _))) => Tensor::from_slice(m, (levels, 1, d), &dev),
                ("base.variances", Some((_, v))) => Tensor::from_slice(v, (levels, 1, d), &dev),
                _ => var.as_tensor().zeros_like(),
            };
            var.set(&value.unwrap()).unwrap();
        }
        // The mixture keeps detached copies of its parameters: build the network again.
        EnergyNet::new(&cfg, levels, VarBuilder::from_varmap(&vm, DType::F32, &dev)).unwrap()
    }

    fn mean_and_var(x: &Tensor) -> (Vec<f64>, Vec<f64>) {
        let (n, d) = x.dims2().unwrap();
        let v: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        let col = |j: usize| v.iter().skip(j).step_by(d).map(|&x| f64::from(x));
        let mean: Vec<f64> = (0..d).map(|j| col(j).sum::<f64>() / n as f64).collect();
        let var = (0..d)
            .map(|j| col(j).map(|x| (x - mean[j]).powi(2)).sum::<f64>() / (n - 1) as f64)
            .collect();
        (mean, var)
    }

    /// On `f(x) = −½‖x‖²` tied to `y` with `a`, `σ`, the posterior is Gaussian with precision
    /// `λ = 1 + a²/σ²` and mean `(a y/σ²)/λ`. ULA with step `h` keeps that mean and has the
    /// stationary variance `2/(λ(2 − hλ))`; the chosen `h` puts that 47% above the exact `1/λ`,
    /// so the check tells a correct chain from one that merely lands near the posterior.
    #[test]
    fn posterior_chain_on_a_quadratic_energy_has_the_known_mean_and_variance() {
        let energy = base_only_energy(2, 1, 1.0, None);
        let (n, a, sigma, h) = (20_000, 0.9, 0.5, 0.15);
        let y_row = [1.0f32, -2.0];
        let y = Tensor::from_vec(y_row.repeat(n), (n, 2), &Device::Cpu).unwrap();
        let tie = PosteriorTie {
            y: y.clone(),
            a: vec![a; n],
            sigma: vec![sigma; n],
        };
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let start = y.affine(a, 0.0).unwrap();
        let x = langevin_chain(
            &energy,
            &start,
            &vec![0; n],
            &vec![h; n],
            Some(&tie),
            60,
            &mut rng,
        )
        .unwrap();
        let lambda = 1.0 + a * a / (sigma * sigma);
        let ula_var = 2.0 / (lambda * (2.0 - h * lambda));
        let (mean, var) = mean_and_var(&x);
        for j in 0..2 {
            let want = a * f64::from(y_row[j]) / (sigma * sigma) / lambda;
            assert!((mean[j] - want).abs() < 0.02, "mean {mean:?}, want {want}");
            assert!(
                (var[j] / ula_var - 1.0).abs() < 0.02,
                "var {var:?}, ULA {ula_var}"
            );
            assert!(
                (var[j] * lambda - 1.0).abs() > 0.3,
                "indistinguishable from exact"
            );
        }

        // Untied, the chain samples the energy itself: N(0, 1), ULA variance 2/(2 − h).
        let start = Tensor::zeros((n, 2), DType::F32, &Device::Cpu).unwrap();
        let x = langevin_chain(
            &energy,
            &start,
            &vec![0; n],
            &vec![h; n],
            None,
            80,
            &mut rng,
        )
        .unwrap();
        let (mean, var) = mean_and_var(&x);
        for j in 0..2 {
            assert!(mean[j].abs() < 0.03, "{mean:?}");
            assert!((var[j] / (2.0 / (2.0 - h)) - 1.0).abs() < 0.03, "{var:?}");
        }
    }

    /// With the exact log-density of diffused Gaussian data at every level (one mixture
    /// component per level), annealed sampling is linear-Gaussian: each chain step is
    /// `x ← (1 − hλ) x + h (P μ + a y/σ²) + √(2h) ξ`, so the output's mean and variance follow
    /// in closed form from the settings. The samples must match that recursion (which checks
    /// every coefficient of the sampler) and lie near the data's distribution (ULA's
    /// discretisation widens it a little: the bound printed below).
    #[test]
    fn annealed_sampling_of_a_diffused_gaussian_matches_its_closed_form() {
        let schedule = Schedule::new(ScheduleConfig::ddaebm(5)).unwrap();
        let t = schedule.num_timesteps();
        let (mu, v0) = ([1.0f64, -0.5], 0.5f64);
        let mut means = vec![];
        let mut variances = vec![];
        for k in 0..t {
            let (a, s) = (schedule.a_s_cum[k], schedule.sigmas_cum[k]);
            for m in mu {
                means.push((a * m) as f32);
                variances.push((a * a * v0 + s * s) as f32);
            }
        }
        let energy = base_only_energy(2, t, 0.0, Some((&means, &variances)));
        let config = LangevinConfig::with_default_steps(&schedule, 20, 1.0);
        let sampler = LangevinSampler::new(energy, schedule.clone(), config.clone()).unwrap();
        let x = sampler.sample(6000, 2, 3, &Device::Cpu).unwrap();
        let (mean, var) = mean_and_var(&x);
        for j in 0..2 {
            // Mean and variance of x_T, then of every level's chain output.
            let (mut m, mut v) = (0.0f64, 1.0f64);
            for k in (0..t).rev() {
                let (a, sigma) = (schedule.a_s[k + 1], schedule.sigmas[k + 1]);
                let h = config.step_sizes[k];
                let precision = 1.0 / f64::from(variances[2 * k + j]);
                let lambda = precision + a * a / (sigma * sigma);
                let r = 1.0 - h * lambda;
                // x_n = α y + β + ζ, ζ independent of y with variance w.
                let (mut alpha, mut beta, mut w) = (a, 0.0, 0.0);
                for _ in 0..config.steps {
                    alpha = r * alpha + h * a / (sigma * sigma);
                    beta = r * beta + h * precision * f64::from(means[2 * k + j]);
                    w = r * r * w + 2.0 * h;
                }
                (m, v) = (alpha * m + beta, alpha * alpha * v + w);
            }
            assert!((mean[j] - m).abs() < 0.03, "mean {mean:?}, closed form {m}");
            assert!(
                (var[j] / v - 1.0).abs() < 0.05,
                "var {var:?}, closed form {v}"
            );
            let data_var = f64::from(variances[j]);
            assert!(
                (m - f64::from(means[j])).abs() < 0.01,
                "{m} vs {}",
                means[j]
            );
            assert!(
                v > data_var && v < 1.2 * data_var,
                "closed form {v} vs data {data_var}"
            );
        }
        let again = sampler.sample(6000, 2, 3, &Device::Cpu).unwrap();
        let same = (&x - &again).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(
            same.to_scalar::<f32>().unwrap(),
            0.0,
            "same seed, same rows"
        );
        let other = sampler.sample(6000, 2, 4, &Device::Cpu).unwrap();
        assert_ne!(x.to_vec2::<f32>().unwrap(), other.to_vec2::<f32>().unwrap());
    }

    #[test]
    fn settings_out_of_range_are_refused() {
        let schedule = Schedule::new(ScheduleConfig::ddaebm(4)).unwrap();
        let good = LangevinConfig {
            steps: 5,
            step_sizes: vec![0.1; 4],
        };
        assert!(good.validate(&schedule).is_ok());
        let cases = [
            (0, vec![0.1; 4]),
            (MAX_LANGEVIN_STEPS + 1, vec![0.1; 4]),
            (5, vec![0.1; 3]),
            (5, vec![0.1, 0.1, 0.0, 0.1]),
            (5, vec![0.1, -1.0, 0.1, 0.1]),
            (5, vec![0.1, f64::NAN, 0.1, 0.1]),
            (5, vec![0.1, 0.1, 0.1, MAX_STEP_SIZE * 2.0]),
        ];
        for (steps, step_sizes) in cases {
            let c = LangevinConfig { steps, step_sizes };
            assert!(c.validate(&schedule).is_err(), "{c:?}");
        }
    }

    /// On standardised data diffused to level `k` (a unit-variance Gaussian at every level),
    /// the posterior's curvature is `λ = 1 + a²/σ²`: the default step keeps `hλ` below 1 (no
    /// overshoot, let alone ULA's limit of 2) at every level, yet moves (`hλ` not tiny), and `c`
    /// scales it by `c²`.
    #[test]
    fn default_step_sizes_are_stable_on_standardised_data_and_scale_with_c_squared() {
        let schedule = Schedule::new(ScheduleConfig::ddaebm(5)).unwrap();
        let one = LangevinConfig::with_default_steps(&schedule, 20, 1.0);
        let half = LangevinConfig::with_default_steps(&schedule, 20, 0.5);
        for k in 0..5 {
            let (a, sigma) = (schedule.a_s[k + 1], schedule.sigmas[k + 1]);
            let h_lambda = one.step_sizes[k] * (1.0 + a * a / (sigma * sigma));
            assert!(
                h_lambda > 0.1 && h_lambda < 1.0,
                "level {k}: hλ = {h_lambda}"
            );
            assert!((half.step_sizes[k] / one.step_sizes[k] - 0.25).abs() < 1e-12);
        }
    }

    /// Steps far too large for the energy's curvature (`hλ ≈ 5`) make the chains grow
    /// geometrically: sampling fails with `BadModel` instead of returning the huge rows.
    #[test]
    fn a_diverging_chain_is_an_error_not_rows() {
        let schedule = Schedule::new(ScheduleConfig::ddaebm(2)).unwrap();
        let energy = base_only_energy(2, 2, 0.1, None);
        let config = LangevinConfig {
            steps: 20,
            step_sizes: vec![0.05; 2],
        };
        let sampler = LangevinSampler::new(energy, schedule, config).unwrap();
        match sampler.sample(10, 2, 0, &Device::Cpu) {
            Err(Error::BadModel(m)) => assert!(m.contains("diverged"), "{m}"),
            other => panic!("expected BadModel, got {other:?}"),
        }
    }

    /// A schedule without noise in a step (β_min = β_max, geometric) and more than
    /// [`MAX_LANGEVIN_GRADIENTS`] gradients per row are refused.
    #[test]
    fn noiseless_schedules_and_too_many_gradients_are_refused() {
        let flat = ScheduleConfig {
            beta_max: 0.01,
            beta_min: 0.01,
            ..ScheduleConfig::ddaebm(4)
        };
        let config = LangevinConfig {
            steps: 5,
            step_sizes: vec![0.1; 4],
        };
        let err = config
            .validate(&Schedule::new(flat).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no noise"), "{err}");
        let long = LangevinConfig {
            steps: MAX_LANGEVIN_GRADIENTS / 4 + 1,
            step_sizes: vec![0.1; 4],
        };
        let err = long
            .validate(&Schedule::new(ScheduleConfig::ddaebm(4)).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("energy gradients"), "{err}");
    }
}
