//! The Gaussian-policy sampler of GCD models (`docs/method.md#gcd`): a `T`-step denoising chain
//! `x_k = μ_φ(x_{k+1}, k+1) + σ_k ε` from `x_T ~ N(0, I)` down to `x_0`, the sample.
//!
//! The mean is a DDPM step: a noise-prediction network `ε_φ(x, n)` on the levels `n = 0..=N` of
//! a fine diffusion with `N` steps (the pre-trained DDPM), whose level `n_k = k·N/T` lies at the
//! same continuous time as level `k` of the model's `T`-step schedule. From the clean-data
//! estimate `x̂ = (x − s_n ε_φ(x, n)) / a_n` the step takes the diffusion posterior mean between
//! the two levels. Only the step's standard deviation `σ_k = exp(log_std[k])` is free: it starts
//! at the posterior's and is learned with the network.
//!
//! The same network sampled on all `N` fine levels, with the posterior standard deviations, is
//! the plain DDPM the policy was initialised from ([`GaussianPolicy::sample_ddpm`]).
//!
//! Tensors: `sampler.net.*` (the time-conditioned MLP on `N + 1` levels, no BatchNorm, so a row
//! does not depend on its batch) and `sampler.log_std`, shape `(T,)`.

use candle::{Device, Tensor};
use candle_nn::VarBuilder;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::architecture::NetworkConfig;
use crate::error::{Error, Result};
use crate::nn::embedding::level_tensor;
use crate::nn::mlp::TimeConditionedMlp;
use crate::sampler::normal_tensor;
use crate::schedule::{Schedule, ScheduleConfig};

/// Largest `|log σ_k|` a model file may hold: beyond it a step's noise would be absurd in
/// normalised units (σ above 22 000 or below 4.5e−5).
pub const MAX_ABS_LOG_STD: f32 = 10.0;

/// The Gaussian policy's settings in the model file (the metadata's `policy` entry).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyConfig {
    /// `N`, the steps of the fine diffusion the network was pre-trained on; a multiple of the
    /// schedule's `T`.
    pub ddpm_steps: usize,
}

impl PolicyConfig {
    /// Checks `N` against the model's `T`-step schedule.
    pub fn validate(&self, schedule: &ScheduleConfig) -> Result<()> {
        let (n, t) = (self.ddpm_steps, schedule.num_timesteps);
        if n == 0 || n > crate::schedule::MAX_TIMESTEPS || n % t != 0 {
            return Err(Error::InvalidArgument(format!(
                "policy: ddpm_steps must be a multiple of the schedule's {t} steps in 1..={}, got {n}",
                crate::schedule::MAX_TIMESTEPS
            )));
        }
        Ok(())
    }

    /// The fine schedule: the model's schedule with `N` steps on the same continuous times.
    pub fn ddpm_schedule(&self, schedule: &ScheduleConfig) -> Result<Schedule> {
        Schedule::new(ScheduleConfig {
            num_timesteps: self.ddpm_steps,
            ..schedule.clone()
        })
    }
}

/// One denoising step from fine level `from` to the less noisy level `to` (`to < from`):
/// `mean = c_x̂ · x̂ + c_x · x`, where `x̂ = (x − s ε) / a` with `a`, `s` of level `from`, and the
/// posterior variance `var`. All in f64, from the cumulative signal scales of the two levels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepCoefficients {
    /// Fine level of the input.
    pub from: usize,
    /// `a_from`, `s_from`: signal and noise scale of the input's level.
    pub a: f64,
    pub s: f64,
    pub c_x_hat: f64,
    pub c_x: f64,
    pub var: f64,
}

impl StepCoefficients {
    /// The DDPM posterior `q(x_to | x_from, x̂)` of `ddpm` (a fine schedule).
    pub fn between(ddpm: &Schedule, from: usize, to: usize) -> Self {
        let abar = |n: usize| ddpm.a_s_cum[n] * ddpm.a_s_cum[n];
        let (ab_to, ab_from) = (abar(to), abar(from));
        let beta = 1.0 - ab_from / ab_to;
        let denom = 1.0 - ab_from;
        Self {
            from,
            a: ddpm.a_s_cum[from],
            s: ddpm.sigmas_cum[from],
            c_x_hat: ab_to.sqrt() * beta / denom,
            c_x: (1.0 - beta).sqrt() * (1.0 - ab_to) / denom,
            var: beta * (1.0 - ab_to) / denom,
        }
    }
}

/// The policy: the noise-prediction network, the learned step standard deviations and the
/// step coefficients of the `T` coarse steps.
#[derive(Clone, Debug)]
pub struct GaussianPolicy {
    net: TimeConditionedMlp,
    log_std: Tensor,
    ddpm: Schedule,
    /// `steps[k]`: the step into coarse level `k` (from level `k + 1`).
    steps: Vec<StepCoefficients>,
}

impl GaussianPolicy {
    /// Builds the policy of a model with `cfg`'s sizes, the `T`-step `schedule` and `policy`.
    /// Image models have no policy (its network is an MLP).
    pub fn new(
        cfg: &NetworkConfig,
        schedule: &ScheduleConfig,
        policy: &PolicyConfig,
        vb: VarBuilder,
    ) -> Result<Self> {
        cfg.validate()?;
        policy.validate(schedule)?;
        if cfg.image.is_some() {
            return Err(Error::InvalidArgument(
                "the gaussian_policy sampler is for vector data; image models use the generator"
                    .into(),
            ));
        }
        let ddpm = policy.ddpm_schedule(schedule)?;
        let n = policy.ddpm_steps;
        let d = cfg.input_dim;
        let net = TimeConditionedMlp::new(cfg, n + 1, d, d, false, vb.pp("net"))?;
        let t = schedule.num_timesteps;
        let stride = n / t;
        let steps: Vec<StepCoefficients> = (0..t)
            .map(|k| StepCoefficients::between(&ddpm, (k + 1) * stride, k * stride))
            .collect();
        // A model file holds the learned values; a trainer's fresh variable starts at 0 and is
        // set to [`GaussianPolicy::initial_log_std`].
        let log_std = vb.get_with_hints(t, "log_std", candle_nn::Init::Const(0.0))?;
        let values: Vec<f32> = log_std.to_dtype(candle::DType::F32)?.to_vec1()?;
        if let Some(v) = values
            .iter()
            .find(|v| !(v.is_finite() && v.abs() <= MAX_ABS_LOG_STD))
        {
            return Err(Error::bad_model(format!(
                "sampler.log_std holds {v}; every entry must be finite and within ±{MAX_ABS_LOG_STD}"
            )));
        }
        Ok(Self {
            net,
            log_std,
            ddpm,
            steps,
        })
    }

    /// Number of coarse steps `T`.
    pub fn num_steps(&self) -> usize {
        self.steps.len()
    }

    /// The fine schedule of the pre-trained DDPM (`N` steps).
    pub fn ddpm(&self) -> &Schedule {
        &self.ddpm
    }

    /// The coefficients of the step into coarse level `k`.
    pub fn step(&self, k: usize) -> &StepCoefficients {
        &self.steps[k]
    }

    /// The posterior standard deviations' logs, `½ log var_k`: where training starts `log σ`.
    pub fn initial_log_std(&self) -> Vec<f32> {
        self.steps
            .iter()
            .map(|c| (0.5 * c.var.ln()) as f32)
            .collect()
    }

    /// `log σ_k` of every coarse step, shape `(T,)` (a variable while training).
    pub fn log_std(&self) -> &Tensor {
        &self.log_std
    }

    /// `ε_φ(x, n)`: rows `(B, d)`, fine levels `(B,)` u32.
    pub fn predict_noise(&self, xs: &Tensor, levels: &Tensor) -> Result<Tensor> {
        self.net.forward_t(xs, levels, false)
    }

    /// The mean of a step from `x` with coefficients `c`: `c_x̂ · (x − s ε_φ) / a + c_x · x`.
    pub fn step_mean(&self, x: &Tensor, c: &StepCoefficients) -> Result<Tensor> {
        let levels = level_tensor(c.from, x.dim(0)?, x.device())?;
        let eps = self.predict_noise(x, &levels)?;
        let x_hat = ((x - eps.affine(c.s, 0.0)?)? / c.a)?;
        Ok((x_hat.affine(c.c_x_hat, 0.0)? + x.affine(c.c_x, 0.0)?)?)
    }

    /// [`GaussianPolicy::step_mean`] for rows taking different steps: row `i` of `x` steps into
    /// coarse level `into[i]`. One pass through the network for the whole batch.
    pub fn step_means(&self, x: &Tensor, into: &[usize]) -> Result<Tensor> {
        let (b, _) = x.dims2()?;
        if into.len() != b || into.iter().any(|&k| k >= self.num_steps()) {
            return Err(Error::InvalidArgument(format!(
                "step_means: {b} rows need {b} step indices below {}",
                self.num_steps()
            )));
        }
        let dev = x.device();
        let column = |f: &dyn Fn(&StepCoefficients) -> f64| -> Result<Tensor> {
            let v: Vec<f32> = into.iter().map(|&k| f(&self.steps[k]) as f32).collect();
            Ok(Tensor::from_vec(v, (b, 1), dev)?.to_dtype(x.dtype())?)
        };
        let levels: Vec<u32> = into.iter().map(|&k| self.steps[k].from as u32).collect();
        let eps = self.predict_noise(x, &Tensor::from_vec(levels, b, dev)?)?;
        let x_hat =
            (x - eps.broadcast_mul(&column(&|c| c.s)?)?)?.broadcast_div(&column(&|c| c.a)?)?;
        Ok((x_hat.broadcast_mul(&column(&|c| c.c_x_hat)?)?
            + x.broadcast_mul(&column(&|c| c.c_x)?)?)?)
    }

    /// `n` rows in normalised units from the `T`-step policy: `x_T ~ N(0, I)`, then
    /// `x_k = μ(x_{k+1}) + σ_k ε` for `k = T−1 … 0` (noise at every step, the last included).
    /// The stream draws `x_T`, then `ε` per step.
    pub fn sample(&self, n: usize, dim: usize, seed: u64, device: &Device) -> Result<Tensor> {
        let stds: Vec<f32> = self
            .log_std
            .exp()?
            .to_dtype(candle::DType::F32)?
            .to_vec1()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut x = normal_tensor(&mut rng, n, dim, device)?;
        for k in (0..self.num_steps()).rev() {
            let mean = self.step_mean(&x, &self.steps[k])?;
            let eps = normal_tensor(&mut rng, n, dim, device)?;
            x = (mean + eps.affine(f64::from(stds[k]), 0.0)?)?;
        }
        Ok(x)
    }

    /// `n` rows from the plain DDPM with `steps` evenly spaced levels of the fine schedule
    /// (`steps` must divide `N`; `N` is the full DDPM), with the posterior standard deviations
    /// and no noise at the last step: the sampler the policy started from.
    pub fn sample_ddpm(
        &self,
        n: usize,
        dim: usize,
        steps: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Tensor> {
        let fine = self.ddpm.num_timesteps();
        if steps == 0 || fine % steps != 0 {
            return Err(Error::InvalidArgument(format!(
                "DDPM sampling needs a step count dividing {fine}, got {steps}"
            )));
        }
        let stride = fine / steps;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut x = normal_tensor(&mut rng, n, dim, device)?;
        for k in (0..steps).rev() {
            let c = StepCoefficients::between(&self.ddpm, (k + 1) * stride, k * stride);
            let mean = self.step_mean(&x, &c)?;
            x = if k > 0 {
                let eps = normal_tensor(&mut rng, n, dim, device)?;
                (mean + eps.affine(c.var.sqrt(), 0.0)?)?
            } else {
                mean
            };
        }
        Ok(x)
    }
}
